"""`workbench filtergan train | eval | traverse` end to end, in a subprocess like a user (tiny configuration)."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image


def workbench(*args):
    # one thread: the CI machine has two cores shared by many processes, where torch's
    # two-thread kernels spend most of their time waiting for each other
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("fgcli") / "gan"
    r = workbench("filtergan", "train", "--model", "digits-vgg", "--layer", "conv4", "--steps", "4", "--latent-dim", "4",
                  "--batch-size", "4", "--train-images", "32", "--checkpoint-every", "2", "--seed", "1",
                  "--device", "cpu", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout.strip().splitlines()[-1])


def test_train_eval_traverse(trained, tmp_path):
    out, summary = trained
    assert summary["steps"] == 4 and summary["z_dependence"] > 0.01
    assert json.loads((out / "run.json").read_text())["status"] == "done"
    r = workbench("filtergan", "eval", str(out), "--retrain-epochs", "1", "--mds-samples", "2", "--train-images", "128",
                  "--filter-sets", "3", "--device", "cpu", "--quiet")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.9 < metrics["accuracy_real"] <= 1.0
    assert 0.0 <= metrics["accuracy_generated"] <= 1.0
    assert json.loads(r.stdout.strip().splitlines()[-1])["accuracy_generated"] == metrics["accuracy_generated"]
    assert Image.open(out / "images" / "mds.png").size[0] >= 600
    trav = tmp_path / "trav"
    r = workbench("filtergan", "traverse", str(out), "--sample", "digits:2", "--dims", "0", "3", "--xi", "2",
                  "--grid", "3", "--iters", "3", "--device", "cpu", "--out", str(trav), "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["dims"] == [0, 3]
    assert Image.open(trav / "images" / "grid.png").size[0] > 3 * 64


def test_resume_continues_to_more_steps(trained, tmp_path):
    out, _ = trained
    r = workbench("filtergan", "train", "--model", "digits-vgg", "--layer", "conv4", "--steps", "6", "--latent-dim", "4",
                  "--batch-size", "4", "--train-images", "32", "--checkpoint-every", "2", "--seed", "1",
                  "--device", "cpu", "--out", str(out), "--quiet", "--resume")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "metrics.json").read_text())["history"]["step"][-1] == 6


@pytest.mark.parametrize("args, needle", [
    (["train", "--model", "digits-vgg", "--layer", "relu4", "--steps", "2"], "not a convolution"),
    (["traverse", "{run}", "--grid", "4"], "odd"),
    (["traverse", "{run}", "--dims", "0", "7"], "out of range"),
    (["eval", "{tmp}"], "not a run folder"),
])
def test_bad_input_is_one_line_and_exit_2(trained, tmp_path, capsys, args, needle):
    from workbench.cli import main

    out, _ = trained
    args = [a.replace("{run}", str(out)).replace("{tmp}", str(tmp_path)) for a in args]
    code = main(["filtergan", *args, "--device", "cpu", *(["--out", str(tmp_path / "o")] if args[0] != "eval" else [])])
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_evaluating_the_shipped_run_writes_a_new_folder_and_leaves_resources_alone(tmp_path, capsys):
    from pathlib import Path

    from workbench.cli import main
    from workbench.resources import shipped_filtergan_run

    shipped = shipped_filtergan_run()
    before = _tree(shipped)
    small = ["--retrain-epochs", "1", "--mds-samples", "2", "--filter-sets", "2", "--train-images", "64",
             "--device", "cpu", "--quiet"]
    assert main(["filtergan", "eval", str(shipped), *small, "--workspace", str(tmp_path / "ws")]) == 0
    copied = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run"]
    assert Path(copied).parent == tmp_path / "ws" and (Path(copied) / "images" / "mds.png").is_file()
    out = tmp_path / "evaluated"
    assert main(["filtergan", "eval", str(shipped), *small, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["run"] == str(out)
    assert _tree(shipped) == before  # not one byte of the shipped run changed
    info = json.loads((out / "run.json").read_text())
    assert info["kind"] == "filtergan" and info["status"] == "done" and info["derived_from"] == str(shipped)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_config"]["filter_sets"] == 2 and 0.0 <= metrics["accuracy_generated"] <= 1.0
    for kind in ("generated", "noise", "permuted"):  # sect. 5.2 (i) beside its controls, frozen and re-trained
        assert 0.0 <= metrics[f"accuracy_{kind}"] <= 1.0 and 0.0 <= metrics[f"accuracy_{kind}_frozen"] <= 1.0
    assert (out / "images" / "mds.png").is_file() and (out / GENERATOR).is_file()


GENERATOR = "tensors/generator.safetensors"
