"""``workbench.show(model)``: the window on a model from a script or a notebook.

``model`` is an in-memory ``nn.Module``, a :class:`~workbench.models.loading.LoadedModel`, or a
spec (a zoo name, a file, ``package.module:callable``, ``timm:NAME``, or a
:class:`~workbench.config.model.ModelSpec`). The window is built on the calling thread, which
must be the one that runs Qt; everything heavy runs on the session's loader thread as for a
model opened in the window: :func:`~workbench.models.loading.from_module` (it freezes the module
and runs a forward pass to check the input size), tracing the layer table, counting parameters.

From a plain script ``show`` blocks until the window is closed (creating the QApplication if
there is none) and returns the application's exit status, or None when the QApplication was
the caller's. Where a Qt event loop already runs — IPython or Jupyter after ``%gui qt``, or a
call from inside a running Qt application — it returns the window at once; the window is kept
referenced by the QApplication until it is closed, so dropping the return value does not close it.

A callable spec is imported (the caller named the code to run); a file that is code
(TorchScript, a full pickle) still asks in the window first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

#: The attribute of the QApplication that holds the windows ``show`` opened and not yet closed.
WINDOWS_ATTRIBUTE = "_workbench_show_windows"


def show(model: Any, image: Any = None, input_size=None, mean=None, std=None, class_names=None,
         layer: str | None = None, *, block: bool | None = None, settings=None,
         workspace: str | Path | None = None):
    """Open the workbench window on ``model`` (see the module docstring).

    ``image`` is the reference image: a file, a sample (``digits:3``, ``astronaut``) or a numpy
    array H×W or H×W×C (C = 1 or 3) of floats in [0, 1] (or uint8), written to a PNG in the user's
    data folder so that runs made from it can be reproduced. ``input_size`` (C, H, W), ``mean`` and
    ``std`` (per channel, [0, 1] scale) and ``class_names`` (a list for a module, a file for a spec)
    describe the model's input; ``layer`` is the layer to select.

    ``block``: None decides (see the module docstring); True waits for the window to close,
    False returns it at once. ``settings`` (a QSettings) and ``workspace`` (where runs go) default
    to the user's, as in the app.
    """
    from workbench.errors import UserError

    from workbench.config.model import model_request

    request = model_request(model, input_size=input_size, mean=mean, std=std, class_names=class_names,
                            who="show()'s model")
    picture = _image(image)
    if layer is not None and (not isinstance(layer, str) or not layer):
        raise UserError(f"layer must be a layer name, not {layer!r}")

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from workbench.ui.app import APPLICATION, ORGANIZATION, build_window, display_problem, make_application

    app = QApplication.instance()
    created = app is None
    if created:
        problem = display_problem()
        if problem:
            raise UserError(problem)
        app = make_application()
    if block is None:
        block = not event_loop_running()
    if settings is None:
        settings = QSettings(ORGANIZATION, APPLICATION)
    window = build_window(settings, workspace=workspace, load=False)
    session = window.session
    if layer is not None:
        session.set_layer(layer)

        def check_layer(loaded) -> None:
            session.model_changed.disconnect(check_layer)  # only for the model show() opened
            _check_layer(session, loaded, layer)

        session.model_changed.connect(check_layer)
    if picture is not None:
        # applied once the model has loaded: a new model takes its own settings (its default reference
        # among them), and the image the caller named must win over that default
        def apply_picture(loaded) -> None:
            session.model_changed.disconnect(apply_picture)
            if isinstance(picture, str):
                session.set_reference(picture)
            else:
                _write_reference(window, picture)

        session.model_changed.connect(apply_picture)
    kind, payload, options = request
    if kind == "module":
        session.open_module(payload, **options)
    elif kind == "loaded":
        session.open_loaded(payload)
    else:
        # the caller named this code: a callable is imported; a file that is code still asks first
        session.load_model(payload, imports=True)
    _keep(app, window)
    window.show()
    window.raise_()
    window.activateWindow()
    if not block:
        return window
    return _wait(app, window, created)


def event_loop_running() -> bool:
    """Whether a Qt event loop runs for this thread already: IPython's ``%gui qt`` (terminal or
    kernel), or a call made from inside a running Qt application."""
    from PySide6.QtCore import QThread

    return ipython_qt_loop() or QThread.currentThread().loopLevel() > 0


def ipython_qt_loop() -> bool:
    """Whether IPython (terminal or Jupyter kernel) integrates a Qt event loop (``%gui qt``)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    if shell is None:
        return False
    loops = [getattr(shell, "active_eventloop", None), getattr(getattr(shell, "kernel", None), "eventloop", None)]
    for loop in loops:
        name = loop if isinstance(loop, str) else getattr(loop, "__name__", "") if loop is not None else ""
        if name and "qt" in name.lower():
            return True
    return False


