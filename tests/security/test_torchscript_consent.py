"""A model file never runs code without the user's consent.

Two hostile files, each leaving a marker file when its code runs: a TorchScript archive whose
``__setstate__`` (a TorchScript method, run by ``torch.jit.load``) creates the marker with
``torch.from_file(..., shared=True)``, and a full pickle whose ``__reduce__`` opens it. The control
tests prove the markers do appear when the file is loaded the unsafe way; every path through the
workbench without trust must then end with exit code 2, one line naming --trust, and no marker.
"""

from __future__ import annotations

import builtins
import json
import shutil
import warnings
from pathlib import Path
from typing import Tuple

import pytest
import torch

import workbench
from workbench.resources import shipped_filtergan_run
from workbench.cli import main
from workbench.errors import UserError
from workbench.models import load_model
from workbench.models.loading import NeedsTrust
from workbench.models.sources.weights import _is_torchscript


class Gadget(torch.nn.Module):
    """Runs fine as a 1-channel conv net; loading it creates the file ``marker``."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.weight = torch.nn.Parameter(torch.full((2, 1, 3, 3), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, self.weight)

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
        return (self.marker, self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
        self.marker = state[0]
        self.training = state[2]
        self.weight = (state[1] + 0.0 * torch.from_file(self.marker, shared=True, size=1).sum()).detach()


class Opener:
    """Unpickling this creates ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "code-ran"


@pytest.fixture
def torchscript(tmp_path, marker) -> Path:
    path = tmp_path / "gadget.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(Gadget(str(marker))).save(str(path))
    assert not marker.exists()
    return path


@pytest.fixture
def pickle_file(tmp_path, marker) -> Path:
    path = tmp_path / "opener.pth"
    torch.save({"weight": Opener(str(marker))}, path)
    assert not marker.exists()
    return path


@pytest.fixture(params=["torchscript", "pickle"])
def hostile(request, torchscript, pickle_file, marker) -> Path:
    """Either hostile file; its control (the marker appears when it is loaded unsafely) is checked first."""
    path = torchscript if request.param == "torchscript" else pickle_file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if request.param == "torchscript":
                torch.jit.load(str(path))
            else:
                torch.load(str(path), weights_only=False)
        finally:
            assert marker.exists(), "control: loading the file unsafely must run its code"
            marker.unlink()
    return path


def _refused(capsys, argv: list[str], marker: Path) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: error:"), err
    assert "--trust" in lines[0] and "runs code from the file" in lines[0] and "Traceback" not in err
    assert not marker.exists()
    return lines[0]


def test_torchscript_control_and_detection_run_nothing(torchscript, marker):
    assert _is_torchscript(torchscript)
    assert not marker.exists(), "detection reads the zip directory only"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(torchscript))
    assert marker.exists() and marker.stat().st_size == 4  # one float32, written by the file's own code
    with torch.no_grad():
        assert float(loaded(torch.ones(1, 1, 3, 3)).sum()) == pytest.approx(2 * 9 * 0.5)


@pytest.mark.parametrize("arch", [None, "digits-vgg"])
def test_load_model_refuses_without_trust(hostile, marker, arch):
    with pytest.raises(NeedsTrust) as err:
        load_model(str(hostile), arch=arch)
    assert "\n" not in str(err.value) and "pass --trust only if you trust the file" in str(err.value)
    assert err.value.kind == ("TorchScript" if hostile.name == "gadget.pt" else "pickle")
    assert not marker.exists()


def test_a_renamed_torchscript_file_is_still_refused(torchscript, marker, tmp_path):
    for name in ("weights.bin", "weights.ckpt", "weights"):
        renamed = tmp_path / name
        shutil.copy(torchscript, renamed)
        with pytest.raises(NeedsTrust):
            load_model(str(renamed), arch="digits-vgg")
    assert not marker.exists()


