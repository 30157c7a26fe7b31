"""End to end: ``workbench deform``, ``workbench smoothness`` and ``workbench study``."""

import json

import pytest

from workbench.cli import main


def test_deform_writes_layers_in_order_and_images(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["deform", "--model", "cifar-vgg-maxpool", "--init", "truncnormal", "--n", "6", "--seeds", "2",
               "--device", "cpu", "--out", str(out), "--quiet"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    names = [row["layer"] for row in metrics["layers"]]
    assert names == ["input", "relu1_1", "relu1_2", "down1", "relu2_1", "relu2_2", "down2",
                     "relu3_1", "relu3_2", "down3", "relu4_1", "relu4_2", "down4"]
    assert all(row["mean"] > 0 and row["std"] >= 0 for row in metrics["layers"])
    assert len(metrics["per_seed"]) == 2 and metrics["seeds"] == [0, 1]
    assert json.loads((out / "run.json").read_text())["status"] == "done"
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images == ["pairs.pdf", "pairs.png", "sensitivity.pdf", "sensitivity.png"]
    assert not list(out.rglob("*.part*"))
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split()[0] == "input" and len(printed) == 13


def test_deform_preset_and_layer_subset(tmp_path):
    out = tmp_path / "run"
    rc = main(["deform", "--model", "cifar-vgg-strided", "--init", "truncnormal", "--n", "6", "--seeds", "1",
               "--preset", "imagenet", "--layers", "input,relu1_1", "--device", "cpu", "--out", str(out), "--quiet"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["grid"], metrics["max_disp"]) == (5, 10.0)
    assert [r["layer"] for r in metrics["layers"]] == ["input", "relu1_1"]
    assert metrics["layers"][1]["std"] == 0.0  # one repeat


@pytest.mark.parametrize("args,needle", [
    (["--n", "1"], "--n must be at least 2"),
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--images", "/no/such/folder"], "not a folder"),
    (["--layers", "relu9_9"], "unknown layer"),
    (["--init", "gaussian:-2"], "bad init"),
])
def test_deform_bad_input_is_one_line_exit_2(tmp_path, capsys, args, needle):
    rc = main(["deform", "--model", "cifar-vgg-avgpool", "--n", "4", "--device", "cpu",
               "--out", str(tmp_path / "run"), "--quiet"] + args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert needle in err[-1] and err[-1].startswith("workbench: error:")
    assert "Traceback" not in "\n".join(err)


def test_deform_on_an_image_folder(tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray((rng.random((40, 50, 3)) * 255).astype(np.uint8)).save(folder / f"{k}.png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "run"
    rc = main(["deform", "--model", "cifar-vgg-avgpool", "--init", "truncnormal", "--images", str(folder),
               "--n", "8", "--seeds", "1", "--device", "cpu", "--out", str(out), "--quiet"])
    assert rc == 0
    assert json.loads((out / "metrics.json").read_text())["n_images"] == 3


def test_smoothness_json_fresh_init(capsys):
    assert main(["smoothness", "--model", "cifar-vgg-subsample", "--init", "truncnormal", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in rows][:2] == ["conv1_1", "conv1_2"] and len(rows) == 8
    assert all(abs(r["ntv"] - 1.87) < 0.05 for r in rows[1:])  # conv1_1 has only 9 weights per filter × 32
    assert main(["smoothness", "--model", "cifar-vgg-subsample", "--init", "gaussian:2", "--json"]) == 0
    smoothed = json.loads(capsys.readouterr().out)
    assert all(s["ntv"] < 0.5 * r["ntv"] for s, r in zip(smoothed, rows))


def test_smoothness_plain_text_and_bad_init(capsys):
    assert main(["smoothness", "--model", "cifar-vgg-maxpool", "--init", "default"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[0] == "conv1_1" and len(lines) == 8
    assert main(["smoothness", "--model", "cifar-vgg-maxpool", "--init", "uniform"]) == 2
    assert "unknown init" in capsys.readouterr().err


def test_study_smoothing_small(tmp_path):
    from workbench.studies.deformation import smoothing_study
    from workbench.jobs import run_job

    out = tmp_path / "study"
    metrics = run_job(smoothing_study(seeds=1, n=4, sigmas=(0.0, 1.0), out=out))
    assert list(metrics["sigmas"]) == ["0.0", "1.0"]
    ntv = [v["mean_ntv"] for v in metrics["sigmas"].values()]
    assert ntv[0] == pytest.approx(1.85, abs=0.03) and ntv[1] < 0.5 * ntv[0]
    assert [r["layer"] for r in metrics["sigmas"]["1.0"]["layers"]][0] == "input"
    assert (out / "images" / "smoothing.png").is_file()
    assert json.loads((out / "run.json").read_text())["status"] == "done"


def test_study_cli_documents_sizes_and_rejects_bad_values(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["study", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in ("pooling:", "smoothing:", "synthetic:")) and "min" in text
    assert main(["study", "pooling", "--seeds", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["study", "flowers", "--out", str(tmp_path / "y")])
    assert exc.value.code == 2


def test_ctrl_c_leaves_a_cancelled_run_with_the_finished_repeats(tmp_path):
    import os
    import select
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "deform", "--model", "cifar-vgg-avgpool", "--init",
                             "truncnormal", "--n", "16", "--seeds", "100000", "--batch-size", "8", "--device", "cpu",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a runner that starts us in the background ignores SIGINT, and children inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen = ""
        deadline = time.monotonic() + 120
        while "deform:" not in seen and time.monotonic() < deadline:  # the first batch is measured
            if select.select([proc.stderr.fileno()], [], [], 0.2)[0]:  # unbuffered (see test_signals)
                seen += os.read(proc.stderr.fileno(), 65536).decode(errors="replace")
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert json.loads((out / "run.json").read_text())["status"] == "cancelled"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is False and len(metrics["per_seed"]) < 100000
    assert "Traceback" not in err
