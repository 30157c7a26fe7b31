"""Start the desktop workbench: QApplication, settings, theme, the window, and ``--selftest``.

The window is shown before torch is imported: the default model (``digits-vgg``) and the
sample reference (``digits:0``) load on a worker thread behind a busy indicator.

Before Qt is started, :func:`display_problem` checks that there is a display and that Qt's
xcb plugin can load its system libraries: Qt itself would abort the process without a word
that helps. Uncaught exceptions go to the log file (:mod:`workbench.logs`) and to a message
in the window.
"""

from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

ORGANIZATION = "CNN Workbench"
APPLICATION = "workbench"
DEFAULT_MODEL = "digits-vgg"

#: What Qt's xcb platform plugin links against (Qt 6 X11 requirements), with the Debian/Ubuntu
#: package of each library: listed when the plugin cannot load.
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0", "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0", "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1", "libxcb-shm.so.0": "libxcb-shm0", "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-util.so.1": "libxcb-util1", "libxcb-render.so.0": "libxcb-render0", "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1", "libX11.so.6": "libx11-6", "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0", "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6", "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0", "libdbus-1.so.3": "libdbus-1-3", "libglib-2.0.so.0": "libglib2.0-0",
}


def _xcb_plugin() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return path if path.is_file() else None


def missing_qt_libraries(load: Callable[[str], object] = ctypes.CDLL, plugin: Path | None = None) -> list[str]:
    """System libraries Qt's xcb plugin cannot find (empty if it loads)."""
    plugin = plugin or _xcb_plugin()
    if plugin is None:
        return []
    try:
        load(str(plugin))
        return []
    except OSError as exc:
        first = str(exc).split(":")[0].strip()
    missing = []
    for name in XCB_LIBRARIES:
        try:
            load(name)
        except OSError:
            missing.append(name)
    if first not in missing and first != str(plugin):
        missing.insert(0, first)
    return missing


def _can_connect(display: str) -> bool:
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return True  # the library check has reported it already
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)
    try:
        return connection is not None and xcb.xcb_connection_has_error(connection) == 0
    finally:
        if connection is not None:
            xcb.xcb_disconnect(connection)


def display_problem(environ: Mapping[str, str] | None = None, platform: str | None = None,
                    load: Callable[[str], object] = ctypes.CDLL) -> str | None:
    """Why the window cannot open here, in one line (None if it can): no display, the Qt
    system libraries of the xcb plugin missing (with their apt packages), or an X server that
    refuses the connection. Only Linux's xcb platform is checked; others Qt reports itself."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    qpa = environ.get("QT_QPA_PLATFORM", "")
    if qpa and not qpa.startswith("xcb"):
        return None  # offscreen, wayland, vnc, ...: chosen on purpose
    display = environ.get("DISPLAY", "")
    if not qpa and environ.get("WAYLAND_DISPLAY"):
        return None
    if not display:
        return ("no display: the window needs a graphical session and neither DISPLAY nor WAYLAND_DISPLAY is set; "
                "start it on a desktop, with ssh -X, or under xvfb-run (the commands, see workbench --help, need none)")
    missing = missing_qt_libraries(load)
    if missing:
        packages = " ".join(dict.fromkeys(XCB_LIBRARIES.get(name, name) for name in missing))
        return (f"the window cannot start: Qt's xcb platform plugin needs system libraries that are missing "
                f"({', '.join(missing)}); install them with: sudo apt-get install {packages}")
    if not _can_connect(display):
        return (f"cannot open the display {display}: no X server answers there or it refuses the connection; "
                "check DISPLAY and the server (xhost, ssh -X)")
    return None


def make_application(argv: list[str] | None = None):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv or [sys.argv[0] if sys.argv else APPLICATION])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("CNN Workbench")
    return app


def build_window(settings=None, *, model=None, workspace: str | Path | None = None, load: bool = True):
    """The main window with its session; the model (a spec string or a
    :class:`~workbench.config.model.ModelSpec`, default digits-vgg) starts loading once the window is shown."""
    from PySide6.QtCore import QSettings, QTimer

    from workbench.ui.main_window import MainWindow
    from workbench.ui.session import Session

    settings = settings if settings is not None else QSettings()
    session = Session(settings, workspace=workspace)
    window = MainWindow(session)
    if load:
        spec = model or DEFAULT_MODEL
        # the caller named the model (the command line, show()): a callable is imported without asking
        QTimer.singleShot(0, lambda: session.load_model(spec, imports=True))
    return window


def wait_for(app, condition, timeout: float) -> bool:
    """Process events until ``condition()`` holds or ``timeout`` seconds pass."""
    from PySide6.QtCore import QEventLoop

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.005)
    return True


def _installation_problem(model) -> str | None:
    """What is missing from the installation: trained bundled weights, the shipped filter-GAN run."""
    from workbench.resources import shipped_filtergan_run

    if not model.trained or "UNTRAINED" in (model.notice or ""):
        return (f"the bundled model is untrained: {model.notice or model.source} "
                "Or reinstall the workbench, whose wheel ships the trained weights.")
    run = shipped_filtergan_run()
    missing = [name for name in ("run.json", "tensors/generator.safetensors") if not (run / name).is_file()]
    if missing:
        return f"the shipped filter-GAN run {run} lacks {', '.join(missing)}; reinstall the workbench"
    return None


def run_selftest(app) -> int:
    """Build the window, run a 10-iteration inversion through the GUI's worker, check it."""
    import numpy as np
    from PySide6.QtCore import QSettings

    with tempfile.TemporaryDirectory(prefix="workbench-selftest-") as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = build_window(settings, workspace=Path(tmp) / "runs")
        window.show()
        session = window.session
        try:
            if not wait_for(app, lambda: session.model is not None or session.load_error is not None, 120):
                print("selftest failed: the bundled model did not load within 120 s", file=sys.stderr)
                return 1
            if session.model is None:
                print(f"selftest failed: the bundled model could not be loaded: {session.load_error}", file=sys.stderr)
                return 1
            problem = _installation_problem(session.model)
            if problem:
                print(f"selftest failed: {problem}", file=sys.stderr)
                return 1
            session.update_config(method="invert", layer="relu3", image="digits:0", iters=10, restarts=1,
                                  fine_tune_iters=0, device="cpu", seed=0, frame_every=0)
            outcome = {}
            session.job_finished.connect(lambda r: outcome.setdefault("result", r))
            session.job_failed.connect(lambda m: outcome.setdefault("error", m))
            session.job_cancelled.connect(lambda: outcome.setdefault("error", "the job was cancelled"))
            window.run_action.trigger()
            if not wait_for(app, lambda: bool(outcome) and not session.busy, 120):
                print("selftest failed: the 10-iteration inversion did not finish within 120 s", file=sys.stderr)
                return 1
            if "error" in outcome:
                print(f"selftest failed: {outcome['error']}", file=sys.stderr)
                return 1
            result = outcome["result"]
            images = result.images
            err = result.metrics.get("reconstruction_error_mean")
            problems = []
            if images.shape != (1, 32, 32, 1):
                problems.append(f"result shape {images.shape}, expected (1, 32, 32, 1)")
            if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
                problems.append("result pixels are not finite values in [0, 1]")
            if err is None or not np.isfinite(err):
                problems.append("no finite reconstruction error")
            if result.run is None or result.run.status != "done" or not (result.run.path / "images" / "grid.png").is_file():
                problems.append("the run folder is not complete")
            if window.live_view.frames_received == 0:
                problems.append("the live view received no frames")
            if problems:
                print("selftest failed: " + "; ".join(problems), file=sys.stderr)
                return 1
            print(f"selftest ok: 10-iteration inversion of digits-vgg relu3, reconstruction error {err:.3f}, "
                  f"{window.live_view.frames_received} live frames, device {result.run.info['device']}")
            return 0
        finally:
            window.close()