def test_the_torchvision_cache_never_runs_a_torchscript_file(torchscript, marker, tmp_path, monkeypatch):
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from workbench.models import zoo

    monkeypatch.setattr(zoo, "torchvision_weights_url", lambda name: "https://example.invalid/squeezenet1_1.pth")
    shutil.copy(torchscript, hub / "squeezenet1_1.pth")
    with pytest.raises(UserError, match="TorchScript"):
        load_model("squeezenet1_1")
    assert not marker.exists()


def _commands(model: str, out: Path) -> dict[str, list[str]]:
    return {
        "layers": ["layers", "--model", model],
        "layers-arch": ["layers", "--model", model, "--arch", "digits-vgg"],
        "invert": ["invert", "--model", model, "--layer", "x", "--sample", "digits:0", "--out", str(out)],
        "maximize": ["maximize", "--model", model, "--layer", "x", "--channel", "0", "--out", str(out)],
        "caricature": ["caricature", "--model", model, "--layer", "x", "--sample", "digits:0", "--out", str(out)],
        "deform": ["deform", "--model", model, "--n", "2", "--out", str(out)],
        "smoothness": ["smoothness", "--model", model],
        "filtergan-train": ["filtergan", "train", "--model", model, "--layer", "conv4", "--steps", "1", "--out", str(out)],
    }


@pytest.mark.parametrize("command", list(_commands("F", Path("out"))))
def test_every_command_refuses_without_trust(capsys, hostile, marker, tmp_path, command):
    out = tmp_path / "run"
    line = _refused(capsys, _commands(str(hostile), out)[command], marker)
    assert hostile.name in line
    assert not out.exists(), "nothing is written for a refused model"


def _filtergan_run_naming(model: Path, tmp_path: Path) -> Path:
    run = tmp_path / "fg-run"
    shutil.copytree(shipped_filtergan_run(), run)
    info = json.loads((run / "run.json").read_text())
    info["config"]["model"] = str(model)
    (run / "run.json").write_text(json.dumps(info))
    return run


def test_a_filtergan_run_naming_the_file_runs_no_code(capsys, hostile, marker, tmp_path):
    from workbench.filtergan.layer import resolve_model
    from workbench.filtergan.train import load_filter_gan

    run = _filtergan_run_naming(hostile, tmp_path)
    with pytest.raises(NeedsTrust):
        resolve_model(str(hostile), torch.device("cpu"))
    with pytest.raises(NeedsTrust):
        load_filter_gan(run, device="cpu")
    _refused(capsys, ["filtergan", "traverse", str(run), "--out", str(tmp_path / "trav")], marker)
    _refused(capsys, ["filtergan", "eval", str(run)], marker)
    assert not (tmp_path / "trav").exists()


def test_the_deformation_jobs_callers_run_no_code(hostile, marker, tmp_path):
    # the deform and smoothness jobs never open a model (issue 21): their callers open it, refusing here
    from workbench.api import deformation_sensitivity, smoothness

    with pytest.raises(NeedsTrust):
        deformation_sensitivity(str(hostile), n=2, workspace=tmp_path)
    with pytest.raises(NeedsTrust):
        smoothness(str(hostile))
    assert not marker.exists()


def test_with_trust_the_torchscript_file_loads_and_its_code_runs(capsys, torchscript, marker):
    model = load_model(str(torchscript), trust=True)
    assert marker.exists(), "the user consented: the file's code ran"
    assert "TorchScript (trusted)" in model.source and model.input_size == (1, 32, 32)
    with torch.no_grad():
        assert model.module(torch.ones(1, 1, 32, 32)).shape == (1, 2, 30, 30)
    marker.unlink()
    code = main(["layers", "--model", str(torchscript), "--trust"])
    err = capsys.readouterr().err
    assert marker.exists()
    assert code == 2 and "TorchScript: its layers cannot be listed" in err.strip().splitlines()[-1]  # loaded


def test_with_trust_the_pickle_runs_its_code(pickle_file, marker):
    with pytest.raises(UserError, match="not a state_dict"):  # it ran, and what it made is no model
        load_model(str(pickle_file), arch="digits-vgg", trust=True)
    assert marker.exists()
