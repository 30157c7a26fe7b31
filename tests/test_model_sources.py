"""Model specs (issue 13): package.module:callable, --weights into an architecture, fine-tuned heads,
input overrides, in-memory modules, ONNX and timm wiring, and run.json's spec reopening the model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from workbench.config import from_dict, to_dict
from workbench.errors import UserError
from workbench.models import ModelSpec, from_module, load_model, zoo
from workbench.models.loading import NeedsTrust
from workbench.models.sources.onnx import _onnx_input_shape

TESTS = Path(__file__).resolve().parent
NETS = "fixtures_models.nets"
TWO_HEADS = f"{NETS}:TwoHeads"


@pytest.fixture
def from_tests(monkeypatch):
    """The current directory is tests/, which is NOT on sys.path and whose fixture package is not
    imported yet: only the loader's ``python -m``-style import can find it."""
    monkeypatch.chdir(TESTS)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(TESTS))])
    for name in [m for m in sys.modules if m == "fixtures_models" or m.startswith("fixtures_models.")]:
        monkeypatch.delitem(sys.modules, name)
    return list(sys.path)


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def _outputs(model, seed=0, n=2):
    x = torch.randn(n, *model.input_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.module(x)


def _reference(module, size, seed=0, n=2):
    x = torch.randn(n, *size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return module.eval()(x)


# --- package.module:callable -----------------------------------------------------------------

def test_a_callable_with_kwargs_imports_from_the_current_folder_and_lists_both_heads(from_tests):
    spec = ModelSpec(TWO_HEADS, model_kwargs='{"num_classes": 7}', input_size=(3, 16, 16))
    model = load_model(spec)
    assert sys.path == from_tests, "sys.path is put back after the import"
    head, aux = _outputs(model)
    assert head.shape == (2, 7) and aux.shape == (2, 3)
    assert model.name == TWO_HEADS and model.trained and model.input_from == "--input-size"
    assert model.source == f"callable {TWO_HEADS} (its own initialisation)"
    assert "mean and std are assumed" in model.notice and "--mean" in model.notice
    assert model.layer("head").shape == (7,) and model.layer("aux").shape == (3,)
    names = [info.name for info in model.layers()]
    if "output.1" in names:  # the graph helper's rows for a multi-output forward
        assert model.layer("output.1").shape == (3,)
    assert not model.module.training and not any(p.requires_grad for p in model.module.parameters())
    # the init is seeded: the same spec builds the same weights, and the global RNG is left alone
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    again = load_model(spec)
    assert torch.equal(torch.rand(2), expected)
    torch.testing.assert_close(_outputs(again)[0], head, rtol=0, atol=0)


def test_a_factory_gets_an_assumed_input_and_normalisation_for_its_channels(from_tests):
    grey = load_model(f"{NETS}:make_grey")
    assert grey.input_size == (1, 32, 32) and grey.input_from == "assumed" and grey.layers()[-1].shape == (10,)
    assert grey.notice == (f"{NETS}:make_grey: nothing describes its input, so the input size 1x32x32 and digits mean "
                           f"and std are assumed; pass --input-size CxHxW, --mean and --std if that is wrong.")
    two = load_model(ModelSpec(f"{NETS}:make_grey", model_kwargs='{"in_channels": 2, "num_classes": 3}',
                               input_size=(2, 12, 12)))
    assert two.mean == (0.0, 0.0) and two.std == (1.0, 1.0) and _outputs(two).shape == (2, 3)
    assert two.notice.endswith("so mean and std are assumed; pass --input-size CxHxW, --mean and --std if that is wrong.")


def test_a_callable_is_not_found_from_another_folder(from_tests, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as err:
        load_model(TWO_HEADS)
    assert _one_line(err) == (f"cannot import {NETS} for {TWO_HEADS} (No module named 'fixtures_models'): "
                              f"run from the folder that holds fixtures_models, or install it")
    assert sys.path == from_tests


@pytest.mark.parametrize("spec,match", [
    (ModelSpec(f"{NETS}:TwoHead"), rf"^{NETS} has no attribute 'TwoHead' \(for {NETS}:TwoHead\): did you mean TwoHeads"),
    (ModelSpec(TWO_HEADS, model_kwargs='{"classes": 7}'),
     rf"^{TWO_HEADS} does not take --model-kwargs {{\"classes\": 7}} \(.*unexpected keyword argument 'classes'\); "
     r"its parameters are \(num_classes=10, aux_classes=3, width=8\)$"),
    (ModelSpec(f"{NETS}:not_a_module"), rf"^{NETS}:not_a_module returned a list, not an nn.Module"),
    (ModelSpec(f"{NETS}:CONSTANT"), rf"^{NETS}:CONSTANT is a int, not a class or function"),
    (ModelSpec(f"{NETS}:broken"), rf"^calling {NETS}:broken raised ValueError: this factory always fails"),
    (ModelSpec("fixtures_models.nope:Net"), r"^cannot import fixtures_models.nope for fixtures_models.nope:Net "
                                            r"\(No module named 'fixtures_models.nope'\): run from the folder"),
    (ModelSpec(TWO_HEADS, arch="resnet18"), rf"^--arch applies to model files; {TWO_HEADS} builds its own module"),
    (ModelSpec(TWO_HEADS), rf"^{TWO_HEADS}: the assumed input size 3x224x224 does not fit the network \(.*\): "
                           r"pass --input-size CxHxW$"),
])
def test_callable_mistakes_are_one_line_naming_the_spec(from_tests, spec, match):
    with pytest.raises(UserError, match=match) as err:
        load_model(spec)
    _one_line(err)
    assert sys.path == from_tests


def test_a_callable_needs_trust_when_imports_are_off(from_tests, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    monkeypatch.setenv("WORKBENCH_TEST_SENTINEL", str(marker))
    spec = "fixtures_models.sentinel:Net"
    with pytest.raises(NeedsTrust) as err:
        load_model(spec, imports=False)
    assert err.value.kind == "callable"
    assert _one_line(err) == (f"{spec} names Python code (package.module:callable): importing it runs that code: "
                              f"pass --trust only if you trust it")
    assert not marker.exists() and "fixtures_models.sentinel" not in sys.modules, "nothing was imported"
    with pytest.raises(NeedsTrust):  # a spec object too
        load_model(ModelSpec(spec, input_size=(3, 16, 16)), imports=False)
    assert not marker.exists()
    model = load_model(ModelSpec(spec, input_size=(3, 16, 16)), imports=False, trust=True)  # the user confirmed
    assert marker.exists() and _outputs(model, n=1).shape == (1, 4)


def test_weights_for_a_callable_give_the_saved_models_outputs(from_tests, tmp_path):
    from safetensors.torch import save_file

    sys.path.insert(0, str(TESTS))
    try:
        from fixtures_models.nets import TwoHeads
    finally:
        sys.path.remove(str(TESTS))
    torch.manual_seed(11)
    saved = TwoHeads(num_classes=5)
    expected = _reference(saved, (3, 16, 16))
    pt, st = tmp_path / "two.pt", tmp_path / "two.safetensors"
    torch.save(saved.state_dict(), pt)
    save_file({k: v.contiguous() for k, v in saved.state_dict().items()}, str(st))
    (tmp_path / "two.json").write_text(json.dumps({"input_size": [3, 16, 16], "mean": [0.5] * 3, "std": [0.25] * 3,
                                                  "class_names": list("abcde"), "dataset": "letters"}))
    for path in (pt, st):
        model = load_model(ModelSpec(TWO_HEADS, model_kwargs='{"num_classes": 5}', weights=str(path)))
        got = _outputs(model)
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
        torch.testing.assert_close(got[1], expected[1], rtol=0, atol=0)
        assert model.source.startswith(f"{path} (") and f"into callable {TWO_HEADS}" in model.source
        assert model.trained
    # the .pt has no sidecar beside it: the safetensors' sidecar described its input
    assert model.input_size == (3, 16, 16) and model.input_from == "two.json" and model.notice is None
    assert model.mean == (0.5,) * 3 and model.class_names == list("abcde") and model.dataset == "letters"
    with pytest.raises(UserError) as err:  # weights of another head size: refused in one line
        load_model(ModelSpec(TWO_HEADS, weights=str(pt)))
    assert "two.pt does not fit architecture 'fixtures_models.nets:TwoHeads'" in _one_line(err)
    assert "wrong shape" in str(err.value) and "check --weights and --model-kwargs" in str(err.value)


# --- fine-tuned heads ------------------------------------------------------------------------

def _finetuned(arch, classes, seed=3):
    with zoo.seeded_init(seed):
        import torchvision

        return torchvision.models.get_model(arch, weights=None, num_classes=classes).eval()


@pytest.mark.parametrize("arch,classes,head", [("resnet18", 10, "fc"), ("squeezenet1_1", 5, "classifier.1")])
def test_a_state_dict_with_another_head_rebuilds_the_architecture(tmp_path, arch, classes, head):
    source = _finetuned(arch, classes)
    assert f"{head}.weight" in source.state_dict()
    path = tmp_path / "ft.pt"
    torch.save({"state_dict": source.state_dict(), "epoch": 4}, path)
    expected = _reference(source, (3, 224, 224))
    via_arch = load_model(str(path), arch=arch)
    via_weights = load_model(ModelSpec(arch, weights=str(path)))
    for model in (via_arch, via_weights):
        out = _outputs(model)
        assert out.shape == (2, classes)
        torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
        assert model.trained and model.class_names is None and model.notice is None
        assert f"{classes} classes" in model.source and str(path) in model.source
        assert model.input_size == (3, 224, 224) and model.mean == zoo.IMAGENET_MEAN
    assert via_weights.name == arch and via_weights.source == f"{path} (state_dict into {arch}, {classes} classes)"
    assert via_arch.source == f"{path} (state_dict, arch {arch}, {classes} classes)"


def test_weights_of_the_same_head_keep_the_class_names_and_other_mismatches_refuse(tmp_path):
    from safetensors.torch import save_file

    same = zoo.build_architecture("digits-lenet5", seed=9).state_dict()
    save_file(same, str(tmp_path / "lenet.safetensors"))
    model = load_model(ModelSpec("digits-lenet5", weights=str(tmp_path / "lenet.safetensors")))
    assert model.class_names == [str(i) for i in range(10)] and model.trained
    assert torch.equal(model.module.state_dict()["c1.weight"], same["c1.weight"])
    state = _finetuned("resnet18", 10).state_dict()
    bad_trunk = dict(state, **{"conv1.weight": torch.zeros(64, 1, 7, 7)})  # a grey resnet: not only the head
    bad_bias = dict(state, **{"fc.bias": torch.zeros(1000)})  # the head disagrees with itself
    for bad in (bad_trunk, bad_bias):
        torch.save(bad, tmp_path / "bad.pt")
        for spec in (ModelSpec(str(tmp_path / "bad.pt"), arch="resnet18"),
                     ModelSpec("resnet18", weights=str(tmp_path / "bad.pt"))):
            with pytest.raises(UserError) as err:
                load_model(spec)
            assert "bad.pt does not fit architecture 'resnet18'" in _one_line(err) and "wrong shape" in str(err.value)
    with pytest.raises(UserError, match="--weights .*missing.pt does not exist"):
        load_model(ModelSpec("resnet18", weights=str(tmp_path / "missing.pt")))
    with pytest.raises(UserError, match="--weights applies to a zoo architecture"):
        load_model(ModelSpec(str(tmp_path / "lenet.safetensors"), weights=str(tmp_path / "bad.pt")))


def test_pickled_weights_need_trust(tmp_path):
    torch.save(zoo.build_architecture("digits-lenet5"), tmp_path / "whole.pt")
    with pytest.raises(NeedsTrust) as err:
        load_model(ModelSpec("digits-lenet5", weights=str(tmp_path / "whole.pt")))
    assert err.value.kind == "pickle" and "--trust" in _one_line(err)
    assert load_model(ModelSpec("digits-lenet5", weights=str(tmp_path / "whole.pt")), trust=True).trained


# --- input overrides -------------------------------------------------------------------------

@pytest.fixture
def resnet10(tmp_path):
    source = _finetuned("resnet18", 10)
    path = tmp_path / "r10.pt"
    torch.save(source.state_dict(), path)
    return source, path


def test_overrides_set_the_input_and_class_names(tmp_path, resnet10):
    source, path = resnet10
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(f"class {i}" for i in range(10)) + "\n\n")
    spec = ModelSpec("resnet18", weights=str(path), input_size=(3, 48, 48), mean=(0.5, 0.4, 0.3),
                     std=(0.2, 0.25, 0.3), class_names=str(names))
    model = load_model(spec)
    assert model.input_size == (3, 48, 48) and model.input_from == "--input-size"
    assert model.mean == (0.5, 0.4, 0.3) and model.std == (0.2, 0.25, 0.3)
    assert model.class_names == [f"class {i}" for i in range(10)] and model.notice is None
    assert model.layers()[-1].shape == (10,) and model.layer("layer4.1.relu_1").shape == (512, 2, 2)
    torch.testing.assert_close(_outputs(model), _reference(source, (3, 48, 48)), rtol=1e-6, atol=1e-6)
    names.write_text(json.dumps([f"c{i}" for i in range(10)]))
    assert load_model(spec).class_names[3] == "c3"
    grey = load_model(ModelSpec(str(path), arch="resnet18", class_names=str(names)))
    assert grey.input_from is None and grey.class_names[0] == "c0"


def test_a_file_without_a_sidecar_is_fully_described_by_the_overrides(tmp_path):
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 30 * 30, 2))
    torch.save(module, tmp_path / "small.pt")
    with pytest.raises(UserError, match=r"assumed input size 3x224x224 does not fit.*or pass --input-size CxHxW"):
        load_model(str(tmp_path / "small.pt"), trust=True)
    model = load_model(ModelSpec(str(tmp_path / "small.pt"), input_size=(3, 32, 32), mean=(0.1,) * 3, std=(0.2,) * 3),
                       trust=True)
    assert model.notice is None and model.layers()[-1].shape == (2,)
    partly = load_model(ModelSpec(str(tmp_path / "small.pt"), input_size=(3, 32, 32)), trust=True)
    assert partly.notice == (f"{tmp_path / 'small.pt'}: no sidecar small.json and no --arch, so ImageNet mean and std "
                             f"are assumed; pass --input-size CxHxW, --mean and --std if that is wrong.")


def _bad_names(tmp_path, kind):
    path = tmp_path / "names.txt"
    if kind == "binary":
        path.write_bytes(b"cat\x00dog\x89PNG")
    elif kind == "huge":
        path.write_text("x" * (5 << 20))
    elif kind == "blank":
        path.write_text("cat\n\ndog\n")
    elif kind == "json":
        path.write_text('["cat", ')
    elif kind == "json-type":
        path.write_text('[1.5, {"a": 1}]')
    elif kind == "empty":
        path.write_text("\n\n")
    elif kind == "count":
        path.write_text("a\nb\nc\n")
    elif kind == "missing":
        return tmp_path / "none.txt"
    return path


@pytest.mark.parametrize("kind,match", [
    ("binary", r"--class-names names.txt is a binary file, not text"),
    ("huge", r"--class-names names.txt is larger than 4 MB"),
    ("blank", r"--class-names names.txt: line 2 is blank"),
    ("json", r"--class-names names.txt starts like a JSON list but is not valid JSON"),
    ("json-type", r"must be a JSON list of strings"),
    ("empty", r"holds no class names"),
    ("count", r"--class-names names.txt has 3 name\(s\) but resnet18 gives 10 outputs: give one name per output"),
    ("missing", r"--class-names .*none.txt does not exist"),
])
def test_malformed_class_names_are_one_line(tmp_path, resnet10, kind, match):
    spec = ModelSpec("resnet18", weights=str(resnet10[1]), input_size=(3, 32, 32),
                     class_names=str(_bad_names(tmp_path, kind)))
    with pytest.raises(UserError, match=match) as err:
        load_model(spec)
    _one_line(err)


@pytest.mark.parametrize("spec,match", [
    (ModelSpec("digits-vgg", input_size=(1, 48, 48)),
     r"^digits-vgg: the input size 1x48x48 from --input-size does not fit the network \(.*\): pass one it accepts$"),
    (ModelSpec("digits-vgg", mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2)),
     r"^digits-vgg: --mean and --std need one value per input channel: the input has 1 channel\(s\) "
     r"\(from the architecture\) but mean has 3 and std 3$"),
    (ModelSpec("resnet18", input_size=(3, 32, 32), mean=(0.5,)), r"--mean has 1 value\(s\) but --input-size has 3"),
    (ModelSpec("resnet18", input_size=(1, 32, 32)),
     r"resnet18: --mean and --std need one value per input channel: the input has 1 channel\(s\) \(from --input-size\)"),
    (ModelSpec("resnet18", input_size=(1, 32, 32), mean=(0.5,), std=(0.5,)),
     r"resnet18: the input size 1x32x32 from --input-size does not fit the network \(.*expected input.*to have 3 channels"),
    (ModelSpec("resnet18", std=(0.0, 1.0, 1.0)), r"--std values must lie between 1e-6 and 1e6"),
])
def test_malformed_input_overrides_are_one_line(spec, match):
    with pytest.raises(UserError, match=match) as err:
        load_model(spec)
    _one_line(err)


