"""``--executor ray --address``: a sweep runs on a Ray cluster it did not start (issue 17).

A local head is started for the test (``ray start --head`` on a free port, in a temporary folder of
its own) and stopped after it by killing the processes that carry the test's marker in their
environment (never ``ray stop``, which would stop every Ray of this user on the machine). Slow: Ray's
head takes seconds to start; the suite runs slow tests (pyproject's addopts do not deselect them)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests._helpers import marked_processes

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the head's processes in /proc")]


#: Ray turns token authentication on where a token file exists (~/.ray/auth_token); the test's head and
#: command share no secret, so neither uses one
NO_TOKEN = {"RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    """The address of a one-CPU Ray head started for this test; its processes are gone after it."""
    pytest.importorskip("ray")
    ray_cli = shutil.which("ray") or pytest.skip("Ray is installed without its `ray` command")
    mark = uuid.uuid4().hex
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="wb-ray-")
    env = {**os.environ, **NO_TOKEN, "OMP_NUM_THREADS": "1", "WORKBENCH_TEST_MARK": mark, "RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run([ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "1",
                              "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp],
                             env=env, capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in marked_processes(mark):
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + 10
            while marked_processes(mark) and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(temp, ignore_errors=True)
        assert marked_processes(mark) == [], "the test's Ray head outlived it"


def test_a_sweep_runs_on_the_ray_cluster_at_address(ray_head, tmp_path):
    out = tmp_path / "sweep"
    mark = uuid.uuid4().hex
    env = {**os.environ, **NO_TOKEN, "OMP_NUM_THREADS": "1", "WORKBENCH_TEST_MARK": mark}
    done = subprocess.run([sys.executable, "-m", "workbench", "sweep", "--model", "digits-vgg", "--layers", "relu1",
                           "--seeds", "0-1", "--restarts", "1", "--iters", "3", "--fine-tune", "0", "--device", "cpu",
                           "--executor", "ray", "--address", ray_head, "--quiet", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["cells"], summary["done"], summary["failed"]) == (2, 2, 0), summary
    assert json.loads((out / "run.json").read_text())["status"] == "done"
    cells = [json.loads(f.read_text()) for f in out.glob("cells/*/run.json")]
    assert [c["status"] for c in cells] == ["done", "done"]
    # the cells ran in the cluster's workers, not in the command's process
    command = json.loads((out / "run.json").read_text())["pid"]
    assert all(isinstance(c["pid"], int) and c["pid"] != command for c in cells), cells
    # the command disconnects and leaves the cluster running: none of its processes is left, the head is
    assert marked_processes(mark) == []
