"""GUI tests run offscreen (tests/conftest.py sets QT_QPA_PLATFORM) and fail if a job thread
is left running after a test: a QThread collected while running aborts the process."""

from __future__ import annotations

import gc
import threading
import time

import pytest

pytest.importorskip("pytestqt")


def running_job_threads() -> list:
    """Threads of every job slot still alive in this process (each slot owns its own)."""
    from workbench.ui.worker import JobRunner

    runners = [o for o in gc.get_objects() if issubclass(type(o), JobRunner)]
    alive = []
    for runner in runners:
        try:
            alive += runner.threads()
        except RuntimeError:  # its C++ object is gone, and with it any thread it had
            continue
    return alive


def python_threads() -> int:
    """Threads started by Python. A job thread that touches ``threading`` (a heartbeat's join)
    leaves a ``_DummyThread`` record behind for good; it is no running thread. Nor is tqdm's
    monitor: torch.fx's Interpreter makes a (disabled) tqdm bar when tqdm is installed, and tqdm
    starts one daemon monitor per process for good."""
    return sum(not isinstance(t, threading._DummyThread) and type(t).__name__ != "TMonitor"
               for t in threading.enumerate())


@pytest.fixture(autouse=True)
def no_thread_left(qapp):
    before = python_threads()
    yield
    end = time.monotonic() + 10
    while running_job_threads() and time.monotonic() < end:
        qapp.processEvents()
        time.sleep(0.01)
    left = running_job_threads()
    assert not left, f"{len(left)} job thread(s) still running after the test"
    assert python_threads() <= before, "a Python thread was left running"


def wait_until(qapp, condition, timeout=60.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        qapp.processEvents()
        time.sleep(0.005)