# --- run.json's spec -------------------------------------------------------------------------

def test_facts_spec_round_trips_and_reopens_the_same_model(from_tests, tmp_path, monkeypatch, resnet10):
    source, path = resnet10
    names = tmp_path / "classes.txt"
    names.write_text("\n".join(map(str, range(10))))
    specs = [ModelSpec(TWO_HEADS, model_kwargs='{"num_classes": 4}', input_size=(3, 16, 16), mean=(0.5,) * 3,
                       std=(0.5,) * 3),
             ModelSpec("resnet18", weights=str(path), input_size=(3, 40, 40), class_names=str(names)),
             ModelSpec(str(path), arch="resnet18")]
    for spec in specs:
        model = load_model(spec)
        recorded = json.loads(json.dumps(model.facts()))  # as run.json holds it
        reopened_spec = from_dict(ModelSpec, recorded["spec"])
        assert reopened_spec == model.spec
        monkeypatch.chdir(TESTS)  # a callable reopens from its folder; files from anywhere (absolute paths)
        reopened = load_model(reopened_spec)
        assert reopened.source == model.source and reopened.input_size == model.input_size
        assert reopened.class_names == model.class_names and reopened.mean == model.mean
        a, b = _outputs(model), _outputs(reopened)
        for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    relative = ModelSpec("r10.pt", arch="resnet18")
    monkeypatch.chdir(tmp_path)
    assert load_model(relative).spec.model == str(path), "a file's path is recorded absolute"
    assert to_dict(load_model("digits-lenet5").spec) == to_dict(ModelSpec("digits-lenet5"))


