"""The pre-image defaults of the IJCV paper: activation maximisation of the centre neuron with
ρ = its receptive field (sect. 6.2), V measured like B (sect. 3.2.2), and the restarts' spread."""

from __future__ import annotations

import pytest
import torch

import workbench
from workbench.errors import UserError
from workbench.jobs import Log, run_job


@pytest.fixture(scope="module")
def vgg():
    return workbench.open_model("digits-vgg", device="cpu")


def test_maximisation_defaults_to_the_centre_neuron_and_channel_mean_is_an_option(vgg, tmp_path):
    neuron = workbench.maximize(vgg, "relu4", 5, iters=30, restarts=1, device="cpu", workspace=tmp_path)
    layer = vgg.layer("relu4")
    assert (neuron.metrics["component"], tuple(neuron.metrics["neuron"])) == ("neuron", (8, 8))
    assert neuron.metrics["rho"] == layer.rf_size == 14
    assert neuron.metrics["C"] == 14 ** 2
    mean = workbench.maximize(vgg, "relu4", 5, channel_mean=True, iters=30, restarts=1, device="cpu",
                              workspace=tmp_path)
    assert (mean.metrics["component"], mean.metrics["neuron"], mean.metrics["rho"]) == ("channel mean", None, 32)
    assert mean.metrics["C"] == 32 ** 2
    # a neuron's optimum lights up its receptive field, the channel mean the whole image
    centre, rest = neuron.images[0, 4:28, 4:28], neuron.images[0]
    assert float(abs(centre - 0.5).mean()) > float(abs(rest - 0.5).mean())
    with pytest.raises(UserError, match="exclude each other"):
        workbench.maximize(vgg, "relu4", 5, neuron=(1, 1), channel_mean=True, workspace=tmp_path)


def test_an_inactive_neuron_is_reported(vgg, tmp_path):
    from workbench.config.preimage import PreimageConfig
    from workbench.preimage import preimage_job

    logs = []
    config = PreimageConfig(layer="relu5", method="maximize", image=None, channel=2, iters=10, restarts=1,
                            device="cpu")
    result = run_job(preimage_job(config, out=tmp_path / "run", model=vgg),
                     lambda e: logs.append(e.message) if isinstance(e, Log) and e.level == "warning" else None)
    assert max(result.metrics["activation"]) == 0.0
    assert any("stayed at 0" in m and "--channel-mean" in m for m in logs)


def test_V_is_measured_so_that_the_tv_prior_is_about_one_on_the_data(vgg):
    from workbench.data.digits import load_digits32
    from workbench.preimage import presets
    from workbench.preimage.regularizers import alpha_norm, tv_beta

    B, V = presets.preset_B(vgg), presets.preset_V(vgg)
    images, _ = load_digits32("test")
    x = 255.0 * (images - torch.tensor(vgg.mean).view(1, -1, 1, 1))
    assert float(alpha_norm(x, presets.ALPHA, B).mean()) == pytest.approx(1.0, abs=0.05)
    assert float(tv_beta(x, presets.BETA, V).mean()) == pytest.approx(1.0, abs=0.05)
    assert float(tv_beta(x, presets.BETA, B / 6.5).mean()) > 2.0  # the paper's ImageNet ratio would not be

    class Photos:  # a model without bundled data keeps the paper's constants
        dataset = None

    assert (presets.preset_B(Photos()), presets.preset_V(Photos())) == (80.0, pytest.approx(80.0 / 6.5))


def test_restart_spread_tells_a_pinned_code_from_an_ambiguous_one(vgg, tmp_path):
    common = dict(iters=150, restarts=3, fine_tune_iters=0, device="cpu", workspace=tmp_path)
    pinned = workbench.invert(vgg, "relu1", "digits:3", **common).metrics
    ambiguous = workbench.invert(vgg, "fc", "digits:3", C=20.0, **common).metrics
    assert pinned["restart_rms_mean"] < 0.005
    assert ambiguous["restart_rms_mean"] > 0.03  # a 10-d code: different images, the same code
    assert ambiguous["reconstruction_error_mean"] < 0.05
    assert ambiguous["classification_consistency"] == 1.0


def test_hog_is_inverted_without_jitter_and_cnns_with_a_quarter_stride(vgg):
    from workbench.models import load_model
    from workbench.preimage import presets

    hog = load_model("hog")
    cells = hog.layer("cells")
    assert cells.stride == 8 and presets.model_jitter(hog, cells.stride) == 1  # IJCV sect. 5.1: no jitter
    assert presets.model_jitter(vgg, vgg.layer("relu5").stride) == 1  # stride 4: T = 1
    assert presets.model_jitter(vgg, vgg.layer("fc").stride) == 2  # stride 8: T = 2 (sect. 5.2.1)