class ErrorReporter:
    """Brings uncaught exceptions (any thread) to the GUI thread, as a message in the window."""

    def __init__(self) -> None:
        self._relay = None

    def attach(self, window) -> None:
        from PySide6.QtCore import QObject, Signal

        class Relay(QObject):
            reported = Signal(str, str)

        self._relay = Relay()
        self._relay.reported.connect(window.show_internal_error)

    def __call__(self, summary: str, log_path: Path) -> None:
        if self._relay is not None:
            self._relay.reported.emit(summary, str(log_path))  # queued when called off the GUI thread


def main(model=None, selftest: bool = False, argv: list[str] | None = None,
         log_path: str | Path | None = None) -> int:
    """``workbench``: open the window (returns the app's exit code); ``--selftest``: the smoke test.

    Without a usable display this raises a one-line :class:`~workbench.errors.UserError`
    before Qt starts (see :func:`display_problem`)."""
    from workbench.errors import UserError
    from workbench.logs import LogFile

    if selftest and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    problem = display_problem()
    if problem:
        raise UserError(problem)
    reporter = ErrorReporter()
    log = LogFile(log_path).install(on_error=reporter)
    window = None
    try:
        app = make_application(argv)
        if selftest:
            return run_selftest(app)
        window = build_window(model=model)
        window.log_path = log.path
        reporter.attach(window)
        window.session.message_logged.connect(lambda level, message: log.write(message, level)
                                              if level in ("warning", "error") else None)
        window.show()
        with _signals_close(window):
            return int(app.exec())
    finally:
        if window is not None:
            window.shutdown()  # the event loop may have ended without closing the window
        log.uninstall()


@contextmanager
def _signals_close(window):
    """Ctrl+C or SIGTERM in the terminal closes the window like Ctrl+Q: running jobs are
    cancelled (their runs marked so) and joined, and the app exits 0.

    Qt's event loop does not return to Python on its own, so a timer lets the interpreter run
    its signal handlers a few times a second.
    """
    from PySide6.QtCore import QTimer

    from workbench.signals import on_stop_signals, signal_name

    def close(signum) -> None:
        window.session.log(f"{signal_name(signum)}: closing the window")
        QTimer.singleShot(0, window.close)

    tick = QTimer()
    tick.timeout.connect(lambda: None)
    tick.start(200)
    try:
        with on_stop_signals(close, again=None):  # closing joins the jobs: a second signal waits too
            yield
    finally:
        tick.stop()