# --- in-memory modules -----------------------------------------------------------------------

class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.fc = nn.Linear(3 * 6 * 6, 4)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def test_from_module_wraps_the_callers_module_in_place():
    module = Tiny().train()
    with pytest.raises(UserError) as err:
        from_module(module)
    assert _one_line(err).startswith("<in-memory Tiny>: from_module needs input_size=(C, H, W)")
    assert module.training, "a refused module is left as it was"
    model = from_module(module, input_size=(2, 8, 8), class_names=["a", "b", "c", "d"])
    assert model.module is module and not module.training
    assert not any(p.requires_grad for p in module.parameters())
    assert model.mean == (0.0, 0.0) and model.std == (1.0, 1.0) and "no normalisation" in model.notice
    assert model.layer("fc").shape == (4,) and model.layer("conv").shape == (3, 6, 6)
    assert model.spec == ModelSpec("<in-memory Tiny>", input_size=(2, 8, 8), mean=(0.0, 0.0), std=(1.0, 1.0))
    assert model.facts()["spec"]["model"] == "<in-memory Tiny>" and model.device == torch.device("cpu")
    with pytest.raises(UserError, match=r"<in-memory Tiny> was a module handed to from_module\(\)"):
        load_model(model.spec)
    named = from_module(Tiny(), name="mine", input_size=(2, 8, 8), mean=(0.5, 0.5), std=(0.25, 0.25))
    assert named.name == "mine" and named.notice is None and named.class_names is None
    for kwargs, match in [({"input_size": (2, 4, 4)}, r"mine: input_size 2x4x4 does not fit the module"),
                          ({"input_size": (2, 8)}, r"mine: input_size must be CxHxW"),
                          ({"input_size": (2, 8, 8), "mean": (0.5,)}, r"mine: mean has 1 value\(s\) but input_size has 2 "
                                                                       r"channel\(s\): give one per channel"),
                          ({"input_size": (2, 8, 8), "std": (0.0, 1.0)}, r"mine: std values must lie between")]:
        with pytest.raises(UserError, match=match) as err:
            from_module(Tiny(), name="mine", **kwargs)
        _one_line(err)
    with pytest.raises(UserError, match="from_module needs an nn.Module, not a str"):
        from_module("resnet18")


