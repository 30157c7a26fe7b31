"""Starting and quitting `workbench`: quit at any moment exits 0 (no "QThread: Destroyed"), no
display is one line and exit code 2 without Qt aborting, and the log file catches what escapes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbench.ui.app import XCB_LIBRARIES, display_problem

#: Runs ``python -m workbench`` as is, quitting through the window's Quit action (Ctrl+Q) after
#: ``QUIT_AFTER`` seconds of the event loop, from a timer set as QApplication is made.
DRIVER = textwrap.dedent("""
    import os, runpy, sys
    from PySide6.QtCore import QTimer
    import workbench.ui.app as app

    make = app.make_application
    def make_and_quit(argv=None):
        qapp = make(argv)
        def quit():
            for w in qapp.topLevelWidgets():
                if w.objectName() == "MainWindow":
                    print("loaded" if w.session.model is not None else "loading", flush=True)
                    w.quit_action.trigger()
        QTimer.singleShot(int(1000 * float(os.environ["QUIT_AFTER"])), quit)
        return qapp
    app.make_application = make_and_quit
    sys.argv = ["workbench"]
    runpy.run_module("workbench", run_name="__main__")
""")


def _env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return {**env, "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "HOME": str(tmp_path), **extra}


@pytest.mark.parametrize("seconds", [0.05, 0.3, 2.5])
def test_quit_at_any_moment_of_start_up_exits_0(tmp_path, seconds):
    """0.05 s: before the loader has started; 0.3 s: importing torch; 2.5 s: loading or just
    loaded (previews starting). Each must join its threads and exit 0."""
    r = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=180, cwd=tmp_path,
                       env=_env(tmp_path, QT_QPA_PLATFORM="offscreen", QUIT_AFTER=str(seconds)))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "QThread: Destroyed" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stdout.strip() in ("loading", "loaded")
    if seconds < 1:
        assert r.stdout.strip() == "loading"  # the quit did land while the model was loading
    log = (tmp_path / "state" / "workbench" / "log" / "workbench.log").read_text()
    assert "started" in log and "uncaught" not in log


def test_no_display_is_one_line_and_exit_code_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "workbench"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env=_env(tmp_path))
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: error: no display"), r.stderr
    assert "DISPLAY" in lines[0] and "xvfb-run" in lines[0]
    assert r.stdout == ""


def test_an_unusable_display_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    """A display nobody serves: Qt would abort() the process; checked before Qt starts."""
    from workbench.cli import main

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":9731")
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert ("cannot open the display :9731" in err[0]) or ("sudo apt-get install" in err[0])


def test_missing_qt_libraries_are_named_with_their_packages(tmp_path, monkeypatch):
    """The xcb plugin cannot be loaded: every missing library of the known list is named, with
    the apt packages to install (the loader is faked: this machine may have them all)."""
    from workbench.ui import app

    plugin = tmp_path / "libqxcb.so"
    missing = {"libxcb-cursor.so.0", "libxcb-icccm.so.4"}
    tried = []

    def load(name):
        tried.append(name)
        if name == str(plugin):
            raise OSError("libxcb-cursor.so.0: cannot open shared object file: No such file or directory")
        if name in missing:
            raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(app, "_xcb_plugin", lambda: plugin)
    assert app.missing_qt_libraries(load) == ["libxcb-cursor.so.0", "libxcb-icccm.so.4"]
    assert set(tried) == {str(plugin), *XCB_LIBRARIES}
    text = display_problem({"DISPLAY": ":0"}, "linux", load=load)
    assert "\n" not in text and "(libxcb-cursor.so.0, libxcb-icccm.so.4)" in text
    assert text.endswith("sudo apt-get install libxcb-cursor0 libxcb-icccm4")
    assert display_problem({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", load=load) == text
    # a library outside the list is still named, as the loader spelled it
    odd = lambda name: (_ for _ in ()).throw(OSError("libweird.so.3: cannot open")) if name == str(plugin) else None
    assert app.missing_qt_libraries(odd) == ["libweird.so.3"]


@pytest.mark.parametrize("environ, platform", [({"QT_QPA_PLATFORM": "offscreen"}, "linux"),
                                               ({"WAYLAND_DISPLAY": "wayland-0"}, "linux"),
                                               ({}, "darwin"), ({}, "win32")])
def test_other_platforms_are_left_to_qt(environ, platform):
    assert display_problem(environ, platform, load=lambda name: (_ for _ in ()).throw(OSError("x"))) is None


def _wait_for_handler(proc, sig, timeout=120.0):
    """Wait until ``proc`` catches ``sig`` (its bit in /proc's SigCgt mask): the app installs its stop
    handlers once the window exists, so a signal sent earlier, on a slow or loaded machine, would meet
    the default action and say nothing about the window. A fixed sleep (4 s) lost that race at load 24."""
    status = Path(f"/proc/{proc.pid}/status")
    deadline = time.monotonic() + timeout
    if not Path("/proc/self/status").exists():  # not Linux: the old fixed wait
        time.sleep(4.0)
        return
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            lines = status.read_text().splitlines()
        except OSError:  # it ended between the poll and the read
            continue
        caught = next((int(line.split()[1], 16) for line in lines if line.startswith("SigCgt:")), 0)
        if caught >> (int(sig) - 1) & 1:
            time.sleep(0.5)  # and the event loop running
            return
        time.sleep(0.1)
    raise AssertionError(f"the app never installed its {sig.name} handler: {proc.poll()=}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_in_the_terminal_closes_the_window_cleanly(tmp_path, sig):
    """Ctrl+C or SIGTERM to ``workbench`` closes the window like Ctrl+Q: exit 0, threads joined."""
    proc = subprocess.Popen([sys.executable, "-m", "workbench"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, env=_env(tmp_path, QT_QPA_PLATFORM="offscreen"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for_handler(proc, signal.SIGTERM)  # installed with SIGINT's once the window is up
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "QThread: Destroyed" not in err, err[-2000:]
