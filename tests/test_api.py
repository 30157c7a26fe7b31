"""The Python API on a module in memory: the same jobs and run folders as the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

import workbench
from workbench.errors import UserError


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


def test_invert_a_module_in_memory_writes_a_run_folder(tmp_path):
    net = small_net()
    result = workbench.invert(net, "4", "digits:3", input_size=(1, 32, 32), mean=(0.5,), std=(0.25,),
                              iters=30, restarts=2, fine_tune_iters=0, seed=1, device="cpu", workspace=tmp_path)
    assert result.images.shape == (2, 32, 32, 1)
    assert result.run.path.parent == tmp_path
    saved = json.loads((result.run.path / "run.json").read_text())
    assert saved["status"] == "done"
    assert saved["model"]["spec"]["input_size"] == [1, 32, 32]
    assert saved["model"]["name"].startswith("<in-memory Sequential")
    errors = result.metrics["reconstruction_error"]
    assert len(errors) == 2 and all(0 < e < 1 for e in errors)  # eq. 3: better than a blank image (1.0)


def test_the_same_seed_gives_the_same_images_and_a_reused_model_keeps_its_truncation(tmp_path):
    model = workbench.open_model("digits-vgg", device="cpu")
    a = workbench.maximize(model, "relu5", 0, iters=40, restarts=1, device="cpu", workspace=tmp_path)
    phi = model.truncate("relu5")
    b = workbench.maximize(model, "relu5", 0, iters=40, restarts=1, device="cpu", workspace=tmp_path)
    assert model.truncate("relu5") is phi
    assert torch.equal(torch.from_numpy(a.images), torch.from_numpy(b.images))
    assert a.run.path != b.run.path
    # the paper's component: the centre neuron of the 8×8 map, ρ = its receptive field (sect. 6.2)
    assert a.metrics["component"] == "neuron" and tuple(a.metrics["neuron"]) == (4, 4)
    assert a.metrics["rho"] == model.layer("relu5").rf_size and a.metrics["C_over_rho2"] == 1.0
    assert min(a.metrics["activation_over_M"]) > 0.5  # the digits' own maximum M is reached by half at least


def test_maximize_a_neuron_and_caricature(tmp_path):
    model = workbench.open_model(small_net(), input_size=(1, 32, 32))
    result = workbench.maximize(model, "1", 2, neuron=(8, 8), iters=10, restarts=1, device="cpu", workspace=tmp_path)
    assert result.metrics["component"] == "neuron"
    assert result.metrics["rf_size"] == 3
    car = workbench.caricature(model, "1", "digits:5", iters=10, restarts=1, device="cpu", workspace=tmp_path)
    assert car.images.shape == (1, 32, 32, 1)


def test_deformation_sensitivity_and_smoothness_of_a_module(tmp_path):
    net = small_net()
    metrics = workbench.deformation_sensitivity(net, input_size=(1, 32, 32), n=6, seeds=1, batch_size=6,
                                                device="cpu", workspace=tmp_path)
    rows = {r["layer"]: r for r in metrics["layers"]}
    assert "4" in rows and all(math.isfinite(r["mean"]) for r in metrics["layers"])
    assert all(r["mean"] > 0 for r in metrics["layers"])  # a deformation changes every representation
    ntv = workbench.smoothness(net, input_size=(1, 32, 32))
    assert [r["layer"] for r in ntv] == ["0", "3"]
    assert all(0.5 < r["ntv"] < 3 for r in ntv)  # a fresh init is far from smooth (sect. 4.1: ~1.87 for 3×3)


def test_bad_calls_are_one_line_errors(tmp_path):
    net = small_net()
    with pytest.raises(UserError, match="input_size"):
        workbench.invert(net, "4", "digits:0", workspace=tmp_path)
    with pytest.raises(UserError, match="did you mean iters"):
        workbench.invert(net, "4", "digits:0", input_size=(1, 32, 32), iter=5, workspace=tmp_path)
    with pytest.raises(UserError, match="unknown layer"):
        workbench.invert(net, "nope", "digits:0", input_size=(1, 32, 32), workspace=tmp_path)
    with pytest.raises(UserError, match="channel 99 out of range"):
        workbench.maximize(net, "4", 99, input_size=(1, 32, 32), workspace=tmp_path)
    with pytest.raises(UserError, match="nn.Module"):
        workbench.invert(42, "4", "digits:0", workspace=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_import_workbench_is_cheap():
    code = "import sys, workbench; assert 'torch' not in sys.modules; print(workbench.invert.__module__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "workbench.api"


def test_no_submodule_shadows_an_api_name():
    """``import workbench.x`` sets the attribute ``x`` on the package: no module may be named like a verb."""
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(workbench.__path__, "workbench."):
        if not info.name.startswith(("workbench.ui", "workbench.__main__")):
            importlib.import_module(info.name)
    import workbench.api as api

    for name in workbench.API:
        assert getattr(workbench, name) is getattr(api, name), name