# --- ONNX and timm (their readers live in workbench.models.sources.onnx and .timm; faked here) ---

def _onnx_file(path, dims):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(torch.randn(2, 3, 3, 3).numpy(), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.fixture
def fake_external(monkeypatch):
    calls = []

    def read_onnx(path):
        calls.append(("onnx", Path(path).name))
        return nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def timm_model(name, kwargs):
        calls.append(("timm", name, dict(kwargs)))
        head = nn.Linear(4, kwargs.get("num_classes", 1000))
        module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        module.add_module("head", head)
        return module, False, "timm (random init)", f"timm:{name} is UNTRAINED", (3, 64, 64), (0.5,) * 3, (0.5,) * 3

    monkeypatch.setattr("workbench.models.sources.onnx.read_onnx", read_onnx)  # where the sources call them
    monkeypatch.setattr("workbench.models.sources.timm.timm_model", timm_model)
    return calls


def test_onnx_input_size_comes_from_its_graph(tmp_path, fake_external):
    static = _onnx_file(tmp_path / "static.onnx", ["batch", 3, 40, 36])
    dynamic = _onnx_file(tmp_path / "dynamic.onnx", ["batch", 3, "height", "width"])
    assert _onnx_input_shape(static) == ((3, 40, 36), "batchx3x40x36")
    assert _onnx_input_shape(dynamic) == (None, "batchx3xheightxwidth")
    model = load_model(str(static))
    assert model.input_size == (3, 40, 36) and model.input_from == "the ONNX graph"
    assert model.source == f"{static} (ONNX)" and "ImageNet mean and std are assumed" in model.notice
    with pytest.raises(UserError) as err:
        load_model(str(dynamic))
    assert _one_line(err) == ("dynamic.onnx: the ONNX graph's input shape batchx3xheightxwidth is not fixed: "
                              "pass --input-size CxHxW (e.g. 3x224x224)")
    sized = load_model(ModelSpec(str(dynamic), input_size=(3, 20, 20), mean=(0.0,) * 3, std=(1.0,) * 3))
    assert sized.input_size == (3, 20, 20) and sized.notice is None and _outputs(sized).shape == (2, 2)
    (tmp_path / "garbage.onnx").write_bytes(b"\x08\x07not protobuf" * 10)
    with pytest.raises(UserError, match="garbage.onnx is not a readable ONNX file") as err:
        load_model(str(tmp_path / "garbage.onnx"))
    _one_line(err)
    assert [c[0] for c in fake_external] == ["onnx"] * 4


def test_an_onnx_classifier_converts_and_lists_its_layers(tmp_path):
    pytest.importorskip("onnx2torch")
    pytest.importorskip("workbench.models.external")
    from onnx import TensorProto, helper, numpy_helper
    import onnx

    g = torch.Generator().manual_seed(0)
    w, fw, fb = torch.randn(4, 3, 3, 3, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, generator=g)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1, name="fc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 28, 28])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
                              [numpy_helper.from_array(t.numpy(), n) for t, n in ((w, "w"), (fw, "fw"), (fb, "fb"))])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    model = load_model(str(path))
    assert model.input_size == (3, 28, 28) and model.input_from == "the ONNX graph" and model.trained
    x = torch.randn(2, 3, 28, 28, generator=g)
    expected = torch.relu(torch.nn.functional.conv2d(x, w)).mean((2, 3)) @ fw.T + fb
    with torch.no_grad():
        torch.testing.assert_close(model.module(x), expected, rtol=1e-5, atol=1e-5)
    assert model.layers()[-1].shape == (5,)
    assert model.notice.startswith(f"{path}: no sidecar tiny.json, so ImageNet mean and std are assumed")


