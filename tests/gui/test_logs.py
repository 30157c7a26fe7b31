"""The log file (workbench.logs): excepthooks for the main and other threads, faulthandler for
crashes in C, and in the window a readable message naming the log instead of a silent death."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from workbench.logs import LogFile


@pytest.fixture
def plain_hooks(monkeypatch):
    """Python's own hooks underneath ours (pytest and pytest-qt would report what we provoke)."""
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)


def test_uncaught_exceptions_go_to_the_log_and_to_the_callback(tmp_path, plain_hooks, capsys):
    path = tmp_path / "logs" / "workbench.log"
    seen = []
    previous = (sys.excepthook, threading.excepthook)
    log = LogFile(path).install(on_error=lambda line, where: seen.append((line, where)))
    try:
        assert sys.excepthook != previous[0] and threading.excepthook != previous[1]
        try:
            {}["missing key"]
        except KeyError:
            sys.excepthook(*sys.exc_info())

        def fail():
            raise ValueError("bad value\nsecond line")

        t = threading.Thread(target=fail, name="worker-7")
        t.start()
        t.join()
    finally:
        log.uninstall()
    assert (sys.excepthook, threading.excepthook) == previous
    text = path.read_text()
    assert "uncaught exception:\nTraceback" in text and "KeyError: 'missing key'" in text
    assert "uncaught exception in thread worker-7:\nTraceback" in text and "ValueError: bad value" in text
    assert seen == [("KeyError: 'missing key'", path), ("ValueError: bad value second line", path)]
    assert text.splitlines()[0].endswith("started (python " + sys.version.split()[0] + ", " + sys.platform + ")")
    assert "KeyError: 'missing key'" in capsys.readouterr().err  # and still on stderr, as before


def test_a_log_directory_that_cannot_be_made_falls_back_to_the_temporary_one(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the log directory should be")
    with LogFile(blocker / "log" / "workbench.log").install() as log:
        assert log.path.parent != blocker / "log" and log.path.is_file()
        log.write("still logging", "warning")
    assert "warning: still logging" in log.path.read_text()


def test_a_large_log_is_rotated_when_the_next_process_starts(tmp_path):
    path = tmp_path / "workbench.log"
    path.write_text("x" * 2_000_001)
    with LogFile(path).install():
        pass
    assert (tmp_path / "workbench.log.1").stat().st_size == 2_000_001
    assert path.stat().st_size < 1000


def test_a_crash_in_c_leaves_its_traceback_in_the_log(tmp_path):
    path = tmp_path / "workbench.log"
    code = textwrap.dedent(f"""
        import faulthandler
        from workbench.logs import LogFile
        LogFile({str(path)!r}).install()
        def crashing_function():
            faulthandler._sigsegv()
        crashing_function()
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    text = path.read_text()
    assert "Fatal Python error: Segmentation fault" in text and "crashing_function" in text


@pytest.mark.qt_no_exception_capture
def test_the_window_names_the_log_when_a_slot_raises(qapp, qtbot, tmp_path, plain_hooks):
    """An exception escaping a slot (a bug) shows a message with the log's path; the window stays."""
    from PySide6.QtCore import QSettings, QTimer

    from workbench.ui.app import ErrorReporter, build_window

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = build_window(settings, workspace=tmp_path / "runs", load=False)
    qtbot.addWidget(window)
    reporter = ErrorReporter()
    reporter.attach(window)
    path = tmp_path / "workbench.log"
    log = LogFile(path).install(on_error=reporter)
    try:
        def buggy_slot():
            raise ZeroDivisionError("division by zero in a slot")

        QTimer.singleShot(0, buggy_slot)
        qtbot.waitUntil(lambda: window.errors_shown == 1, timeout=10_000)
        threading.Thread(target=lambda: 1 / 0, name="stray").start()  # and from another thread
        qtbot.waitUntil(lambda: window.errors_shown == 2, timeout=10_000)
    finally:
        log.uninstall()
    box = window._error_box
    assert box.isVisible() and str(path) in box.text() and "ZeroDivisionError: division by zero" in box.text()
    assert "(2 so far)" in box.text()
    assert str(path) in window.status_label.text() and window.status_label.text().startswith("Internal error: ")
    assert any(level == "error" and str(path) in m for level, m in window.docks["LogDock"].messages)
    text = path.read_text()
    assert "buggy_slot" in text and "in thread stray" in text
    window.close()
    assert window.running_threads() == []


def test_the_log_file_is_in_the_user_log_directory(tmp_path, monkeypatch):
    from workbench.logs import default_path

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    if sys.platform.startswith("linux"):
        assert default_path() == tmp_path / "state" / "workbench" / "log" / "workbench.log"
    assert default_path().name == "workbench.log"
    assert not (tmp_path / "state").exists()  # naming it creates nothing
    assert os.environ["XDG_STATE_HOME"] == str(tmp_path / "state")
