"""Fixtures of the security suite (hostile inputs: tests/security/hostile.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_atlas(tmp_path_factory) -> Path:
    """A finished atlas of channel 0 of the digits net's relu1 (2 iterations): copy it before changing it."""
    from workbench.cli import main

    out = tmp_path_factory.mktemp("atlas") / "atlas"
    assert main(["atlas", "--layer", "relu1", "--channels", "0-0", "--iters", "2", "--device", "cpu",
                 "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_filtergan(tmp_path_factory) -> Path:
    """A finished 2-step filter-GAN run of the digits net's conv1, with its checkpoint: copy it before changing it."""
    from workbench.cli import main

    out = tmp_path_factory.mktemp("filtergan") / "fg"
    assert main(["filtergan", "train", "--model", "digits-vgg", "--layer", "conv1", "--steps", "2", "--train-images",
                 "64", "--batch-size", "8", "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    return out