def test_timm_specs_go_through_external_with_weights_and_a_new_head(tmp_path, fake_external):
    model = load_model(ModelSpec("timm:tiny_net", model_kwargs='{"drop_rate": 0.1}'))
    assert fake_external[-1] == ("timm", "tiny_net", {"drop_rate": 0.1})
    assert not model.trained and model.notice == "timm:tiny_net is UNTRAINED" and model.input_size == (3, 64, 64)
    assert model.mean == (0.5,) * 3 and model.class_names is None and model.spec.model == "timm:tiny_net"
    saved = fake_external_module(fake_external, 6)
    torch.save(saved.state_dict(), tmp_path / "t6.pt")
    tuned = load_model(ModelSpec("timm:tiny_net", weights=str(tmp_path / "t6.pt")))
    assert fake_external[-1] == ("timm", "tiny_net", {"num_classes": 6})
    assert tuned.trained and tuned.notice is None and tuned.source == f"{tmp_path / 't6.pt'} (state_dict into timm:tiny_net, 6 classes)"
    torch.testing.assert_close(_outputs(tuned), _reference(saved, (3, 64, 64)), rtol=0, atol=0)


def fake_external_module(calls, classes):
    module = sys.modules["workbench.models.sources.timm"].timm_model("x", {"num_classes": classes})[0]
    calls.pop()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1)
    return module
