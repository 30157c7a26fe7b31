"""Run any job generator on a QThread; its events become throttled Qt signals.

A :class:`JobRunner` lives on the GUI thread and owns at most one :class:`_JobThread` at a
time. The thread drives the generator made by ``factory(cancel)`` and emits:

- ``progressed(Progress)``: the Steps since the last emission (their values, for the energy
  curves) and the latest snapshot images, at most ``rate`` (10) times a second plus once at the
  end. Images are C-contiguous float32 copies made when emitted, so the view may keep them;
- ``logged(level, message)``, ``artifact_written(name, path)``;
- exactly one of ``finished(result)``, ``cancelled()``, ``failed(message)``, then ``stopped()``.

Whatever the job raises ends it: :class:`~workbench.jobs.Cancelled` as cancelled, anything
else (``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` too) as failed, and the slot
is free for the next job. Cancel sets the job's :class:`~workbench.jobs.CancelToken`; the job
raises at its next check. :meth:`JobRunner.shutdown` closes the slot, cancels and joins, so no
thread outlives its owner (a QThread destroyed while running aborts the process).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal

from workbench.errors import UserError, one_line
from workbench.jobs import Artifact, Cancelled, CancelToken, Job, Log, Step

JobFactory = Callable[[CancelToken], Job]


@dataclass
class Progress:
    iteration: int
    total: int
    values: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (iteration, values) since last time
    images: np.ndarray | None = None
    stage: str = ""
    elapsed: float = 0.0


class _JobThread(QThread):
    """Drives one job; its outcome is read by the runner once the thread has finished."""

    progressed = Signal(object)
    logged = Signal(str, str)
    artifact_written = Signal(str, str)

    def __init__(self, factory: JobFactory, cancel: CancelToken, rate: float) -> None:
        super().__init__()
        self._factory = factory
        self.cancel_token = cancel
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self.outcome: tuple[str, Any, str] = ("failed", "the job did not run", "")

    def run(self) -> None:
        job = None
        try:
            job = self._factory(self.cancel_token)
            self.outcome = ("finished", self._drive(job), "")
        except Cancelled:
            self.outcome = ("cancelled", None, "")
        except UserError as exc:
            self.outcome = ("failed", str(exc), "")
        except BaseException as exc:  # a bug in a job, or a stray exit, must not take the app down
            self.outcome = ("failed", one_line(exc), traceback.format_exc())
        finally:
            if job is not None and hasattr(job, "close"):
                try:
                    job.close()  # a generator left suspended (our own emit failed) runs its finalisation now
                except BaseException:
                    pass
            self._factory = None  # the closure holds the model and the config: release them with the job

    def _drive(self, job: Job) -> Any:
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

        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                if pending:
                    flush()
                return stop.value
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
        self.closed = False

    @property
    def running(self) -> bool:
        return self._thread is not None

    def threads(self) -> list[QThread]:
        """This slot's thread if it still runs (tests assert none is left behind)."""
        thread = self._thread
        return [thread] if thread is not None and thread.isRunning() else []

    def start(self, factory: JobFactory) -> bool:
        """Run ``factory(cancel)`` on a new thread; False once the slot is shut down."""
        if self.closed:
            return False
        if self._thread is not None:
            raise RuntimeError("a job is already running in this slot")
        thread = _JobThread(factory, CancelToken(), self.rate)
        thread.progressed.connect(self.progressed)
        thread.logged.connect(self.logged)
        thread.artifact_written.connect(self.artifact_written)
        thread.finished.connect(self._on_thread_finished)
        self._thread = thread
        thread.start()
        self.started.emit()
        return True

    def cancel(self) -> None:
        if self._thread is not None:
            self._thread.cancel_token.cancel()

    def close(self) -> None:
        """Refuse new jobs and cancel the running one (without waiting for it)."""
        self.closed = True
        self.cancel()

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        """Close the slot, cancel and join its thread (no timeout: wait for it); True if none is left.

        Nothing is reported for a job ended this way: its owner is going away."""
        self.close()
        thread = self._thread
        if thread is None:
            return True
        if not (thread.wait() if timeout_ms is None else thread.wait(timeout_ms)):
            return False
        self._thread = None
        thread.deleteLater()
        return True

    def _on_thread_finished(self) -> None:
        thread = self.sender()
        if thread is not self._thread:
            return  # joined by shutdown() already
        thread.wait()
        self._thread = None
        outcome, payload, details = thread.outcome
        thread.deleteLater()
        if outcome == "finished":
            self.finished.emit(payload)
        elif outcome == "cancelled":
            self.cancelled.emit()
        else:
            if details:
                self.logged.emit("debug", details)
            self.failed.emit(payload)
        self.stopped.emit()


class LatestJobSlot(QObject):
    """A job slot where only the latest request matters (previews, hovering): a request made
    while a job runs cancels it and starts when it has stopped; ``finished(result)`` is emitted
    only for the request that is still current. With ``debounce_ms`` a request waits that long
    for a newer one before it starts (a pointer moving over many points starts one job)."""

    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None, debounce_ms: int = 0) -> None:
        super().__init__(parent)
        self.runner = JobRunner(self, rate=0)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.stopped.connect(self._on_stopped)
        self._pending: JobFactory | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._submit)

    @property
    def busy(self) -> bool:
        """A request is running or waiting."""
        return self.runner.running or self._pending is not None

    def request(self, factory: JobFactory) -> None:
        self._pending = factory
        self.runner.cancel()
        if self._timer.interval() > 0:
            self._timer.start()
        else:
            self._submit()

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        self._timer.stop()
        self._pending = None
        return self.runner.shutdown(timeout_ms)

    def _submit(self) -> None:
        if self._pending is None or self.runner.running or self._timer.isActive():
            return  # it starts when the running job has stopped, or when the pointer rests
        factory, self._pending = self._pending, None
        self.runner.start(factory)

    def _on_finished(self, result: Any) -> None:
        if self._pending is None:
            self.finished.emit(result)

    def _on_failed(self, message: str) -> None:
        if self._pending is None:
            self.failed.emit(message)

    def _on_stopped(self) -> None:
        self._submit()
