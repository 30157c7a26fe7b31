"""The workbench's log file: uncaught exceptions (any thread) and fatal signals end up in it.

:class:`LogFile` owns one file in the user's log directory (``platformdirs.user_log_dir``).
:meth:`LogFile.install` is called by the window's ``main()``, never at import time: it sets
``sys.excepthook`` and ``threading.excepthook`` to write the traceback there (and still to
stderr), and points ``faulthandler`` at the file, so even a crash in C code leaves a trace.
Qt-free: the window passes ``on_error`` to show the message.
"""

from __future__ import annotations

import datetime as _dt
import faulthandler
import os
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Callable

#: A log file larger than this is moved to ``workbench.log.1`` when the next process starts.
ROTATE_BYTES = 2_000_000

ErrorCallback = Callable[[str, Path], None]


def default_path() -> Path:
    """``workbench.log`` in the user's log directory (e.g. ``~/.local/state/workbench/log``)."""
    import platformdirs

    return Path(platformdirs.user_log_dir("workbench", appauthor=False)) / "workbench.log"


def summary(exc_type: type[BaseException], exc: BaseException | None) -> str:
    from workbench.errors import one_line

    return one_line(exc) if exc is not None else exc_type.__name__


class LogFile:
    """One process's log file and the hooks that write to it (see the module docstring)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._file = None
        self._lock = threading.Lock()
        self._previous: tuple | None = None
        self._on_error: ErrorCallback | None = None

    def open(self) -> "LogFile":
        """Open the file for appending (the temporary directory if the log directory is not writable)."""
        if self._file is not None:
            return self
        for path in (self.path, Path(tempfile.gettempdir()) / f"workbench-{os.getuid() if hasattr(os, 'getuid') else 0}.log"):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.is_file() and path.stat().st_size > ROTATE_BYTES:
                    path.replace(path.with_name(path.name + ".1"))
                self._file = open(path, "a", encoding="utf-8", buffering=1)
                self.path = path
                break
            except OSError:
                continue
        return self

    def write(self, message: str, level: str = "info") -> None:
        """One line (or a block) with the time, the process and ``level``."""
        if self._file is None:
            return
        stamp = _dt.datetime.now().isoformat(timespec="milliseconds")
        with self._lock:
            try:
                self._file.write(f"{stamp} [{os.getpid()}] {level}: {message.rstrip()}\n")
            except (OSError, ValueError):
                pass  # a full disk must not turn reporting an error into a second error

    def exception(self, exc_type, exc, tb, where: str = "") -> str:
        """Write the traceback; returns the one-line summary."""
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        self.write(f"uncaught exception{where}:\n{text}", "error")
        return summary(exc_type, exc)

    def install(self, on_error: ErrorCallback | None = None) -> "LogFile":
        """Open the file, set the excepthooks and faulthandler; ``on_error(summary, path)`` is
        called for each uncaught exception (from the thread it happened in)."""
        from workbench.version import __version__

        self.open()
        if self._previous is None:
            self._previous = (sys.excepthook, threading.excepthook)
            sys.excepthook = self._excepthook
            threading.excepthook = self._thread_excepthook
        self._on_error = on_error
        self.write(f"workbench {__version__} started (python {sys.version.split()[0]}, {sys.platform})")
        if self._file is not None:
            faulthandler.enable(file=self._file, all_threads=True)
        return self

    def uninstall(self) -> None:
        """Restore the previous hooks and close the file."""
        if self._previous is not None:
            sys.excepthook, threading.excepthook = self._previous
            self._previous = None
        self._on_error = None
        if self._file is not None:
            if faulthandler.is_enabled():
                faulthandler.disable()
            with self._lock:
                self._file.close()
                self._file = None

    def __enter__(self) -> "LogFile":
        return self

    def __exit__(self, *exc) -> None:
        self.uninstall()

    def _excepthook(self, exc_type, exc, tb) -> None:
        self._report(exc_type, exc, tb, "")
        if self._previous is not None:
            self._previous[0](exc_type, exc, tb)

    def _thread_excepthook(self, args) -> None:
        name = getattr(args.thread, "name", "?")
        self._report(args.exc_type, args.exc_value, args.exc_traceback, f" in thread {name}")
        if self._previous is not None:
            self._previous[1](args)

    def _report(self, exc_type, exc, tb, where: str) -> None:
        line = self.exception(exc_type, exc, tb, where)
        callback = self._on_error
        if callback is not None and not issubclass(exc_type, KeyboardInterrupt):
            try:
                callback(line, self.path)
            except BaseException as error:  # the callback must not hide the first error
                self.exception(type(error), error, error.__traceback__, " while reporting it")
