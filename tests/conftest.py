import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest


@pytest.fixture(autouse=True)
def _deterministic_threads(monkeypatch):
    """Every test, and every job or CLI subprocess it starts, on one intra-op thread.

    The tests' problems are small, where two threads gain little on a quiet machine and lose
    3-100x beside a busy process (workbench/threads.py); one thread also makes a test's
    numbers the same on every machine. A test of the policy itself sets its own environment.
    """
    from workbench.threads import ENV, torch_threads

    monkeypatch.setenv(ENV, "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")   # subprocesses start on one thread too
    with torch_threads(1):
        yield


@pytest.fixture(autouse=True)
def _private_workspace(monkeypatch, tmp_path_factory):
    """Runs made without a folder go to a temporary workspace, and the user data folder (where
    `zoo train` writes weights the zoo prefers) is a temporary one: never the user's own."""
    from workbench.runs import WORKSPACE_ENV

    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv(WORKSPACE_ENV, str(base / "workspace"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "data"))


@pytest.fixture
def tmp_runs(tmp_path):
    return tmp_path / "runs"


@pytest.fixture(scope="module")
def digits_vgg():
    """digits-vgg loaded once per test module, on one thread while it loads (a module fixture runs before
    the per-test thread fixture above)."""
    import torch

    from workbench.models import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model("digits-vgg", device="cpu")
    torch.set_num_threads(threads)
