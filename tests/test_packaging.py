"""Installed like any package: resources/ ships as ``workbench_resources`` (read through
importlib.resources), the wheel carries it, and trained weights go to the user's data folder."""

from __future__ import annotations

import importlib.resources
import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

from workbench import resources
from workbench.cli import main

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ["models/digits-vgg.safetensors", "models/digits-vgg.json", "models/digits-lenet5.safetensors",
           "models/digits-lenet5.json", "filtergan/digits-vgg-conv4/run.json",
           "filtergan/digits-vgg-conv4/tensors/generator.safetensors",
           "filtergan/digits-vgg-conv4/tensors/mds.safetensors"]


def test_resources_are_reachable_through_importlib_resources():
    root = importlib.resources.files("workbench_resources")
    for name in SHIPPED:
        assert root.joinpath(name).is_file(), name
    assert resources.resources_root() == Path(str(root))
    assert resources.shipped_filtergan_run() == Path(str(root)) / "filtergan" / "digits-vgg-conv4"
    with importlib.resources.as_file(root.joinpath("models", "digits-vgg.json")) as path:
        assert json.loads(path.read_text())["name"] == "digits-vgg"
    assert resources.display_path(root.joinpath("models", "digits-vgg.safetensors")) == \
        str(Path("resources/models/digits-vgg.safetensors"))


def test_pyproject_lists_every_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert sorted(config["packages"]) == sorted(find_packages(str(REPO), include=["workbench*"])
                                                + ["workbench_resources"])
    assert config["package-dir"] == {"workbench_resources": "resources"}


def test_the_wheel_carries_the_resources(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("workbench", "resources"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=120)
    [wheel] = (tmp_path / "dist").glob("cnn_workbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in SHIPPED:
        assert f"workbench_resources/{name}" in names
    assert "workbench/ui/app.py" in names and not any(n.startswith(("tests/", "resources/")) for n in names)


def test_zoo_train_writes_to_the_user_data_folder_which_the_zoo_reads_first(capsys, tmp_path, monkeypatch):
    from workbench.models import load_model, zoo

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    models = tmp_path / "workbench" / "models"
    assert resources.user_models_dir() == models
    bundled = resources.resource_path("models", "digits-lenet5.safetensors")
    assert zoo.weights_path("digits-lenet5") == bundled
    assert main(["zoo", "train", "digits-lenet5", "--epochs", "1", "--limit", "64", "--quiet", "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["path"] == str(models / "digits-lenet5.safetensors")
    assert (models / "digits-lenet5.json").is_file() and bundled.is_file()
    assert zoo.weights_path("digits-lenet5") == models / "digits-lenet5.safetensors"
    model = load_model("digits-lenet5")
    assert model.trained and model.source == f"bundled: {models / 'digits-lenet5.safetensors'}"
    assert model.metadata["train_images"] == 64


class _Model:
    def __init__(self, trained: bool, notice: str | None) -> None:
        self.trained, self.notice, self.source = trained, notice, "untrained (random init, seed 0)"


def test_selftest_names_an_untrained_model_or_a_missing_filtergan_run(tmp_path, monkeypatch):
    from workbench.ui.app import _installation_problem

    assert _installation_problem(_Model(True, None)) is None
    problem = _installation_problem(_Model(False, "digits-vgg: no trained weights at x; the model is UNTRAINED"))
    assert "untrained" in problem and "UNTRAINED" in problem and "\n" not in problem
    monkeypatch.setattr(resources, "resources_root", lambda: tmp_path)
    problem = _installation_problem(_Model(True, None))
    assert "filter-GAN run" in problem and "run.json" in problem
