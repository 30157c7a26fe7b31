"""Ruderman et al. sect. 5, Figs. 6c and 7 (issue 22): the random labels of
``train_classifier(random_labels=True)`` are fixed, uniform and independent of the images, and
`workbench study random-labels` writes a run folder with both label kinds, at a tiny size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench.jobs import run_job
from workbench.models.train import train_classifier
from workbench.studies.deformation import run_study
from workbench.studies.random_labels import random_labels_study

N, CLASSES = 2000, 10


class _Recorder(nn.Module):
    """A linear classifier that remembers its last batch, so the loss can tell which images it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, CLASSES)
        self.last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last = x
        return self.fc(x.flatten(1))


def _trained_labels(monkeypatch, images: torch.Tensor, labels: torch.Tensor, *, random_labels: bool, epochs: int = 3,
                    seed: int = 5) -> np.ndarray:
    """(epochs, N): the target each training image got in each epoch. Image i is the constant i
    (after the trainer's normalisation with mean 0, std 1), so the loss's batch names its images."""
    module, seen = _Recorder(), []
    plain = F.cross_entropy

    def recording(logits, target, *a, **k):
        index = module.last[:, 0, 0, 0].round().long() if images is _INDEXED else module.last.flatten(1)[:, 1].long()
        seen.append((index.clone(), target.clone()))
        return plain(logits, target, *a, **k)

    monkeypatch.setattr(F, "cross_entropy", recording)
    run_job(train_classifier(module, epochs=epochs, seed=seed, batch_size=64, mean=(0.0,), std=(1.0,),
                             train_data=(images, labels), random_labels=random_labels))
    monkeypatch.setattr(F, "cross_entropy", plain)
    out = np.full((epochs, len(labels)), -1)
    steps = -(-len(labels) // 64)
    for step, (index, target) in enumerate(seen):
        out[step // steps, index.numpy()] = target.numpy()
    assert (out >= 0).all()  # every image once per epoch
    return out


_INDEXED = torch.arange(N, dtype=torch.float32).view(N, 1, 1, 1).expand(N, 1, 2, 2).contiguous()
_TRUE = torch.arange(N) % CLASSES


def test_random_labels_are_fixed_over_epochs_and_uniform(monkeypatch):
    got = _trained_labels(monkeypatch, _INDEXED, _TRUE, random_labels=True)
    assert (got == got[0]).all()  # the same label for an image in every epoch
    counts = np.bincount(got[0], minlength=CLASSES)
    expected = N / CLASSES
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9, counts  # 9 degrees of freedom, p = 0.001
    assert counts.min() > 0.75 * expected
    # control: without random_labels the trainer uses the labels it was given
    real = _trained_labels(monkeypatch, _INDEXED, _TRUE, random_labels=False, epochs=1)
    assert (real[0] == _TRUE.numpy()).all()


def test_random_labels_do_not_depend_on_the_images(monkeypatch):
    got = _trained_labels(monkeypatch, _INDEXED, _TRUE, random_labels=True, epochs=1)[0]
    assert 0.07 < float(np.mean(got == _TRUE.numpy())) < 0.13  # chance agreement with the true class
    # other images (the index carried in a second pixel, the first one noise) and other true
    # labels, the same seed: the same random label for the i-th image
    noise = torch.rand(N, 1, 2, 2, generator=torch.Generator().manual_seed(1)) * 100
    other = noise.clone()
    other.view(N, -1)[:, 1] = torch.arange(N, dtype=torch.float32)
    again = _trained_labels(monkeypatch, other, (_TRUE * 7 + 3) % CLASSES, random_labels=True, epochs=1)[0]
    assert (again == got).all()
    # another seed draws other labels
    moved = _trained_labels(monkeypatch, _INDEXED, _TRUE, random_labels=True, epochs=1, seed=6)[0]
    assert float(np.mean(moved == got)) < 0.2


TINY = dict(seeds=1, epochs=1, n=4, train_images=8, downsamplings=("maxpool", "strided"))


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("rl") / "local"
    metrics = run_job(random_labels_study(out=out, device="cpu", **TINY))
    return out, metrics


def test_study_writes_both_label_kinds(tiny_study):
    out, returned = tiny_study
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads((out / "run.json").read_text())["status"] == "done" and metrics["complete"]
    assert metrics["config"]["study"] == "random-labels" and metrics["config"]["train_images"] == 8
    kinds = metrics["variants"]["maxpool"]
    assert set(kinds) == {"random", "real"} and set(metrics["variants"]["strided"]) == {"random", "real"}
    block_convs = [f"conv{b}_{i}" for b in range(1, 5) for i in (1, 2)]
    for v in kinds.values():
        assert [r["layer"] for r in v["ncd"]][:2] == ["input", "relu1_1"] and len(v["ncd"]) == 13
        assert [r["layer"] for r in v["ntv"]] == block_convs
        assert all(0.0 < r["mean"] < 2.5 for r in v["ntv"])
        assert len(v["train_accuracy"]) == 1 and 0.0 <= v["test_accuracy"][0] <= 1.0
    # the strided nets' 2x2 downsampling convs are kept in their rows but not compared across variants
    strided = metrics["variants"]["strided"]["random"]
    assert [r["layer"] for r in strided["ntv"]][:3] == ["conv1_1", "conv1_2", "down1"] and len(strided["ntv"]) == 12
    assert metrics["ntv_layers_compared"] == block_convs
    own = np.array(strided["per_net_ntv"])[0]
    assert strided["mean_ntv"] == pytest.approx(np.mean([own[i] for i in (0, 1, 3, 4, 6, 7, 9, 10)]))
    # the input layer does not depend on the weights: both kinds measure the same deformations
    assert kinds["random"]["ncd"][0]["mean"] == pytest.approx(kinds["real"]["ncd"][0]["mean"], rel=1e-6)
    # the same initial nets: only the labels differ, so the trained filters differ
    assert kinds["random"]["mean_ntv"] != kinds["real"]["mean_ntv"]
    assert 1.7 < metrics["init_ntv"] < 2.0  # truncated normal 3x3 filters (footnote 1: about 1.87)
    assert set(metrics["spread"]) == {"random", "real"}
    assert metrics["spread"]["random"]["later_ncd"]["by_variant"].keys() == {"maxpool", "strided"}
    for name in ("random_labels_smoothness", "random_labels_sensitivity"):
        assert (out / "images" / f"{name}.png").is_file() and (out / "images" / f"{name}.pdf").is_file()


def test_process_executor_gives_the_local_numbers(tiny_study, tmp_path):
    local, _ = tiny_study
    out = tmp_path / "process"
    run_job(random_labels_study(out=out, device="cpu", executor={"executor": "process", "workers": 1}, **TINY))
    a, b = (json.loads((f / "metrics.json").read_text()) for f in (local, out))
    a.pop("seconds"), b.pop("seconds")
    assert a == b


def test_run_study_knows_random_labels_and_checks_sizes(tmp_path):
    from workbench.errors import UserError

    with pytest.raises(UserError, match="--epochs"):
        run_job(run_study("random-labels", out=tmp_path / "x", device="cpu", epochs=0))
    assert not (tmp_path / "x").exists()
