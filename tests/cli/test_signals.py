"""SIGINT and SIGTERM end every kind of job as cancelled, with what it had; kill -9 is interrupted."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from workbench.cli import main

LONG_JOBS = {
    "invert": ["invert", "--model", "digits-vgg", "--layer", "relu3", "--sample", "digits:0", "--restarts", "1",
               "--iters", "1000000", "--device", "cpu"],
    "deform": ["deform", "--model", "cifar-vgg-avgpool", "--init", "truncnormal", "--n", "16", "--seeds", "100000",
               "--batch-size", "8", "--device", "cpu"],
    "filtergan": ["filtergan", "train", "--model", "digits-vgg", "--layer", "conv4", "--steps", "1000000",
                  "--train-images", "64", "--checkpoint-every", "1000000", "--device", "cpu"],
}
#: the progress line each command prints once its loop runs
PROGRESS = {"invert": "invert relu3:", "deform": "deform:", "filtergan": "filtergan conv4:"}


def _start(kind: str, out) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "workbench", *LONG_JOBS[kind], "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            # a runner that starts the suite in the background ignores SIGINT; children inherit it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_progress(proc: subprocess.Popen, kind: str, timeout: float = 180.0) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while PROGRESS[kind] not in seen:
        assert time.monotonic() < deadline, f"no progress line from {kind}: {seen!r}"
        assert proc.poll() is None, f"{kind} ended early: {seen + proc.stderr.read()}"
        if select.select([proc.stderr], [], [], 0.2)[0]:
            seen += proc.stderr.readline()
    return seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("kind", sorted(LONG_JOBS))
def test_stop_signal_ends_the_job_cancelled_with_partial_results(tmp_path, kind, sig):
    out = tmp_path / "run"
    proc = _start(kind, out)
    try:
        _wait_for_progress(proc, kind)
        time.sleep(0.5)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "cancelled", info
    assert info["finished"] is not None
    metrics = json.loads((out / "metrics.json").read_text())
    if kind == "invert":
        assert metrics["partial"] is True and metrics["iterations_done"] >= 1
        assert (out / "images" / "restart_1.png").is_file()
    elif kind == "deform":
        assert metrics["complete"] is False and len(metrics["per_seed"]) >= 1
    else:
        assert metrics["cancelled_at"] >= 1
    assert not [p for p in out.rglob("*.part*")], "a half-written file was left"


def test_a_killed_run_is_listed_as_interrupted(tmp_path, capsys):
    runs = tmp_path / "runs"
    out = runs / "killed"
    proc = _start("invert", out)
    try:
        _wait_for_progress(proc, "invert")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # nobody could mark it
    assert main(["runs", str(runs), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["path"], r["status"]) for r in rows] == [(str(out), "interrupted")]
