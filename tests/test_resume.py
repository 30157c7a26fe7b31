"""A filter-GAN --resume that fails leaves the finished run exactly as it was."""

from __future__ import annotations

import pytest

from workbench.errors import UserError
from workbench.filtergan import FilterGanConfig
from workbench.filtergan import train as train_module
from workbench.jobs import run_job
from workbench.models import load_model

TINY = dict(model="digits-vgg", layer="conv4", latent_dim=4, batch_size=4, train_images=32, checkpoint_every=2,
            seed=1, device="cpu")


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def model():
    return load_model("digits-vgg")


@pytest.fixture
def finished(tmp_path, model):
    out = tmp_path / "gan"
    run_job(train_module.train_filter_gan(FilterGanConfig(steps=4, **TINY), out=out, model=model))
    return out


def test_a_resume_that_fails_after_training_restores_every_file(finished, model, monkeypatch):
    before = _tree(finished)

    def broken(run, history, *figure):
        raise RuntimeError("disk trouble while plotting")

    monkeypatch.setattr(train_module, "_save_loss_plot", broken)  # fails after new checkpoints were written
    with pytest.raises(RuntimeError, match="disk trouble"):
        run_job(train_module.train_filter_gan(FilterGanConfig(steps=8, **TINY), out=finished, model=model, resume=True))
    assert _tree(finished) == before
    assert not [p for p in finished.parent.iterdir() if p.name.startswith(".")], "the backup copy was left behind"


def test_a_resume_from_a_damaged_checkpoint_changes_nothing(finished, model):
    (finished / "checkpoint.safetensors").write_bytes(b"not safetensors")
    before = _tree(finished)
    with pytest.raises(UserError, match="not a readable safetensors file"):
        run_job(train_module.train_filter_gan(FilterGanConfig(steps=8, **TINY), out=finished, model=model, resume=True))
    assert _tree(finished) == before


def test_a_resume_that_finishes_keeps_its_progress(finished, model):
    run = run_job(train_module.train_filter_gan(FilterGanConfig(steps=6, **TINY), out=finished, model=model, resume=True))
    assert run.status == "done" and run.metrics()["steps"] == 6
    assert not [p for p in finished.parent.iterdir() if p.name.startswith(".")]
