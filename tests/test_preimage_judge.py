"""The ``--judge`` model is opened by the callers of the pre-image job, never by the job (issue 21: jobs
receive a loaded model): ``quality.open_judge`` opens and checks it, the job refuses a config that names
a judge it was not handed, and scores ``p_judge`` with the judge it was handed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from workbench.config.preimage import PreimageConfig
from workbench.errors import UserError
from workbench.jobs import run_job
from workbench.preimage.quality import check_judge, open_judge
from workbench.preimage.solve import preimage_job


@pytest.fixture(scope="module")
def vgg():
    from workbench.models import load_model

    return load_model("digits-vgg")


def _config(**options) -> PreimageConfig:
    return PreimageConfig(**{"model": "digits-vgg", "layer": "fc", "method": "maximize", "channel": 3,
                             "restarts": 2, "iters": 2, "frame_every": 0, "device": "cpu", **options})


def test_a_job_refuses_a_judge_it_was_not_handed_before_its_run_folder(tmp_path, vgg):
    with pytest.raises(TypeError, match="no judge= was passed: open it with .*open_judge"):
        run_job(preimage_job(_config(judge="digits-lenet5"), out=tmp_path / "a", model=vgg))
    lenet = open_judge(_config(judge="digits-lenet5"), vgg)
    with pytest.raises(ValueError, match="config.judge names none"):   # p_judge of a model run.json never names
        run_job(preimage_job(_config(), out=tmp_path / "b", model=vgg, judge=lenet))
    with pytest.raises(UserError, match="--judge scores a class"):      # handed a judge, for a hidden layer
        run_job(preimage_job(_config(layer="relu3", judge="digits-lenet5"), out=tmp_path / "c", model=vgg,
                             judge=lenet))
    assert not any((tmp_path / name).exists() for name in "abc")


def test_the_judge_handed_in_scores_the_saved_pixels(tmp_path, vgg):
    config = _config(judge="digits-lenet5")
    lenet = open_judge(config, vgg)
    assert lenet.name == "digits-lenet5" and lenet is not vgg
    r = run_job(preimage_job(config, out=tmp_path / "j", model=vgg, judge=lenet))
    # the judge's own softmax of the target on the saved pixels (both nets read 1×32×32, the same normalisation)
    pixels = torch.from_numpy(np.ascontiguousarray(r.pixels)).permute(0, 3, 1, 2)
    mean, std = torch.tensor(lenet.mean).view(1, -1, 1, 1), torch.tensor(lenet.std).view(1, -1, 1, 1)
    with torch.no_grad():
        expected = lenet.module((pixels - mean) / std).softmax(1)[:, config.channel].numpy()
    assert np.allclose(r.metrics["p_judge"], expected, atol=1e-5)
    # control: the run's own model scores the same pixels otherwise (p_judge is not p_target under another name)
    assert not np.allclose(r.metrics["p_judge"], r.metrics["p_target"], atol=1e-3)


def test_open_judge_opens_only_what_a_run_scores_and_refuses_before_opening(vgg, monkeypatch):
    import workbench.models.sources as sources

    assert open_judge(_config(), vgg) is None
    assert open_judge(_config(method="invert", image="digits:0", channel=None, judge="digits-lenet5"), vgg) is None

    def never(*args, **kwargs):
        raise AssertionError("the judge was opened before the cheap refusal")

    monkeypatch.setattr(sources, "open_model", never)
    with pytest.raises(UserError, match="--judge scores a class: maximize a channel of digits-vgg's class scores"):
        open_judge(_config(layer="relu3", judge="digits-lenet5"), vgg)


def test_a_judge_must_score_the_same_classes(vgg):
    config = _config(judge="five")
    fc = vgg.layer("fc")
    check_judge(config, vgg, fc, SimpleNamespace(class_names=[str(k) for k in range(10)]))
    with pytest.raises(UserError, match="--judge five has 5 class names, digits-vgg has 10"):
        check_judge(config, vgg, fc, SimpleNamespace(class_names=[str(k) for k in range(5)]))
    with pytest.raises(UserError, match="has no class names"):
        check_judge(config, vgg, fc, SimpleNamespace(class_names=None))


def test_the_api_opens_the_judge_for_its_job(tmp_path):
    """The API's maximize opens --judge itself (a job handed none would raise TypeError): a hidden layer is the
    user's error, in one line, before any folder."""
    import workbench

    with pytest.raises(UserError, match="--judge scores a class"):
        workbench.maximize("digits-vgg", "relu3", 0, judge="digits-lenet5", iters=2, restarts=1, device="cpu",
                           workspace=tmp_path, out=tmp_path / "m")
    assert not (tmp_path / "m").exists()
