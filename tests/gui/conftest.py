"""GUI tests run offscreen (tests/conftest.py sets QT_QPA_PLATFORM) and fail if a job thread
is left running after a test: a QThread collected while running aborts the process."""

from __future__ import annotations

import gc
import threading
import time
from contextlib import contextmanager

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


@pytest.fixture
def session(qtbot, tmp_path):
    """A session with its own settings file and workspace and no model (a test module that needs
    a model loaded defines its own ``session``)."""
    from PySide6.QtCore import QSettings

    from workbench.ui.session import Session

    s = Session(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")
    yield s
    assert s.shutdown()


@contextmanager
def shown_window(qapp, root, size: tuple[int, int] | None = None):
    """The main window with its own settings and workspace under ``root`` (at ``size``), shown once
    its default model is loaded and the model's previews are made (a module's first test would
    otherwise be blamed for their jobs on a busy machine); closed after, with no job thread left."""
    from PySide6.QtCore import QSettings

    from workbench.ui.app import build_window

    window = build_window(QSettings(str(root / "settings.ini"), QSettings.Format.IniFormat), workspace=root / "runs")
    if size is not None:
        window.resize(*size)
    window.show()
    wait_until(qapp, lambda: window.session.model is not None, 120)
    wait_until(qapp, lambda: not running_job_threads(), 120)
    try:
        yield window
    finally:
        window.close()
    assert window.running_threads() == []
