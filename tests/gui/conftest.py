"""GUI tests run offscreen (tests/conftest.py sets QT_QPA_PLATFORM) and fail if a job thread
is left running after a test: a QThread collected while running aborts the process."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("pytestqt")


@pytest.fixture(autouse=True)
def no_thread_left(qapp):
    before = threading.active_count()
    yield
    from workbench.ui.worker import running_threads

    end = time.monotonic() + 10
    while running_threads() and time.monotonic() < end:
        qapp.processEvents()
        time.sleep(0.01)
    left = running_threads()
    assert not left, f"{len(left)} job thread(s) still running after the test"
    assert threading.active_count() <= before, "a Python thread was left running"


def wait_until(qapp, condition, timeout=60.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        qapp.processEvents()
        time.sleep(0.005)
