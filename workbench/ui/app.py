"""Start the desktop workbench: QApplication, settings, theme, the window, and ``--selftest``.

The window is shown before torch is imported: the default model (``digits-vgg``) and the
sample reference (``digits:0``) load on a worker thread behind a busy indicator.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ORGANIZATION = "CNN Workbench"
APPLICATION = "workbench"
DEFAULT_MODEL = "digits-vgg"


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


def build_window(settings=None, *, model: str | None = None, workspace: str | Path | None = None, load: bool = True):
    """The main window with its session; the model starts loading once the window is shown."""
    from PySide6.QtCore import QSettings, QTimer

    from workbench.ui.main_window import MainWindow
    from workbench.ui.session import Session

    settings = settings if settings is not None else QSettings()
    session = Session(settings, workspace=workspace)
    window = MainWindow(session)
    if load:
        spec = model or DEFAULT_MODEL
        QTimer.singleShot(0, lambda: session.load_model(spec))
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


def main(model: str | None = None, selftest: bool = False, argv: list[str] | None = None) -> int:
    """``workbench``: open the window (returns the app's exit code); ``--selftest``: the smoke test."""
    if selftest and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = make_application(argv)
    if selftest:
        return run_selftest(app)
    window = build_window(model=model)
    window.show()
    return int(app.exec())
