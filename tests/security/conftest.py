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
