"""Run any job generator on a QThread; its events become throttled Qt signals.

A :class:`JobRunner` lives on the GUI thread and owns at most one :class:`_JobThread` at a
time. The thread drives the generator made by ``factory(cancel)`` and emits:

- ``progressed(Progress)``: the Steps since the last emission (their values, for the energy
  curves) and the latest snapshot images, at most ``rate`` (10) times a second plus once at the
  end. Images are C-contiguous float32 copies made when emitted, so the view may keep them;
- ``logged(level, message)``, ``artifact_written(name, path)``;
- exactly one of ``finished(result)``, ``cancelled()``, ``failed(message)``, then ``stopped()``.

Cancel sets the job's :class:`~workbench.jobs.CancelToken`; the job raises at its next
iteration. :meth:`JobRunner.shutdown` cancels and joins, so no thread outlives its owner (a
QThread destroyed while running aborts the process).
"""

from __future__ import annotations

import time
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from workbench.errors import UserError
from workbench.jobs import Artifact, Cancelled, CancelToken, Job, Log, Step

JobFactory = Callable[[CancelToken], Job]

_THREADS: "weakref.WeakSet[_JobThread]" = weakref.WeakSet()


def running_threads() -> list[QThread]:
    """Job threads still running (tests assert none is left behind)."""
    alive = []
    for thread in list(_THREADS):
        try:
            if thread.isRunning():
                alive.append(thread)
        except RuntimeError:  # its C++ object was deleted after it finished
            continue
    return alive


@dataclass
class Progress:
    iteration: int
    total: int
    values: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (iteration, values) since last time
    images: np.ndarray | None = None
    stage: str = ""
    elapsed: float = 0.0


class _JobThread(QThread):
    progressed = Signal(object)
    logged = Signal(str, str)
    artifact_written = Signal(str, str)
    succeeded = Signal(object)
    was_cancelled = Signal()
    errored = Signal(str, str)

    def __init__(self, factory: JobFactory, cancel: CancelToken, rate: float, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._factory = factory
        self.cancel_token = cancel
        self._interval = 1.0 / rate if rate > 0 else 0.0
        _THREADS.add(self)

    def run(self) -> None:
        start = time.monotonic()
        last_emit = -float("inf")
        pending: list[tuple[int, dict[str, float]]] = []
        latest: Step | None = None
        images: np.ndarray | None = None

        def flush() -> None:
            nonlocal pending, images
            if latest is None:
                return
            snapshot = None if images is None else np.array(images, dtype=np.float32, order="C", copy=True)
            self.progressed.emit(Progress(latest.iteration, latest.total, pending, snapshot, latest.stage,
                                          time.monotonic() - start))
            pending, images = [], None

        try:
            job = self._factory(self.cancel_token)
            while True:
                try:
                    event = next(job)
                except StopIteration as stop:
                    result = stop.value
                    break
                if isinstance(event, Step):
                    latest = event
                    pending.append((event.iteration, dict(event.values)))
                    if event.images is not None:
                        images = event.images  # copied only when emitted: most snapshots are dropped
                    now = time.monotonic()
                    if now - last_emit >= self._interval or event.iteration >= event.total:
                        flush()
                        last_emit = now
                elif isinstance(event, Log):
                    self.logged.emit(event.level, event.message)
                elif isinstance(event, Artifact):
                    self.artifact_written.emit(event.name, event.path)
            if pending:
                flush()
        except Cancelled:
            self.was_cancelled.emit()
            return
        except UserError as exc:
            self.errored.emit(str(exc), "")
            return
        except Exception as exc:  # a bug in a job must not take the app down
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            self.errored.emit(message, traceback.format_exc())
            return
        self.succeeded.emit(result)


class JobRunner(QObject):
    """One job slot: start, cancel, and the job's events as signals (see the module docstring)."""

    started = Signal()
    progressed = Signal(object)
    logged = Signal(str, str)
    artifact_written = Signal(str, str)
    finished = Signal(object)
    cancelled = Signal()
    failed = Signal(str)
    stopped = Signal()

    def __init__(self, parent: QObject | None = None, rate: float = 10.0) -> None:
        super().__init__(parent)
        self.rate = rate
        self._thread: _JobThread | None = None
        self._outcome: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, factory: JobFactory) -> None:
        if self._thread is not None:
            raise RuntimeError("a job is already running in this slot")
        thread = _JobThread(factory, CancelToken(), self.rate)
        thread.progressed.connect(self.progressed)
        thread.logged.connect(self.logged)
        thread.artifact_written.connect(self.artifact_written)
        thread.succeeded.connect(self._on_succeeded)
        thread.was_cancelled.connect(self._on_cancelled)
        thread.errored.connect(self._on_errored)
        thread.finished.connect(self._on_thread_finished)
        self._thread = thread
        self._outcome = None
        thread.start()
        self.started.emit()

    def cancel(self) -> None:
        if self._thread is not None:
            self._thread.cancel_token.cancel()

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Cancel and join the thread (for closing); True if no thread is left running."""
        thread = self._thread
        if thread is None:
            return True
        thread.cancel_token.cancel()
        ok = thread.wait(timeout_ms)
        if ok:
            self._release(thread)
        return ok

    def _on_succeeded(self, result: Any) -> None:
        self._outcome = "finished"
        self.finished.emit(result)

    def _on_cancelled(self) -> None:
        self._outcome = "cancelled"
        self.cancelled.emit()

    def _on_errored(self, message: str, details: str) -> None:
        self._outcome = "failed"
        if details:
            self.logged.emit("debug", details)
        self.failed.emit(message)

    def _on_thread_finished(self) -> None:
        thread = self.sender()
        if thread is self._thread:
            thread.wait()
            self._release(thread)

    def _release(self, thread: _JobThread) -> None:
        if self._thread is thread:
            self._thread = None
            thread.deleteLater()
            self.stopped.emit()


class LatestJobSlot(QObject):
    """A job slot where only the latest request matters (previews): a request made while a
    job runs cancels it and starts when it has stopped; ``finished(result)`` is emitted only
    for the request that is still current."""

    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = JobRunner(self, rate=0)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.stopped.connect(self._on_stopped)
        self._pending: JobFactory | None = None

    def request(self, factory: JobFactory) -> None:
        if self.runner.running:
            self._pending = factory
            self.runner.cancel()
        else:
            self.runner.start(factory)

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        self._pending = None
        return self.runner.shutdown(timeout_ms)

    def _on_finished(self, result: Any) -> None:
        if self._pending is None:
            self.finished.emit(result)

    def _on_failed(self, message: str) -> None:
        if self._pending is None:
            self.failed.emit(message)

    def _on_stopped(self) -> None:
        if self._pending is not None:
            factory, self._pending = self._pending, None
            self.runner.start(factory)