# --- arguments ----------------------------------------------------------------------------

def _image(image: Any):
    """A reference spec (str), a private copy of an image array, or None."""
    from workbench.errors import UserError

    if image is None:
        return None
    if isinstance(image, os.PathLike):
        return os.fspath(image)
    if isinstance(image, str):
        return image
    import numpy as np

    if not isinstance(image, np.ndarray):
        raise UserError(f"image is a file, a sample name or a numpy array H×W×C in [0, 1], not a {type(image).__name__}")
    shape_ok = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))
    if not shape_ok or min(image.shape[:2]) < 1:
        raise UserError(f"image array must be H×W or H×W×C with C = 1 or 3, not {image.shape}")
    if not (image.dtype == np.uint8 or np.issubdtype(image.dtype, np.floating)):
        raise UserError(f"image array must hold floats in [0, 1] or uint8, not {image.dtype}")
    return np.array(image, copy=True)  # the caller may change theirs while the window is open


def _write_reference(window, array) -> None:
    """Write ``array`` to a PNG on a worker; the session takes it as its reference when written.
    The job slot is a child of the window, so the window joins it when it closes."""
    from workbench.preview.compute import reference_png
    from workbench.resources import user_data_dir
    from workbench.ui.worker import JobRunner

    folder = user_data_dir() / "images"
    runner = JobRunner(window, rate=0)
    runner.finished.connect(window.session.set_reference)
    runner.failed.connect(lambda message: window.session.log(f"reference image: {message}", "error"))
    runner.start(lambda cancel: reference_png(array, folder, cancel))


def _check_layer(session, model, layer: str) -> None:
    from workbench.errors import UserError

    try:
        wanted = model.layer(layer).name
    except UserError as exc:
        session.log(f"{exc}; showing {session.layer}", "warning")
        return
    if session.layer != wanted:
        session.set_layer(wanted)


# --- the window's life ------------------------------------------------------------------------

def _keep(app, window) -> None:
    """Hold ``window`` on the QApplication until it is closed, then let it go (a moment later:
    Qt is still inside the close when the event arrives)."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    windows = getattr(app, WINDOWS_ATTRIBUTE, None)
    if windows is None:
        windows = []
        setattr(app, WINDOWS_ATTRIBUTE, windows)
    windows.append(window)

    def release() -> None:
        if window in windows and not window.isVisible():
            windows.remove(window)

    class Watcher(QObject):
        def eventFilter(self, obj, event) -> bool:
            if event.type() == QEvent.Type.Close:
                QTimer.singleShot(0, release)
            return False

    watcher = Watcher(window)
    window.installEventFilter(watcher)


def _wait(app, window, created: bool):
    """Run Qt until ``window`` closes: the application's loop when ``show`` created the app
    (its exit status), else a loop of its own (None). Ctrl+C closes the window."""
    from PySide6.QtCore import QEvent, QEventLoop, QObject

    from workbench.ui.app import _signals_close

    try:
        with _signals_close(window):
            if created:
                return int(app.exec())
            loop = QEventLoop()

            class Closed(QObject):
                def eventFilter(self, obj, event) -> bool:
                    if event.type() == QEvent.Type.Close:
                        loop.quit()
                    return False

            closed = Closed(window)
            window.installEventFilter(closed)
            if window.isVisible():
                loop.exec()
            window.removeEventFilter(closed)
            return None
    finally:
        window.shutdown()  # the loop may have ended without closing the window
