"""`workbench invert | maximize | caricature | demo` end to end, in a subprocess like a user."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def workbench(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_invert_writes_a_complete_run_folder(tmp_path):
    out = tmp_path / "run"
    r = workbench("invert", "--model", "digits-vgg", "--layer", "relu1", "--sample", "digits:0",
                  "--restarts", "2", "--iters", "40", "--seed", "3", "--device", "cpu", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["reconstruction_error"]) == 2
    assert metrics["reconstruction_error_mean"] == pytest.approx(summary["reconstruction_error_mean"])
    assert metrics["classification_consistency"] in (0.0, 0.5, 1.0)
    assert json.loads((out / "run.json").read_text())["status"] == "done"
    assert Image.open(out / "images" / "grid.png").size[0] > 100


def test_maximize_and_caricature_from_files(tmp_path):
    r = workbench("maximize", "--model", "digits-vgg", "--layer", "relu5", "--channel", "2", "--restarts", "1",
                  "--iters", "20", "--out", str(tmp_path / "m"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "activation_over_M" in json.loads((tmp_path / "m" / "metrics.json").read_text())
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)).save(photo)
    r = workbench("caricature", "--model", "digits-vgg", "--layer", "relu2", "--image", str(photo), "--restarts", "1",
                  "--iters", "10", "--out", str(tmp_path / "c"), "--quiet")
    assert r.returncode == 0, r.stderr


def test_progress_bar_reports_iterations(tmp_path):
    r = workbench("invert", "--model", "digits-vgg", "--layer", "relu1", "--sample", "digits:1", "--restarts", "1",
                  "--iters", "20", "--fine-tune", "0", "--out", str(tmp_path / "p"))
    assert r.returncode == 0, r.stderr
    assert "20/20 (100%)" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["invert", "--model", "no-such-model", "--layer", "relu1", "--sample", "digits:0"], "unknown model"),
    (["invert", "--model", "digits-vgg", "--layer", "relu99", "--sample", "digits:0"], "unknown layer"),
    (["invert", "--model", "digits-vgg", "--layer", "relu1", "--image", "missing.png"], "not found"),
    (["invert", "--model", "digits-vgg", "--layer", "relu1", "--sample", "digits:0", "--restarts", "0"], "at least 1"),
    (["invert", "--model", "digits-vgg", "--layer", "relu1", "--sample", "digits:0", "--iters", "3", "-C", "1e39"], "at most"),
    (["maximize", "--model", "digits-vgg", "--layer", "relu5", "--channel", "500"], "out of range"),
    # the CLI opens --judge before the job (issue 21), refusing a hidden layer before opening it
    (["maximize", "--model", "digits-vgg", "--layer", "relu3", "--channel", "0", "--judge", "digits-lenet5"],
     "--judge scores a class"),
    (["invert", "--model", "digits-vgg", "--layer", "relu1", "--sample", "digits:0", "--restarts", "two"], "invalid int"),
])
def test_errors_are_one_line_and_exit_2(tmp_path, args, message):
    r = workbench(*args, "--out", str(tmp_path / "o"))
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("workbench: error:")]
    assert len(errors) == 1 and r.stderr.strip().splitlines()[-1] == errors[0], r.stderr


def test_corrupt_image_is_refused_and_out_is_never_overwritten(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    r = workbench("invert", "--model", "digits-vgg", "--layer", "relu1", "--image", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "cannot read image" in r.stderr and "Traceback" not in r.stderr
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    r = workbench("invert", "--model", "digits-vgg", "--layer", "relu1", "--sample", "digits:0", "--out", str(taken))
    assert r.returncode == 2 and "not empty" in r.stderr
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]


def test_demo_writes_one_labelled_figure(tmp_path):
    r = workbench("demo", "--iters", "15", "--device", "cpu", "--out", str(tmp_path / "demo"))
    assert r.returncode == 0, r.stderr
    grid = Image.open(tmp_path / "demo" / "images" / "grid.png")
    assert grid.size[0] > 400 and grid.size[1] > 300
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert len(metrics["runs"]) == 10
