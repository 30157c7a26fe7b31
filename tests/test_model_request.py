"""config.model.model_request: the one table of what a model argument is (the API, show(), the window)."""

from pathlib import Path

import pytest
import torch.nn as nn

from workbench.config.model import ModelSpec, model_request
from workbench.errors import UserError


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())


def test_names_and_paths_are_specs_with_the_description_folded_in(tmp_path):
    kind, spec, options = model_request("digits-vgg")
    assert (kind, spec, options) == ("spec", ModelSpec(model="digits-vgg"), {})
    kind, spec, _ = model_request(Path(tmp_path / "net.safetensors"), input_size=[1, 28, 28], mean=[0.5], std=(0.25,),
                                  class_names=tmp_path / "names.txt")
    assert kind == "spec" and spec.model == str(tmp_path / "net.safetensors")
    assert spec.input_size == (1, 28, 28) and spec.mean == (0.5,) and spec.std == (0.25,)
    assert spec.class_names == str(tmp_path / "names.txt")
    kind, spec, _ = model_request(ModelSpec(model="digits-vgg", arch="digits-vgg"), mean=(0.1,))
    assert spec.arch == "digits-vgg" and spec.mean == (0.1,)


def test_a_module_keeps_its_description_as_options():
    net = _net()
    kind, module, options = model_request(net, input_size=(1, 8, 8), class_names=["a", "b"])
    assert kind == "module" and module is net and options == {"input_size": (1, 8, 8), "class_names": ["a", "b"]}


def test_a_loaded_model_is_taken_as_it_is_and_refuses_a_new_description():
    from workbench.models.loading import from_module

    loaded = from_module(_net(), input_size=(1, 8, 8))
    assert model_request(loaded) == ("loaded", loaded, {})
    with pytest.raises(UserError, match="input_size: a LoadedModel describes its input already"):
        model_request(loaded, input_size=(1, 8, 8))


@pytest.mark.parametrize("call, says", [
    (lambda: model_request(42, who="show()"), "show() is an nn.Module, a LoadedModel or a model spec"),
    (lambda: model_request("digits-vgg", class_names=["a"]), "class_names for a model spec is a file"),
    (lambda: model_request(_net(), class_names=[1, 2]), "class_names must be a list of names (strings)"),
    (lambda: model_request("digits-vgg", mean=["x"]), "mean/std are sequences of numbers"),
    (lambda: model_request("digits-vgg", input_size=(1, 0, 8)), "input"),
])
def test_bad_arguments_are_one_line(call, says):
    with pytest.raises(UserError) as err:
        call()
    assert says in str(err.value) and "\n" not in str(err.value)

