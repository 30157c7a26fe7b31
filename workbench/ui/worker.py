"""Run any job on a superqt :class:`~superqt.utils.GeneratorWorker`; its events become throttled Qt signals.

A :class:`JobRunner` lives on the GUI thread and owns at most one worker
(:class:`~workbench.ui.job_worker.JobWorker`) at a time, on a thread pool of its own (one thread: slots never wait on each other's jobs). The worker drives
``factory(cancel)`` on that thread: a job generator is driven to its result through
:func:`workbench.jobs.relay`; a plain function's return value is the result at once (so a
function that only reads or computes stays a plain function). The runner emits:

- ``progressed(Progress)``: the Steps since the last emission (their values, for the energy
  curves) and the latest snapshot images, at most ``rate`` (10) times a second plus once at the
  end. Images are C-contiguous float32 copies made when emitted, so the view may keep them;
- ``logged(level, message)``, ``artifact_written(name, path)``, ``event_yielded(event)`` for
  any other event (:class:`~workbench.jobs.GridExpanded`, :class:`~workbench.jobs.CellDone`, …);
- exactly one of ``finished(result)``, ``cancelled()`` or ``errored(exception)`` with
  ``failed(message)``, then ``stopped()``.

Whatever the job raises ends it: :class:`~workbench.jobs.Cancelled` as cancelled, anything
else (``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` too) as errored, the
exception itself for whoever decides by its type (``errored``), its one line for whoever
shows it (``failed``), and the slot is free for the next job. Cancel sets the job's
:class:`~workbench.jobs.CancelToken`; the job raises at its next check. :meth:`JobRunner.shutdown`
closes the slot, cancels and joins, so no thread outlives its owner.
"""

from __future__ import annotations

import inspect
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal

from workbench.errors import UserError, one_line
from workbench.jobs import Artifact, Cancelled, CancelToken, Job, Log, Step, Throttle, relay

#: ``factory(cancel)`` runs on the worker thread and gives a job generator or the result itself.
JobFactory = Callable[[CancelToken], "Job | Any"]


@dataclass
class Progress:
    iteration: int
    total: int
    values: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (iteration, values) since last time
    images: np.ndarray | None = None
    stage: str = ""
    elapsed: float = 0.0


def message(exc: BaseException) -> str:
    """The one line a failed job shows: a UserError's own message, anything else named by its type."""
    return str(exc) if isinstance(exc, UserError) else one_line(exc)


def _events(factory: JobFactory, cancel: CancelToken, interval: float):
    """The generator the worker drives: runs ``factory(cancel)``; a job's Steps come out as
    throttled :class:`Progress` (snapshots copied only when emitted: most are dropped), its Logs
    and Artifacts as they are; returns the job's result."""
    job = factory(cancel)
    if not inspect.isgenerator(job):
        return job  # a plain function: it has computed its result already
    start = time.monotonic()
    due = Throttle(interval)
    pending: list[tuple[int, dict[str, float]]] = []
    latest: list[Step] = []
    images: list[np.ndarray | None] = [None]

    def flush() -> Progress:
        step = latest[-1]
        snapshot = None if images[0] is None else np.array(images[0], dtype=np.float32, order="C", copy=True)
        out = Progress(step.iteration, step.total, list(pending), snapshot, step.stage, time.monotonic() - start)
        pending.clear()
        latest.clear()
        images[0] = None
        return out

    def translate(event):
        if not isinstance(event, Step):
            return event
        latest.append(event)
        pending.append((event.iteration, dict(event.values)))
        if event.images is not None:
            images[0] = event.images
        return flush() if due() or event.iteration >= event.total else None

    result = yield from relay(job, translate)
    if pending:
        yield flush()
    return result


class JobRunner(QObject):
    """One job slot: start, cancel, and the job's events as signals (see the module docstring)."""

    started = Signal()
    progressed = Signal(object)
    logged = Signal(str, str)
    artifact_written = Signal(str, str)
    event_yielded = Signal(object)
    finished = Signal(object)
    cancelled = Signal()
    errored = Signal(object)
    failed = Signal(str)
    stopped = Signal()

    def __init__(self, parent: QObject | None = None, rate: float = 10.0) -> None:
        super().__init__(parent)
        self.rate = rate
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._worker = None  # a workbench.ui.job_worker.JobWorker while a job runs
        self._cancel: CancelToken | None = None
        self._outcome: tuple[str, Any] = ("failed", RuntimeError("the job did not run"))
        self.closed = False

    @property
    def running(self) -> bool:
        return self._worker is not None

    def threads(self) -> list:
        """This slot's worker while its thread still runs it (tests assert none is left behind)."""
        worker = self._worker
        return [worker] if worker is not None and self._pool.activeThreadCount() else []

    def start(self, factory: JobFactory) -> bool:
        """Run ``factory(cancel)`` on this slot's thread; False once the slot is shut down."""
        if self.closed:
            return False
        if self._worker is not None:
            raise RuntimeError("a job is already running in this slot")
        from superqt.utils import create_worker  # superqt imports all its widgets: not before the window shows

        from workbench.ui.job_worker import JobWorker

        self._cancel = CancelToken()
        self._outcome = ("failed", RuntimeError("the job did not run"))
        worker = create_worker(_events, factory, self._cancel, 1.0 / self.rate if self.rate > 0 else 0.0,
                               _worker_class=JobWorker, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start_on(self._pool)
        self.started.emit()
        return True

    def cancel(self) -> None:
        if self._cancel is not None and self._worker is not None:
            self._cancel.cancel()

    def bind_buttons(self, start, cancel) -> None:
        """``start`` (the button that starts this slot's jobs) is disabled and ``cancel`` enabled
        while a job runs, the other way round otherwise; ``cancel`` cancels the job."""
        def running(on: bool) -> None:
            start.setEnabled(not on)
            cancel.setEnabled(on)

        running(self.running)
        self.started.connect(lambda: running(True))
        self.stopped.connect(lambda: running(False))
        cancel.clicked.connect(self.cancel)

    def bind_progress(self, bar, text: str | None = None) -> None:
        """``bar`` (a QProgressBar) shows the running job's progress, step ``iteration`` of ``total``,
        from 0 at each start; ``text`` is its format (``{stage}``: the stage's name; Qt's %v, %m)."""
        def show(progress: Progress) -> None:
            bar.setMaximum(max(progress.total, 1))
            bar.setValue(progress.iteration)
            if text is not None:
                bar.setFormat(text.format(stage=progress.stage))

        # from 0 at each start: this job's progress, not the last one's
        self.started.connect(lambda: (bar.setRange(0, 1), bar.setValue(0)))
        self.progressed.connect(show)

    def close(self) -> None:
        """Refuse new jobs and cancel the running one (without waiting for it)."""
        self.closed = True
        self.cancel()

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        """Close the slot, cancel and join its thread (no timeout: wait for it); True if none is left.

        Nothing is reported for a job ended this way: its owner is going away."""
        self.close()
        if self._worker is None:
            return True
        if not self._pool.waitForDone(-1 if timeout_ms is None else timeout_ms):
            return False
        self._worker = None
        return True

    def _current(self) -> bool:
        """The signal comes from this slot's current worker (not one joined by shutdown already)."""
        worker = self._worker
        return worker is not None and self.sender() is worker.signals

    def _on_event(self, event: Any) -> None:
        if not self._current():
            return
        if isinstance(event, Progress):
            self.progressed.emit(event)
        elif isinstance(event, Log):
            self.logged.emit(event.level, event.message)
        elif isinstance(event, Artifact):
            self.artifact_written.emit(event.name, event.path)
        else:
            self.event_yielded.emit(event)

    def _on_returned(self, result: Any) -> None:
        if self._current():
            self._outcome = ("finished", result)

    def _on_errored(self, exc: BaseException) -> None:
        if self._current():
            self._outcome = ("cancelled" if isinstance(exc, Cancelled) else "errored", exc)

    def _on_finished(self) -> None:
        if not self._current():
            return
        self._pool.waitForDone()  # the worker has only its return left: the slot is free once it is gone
        self._worker = self._cancel = None
        (outcome, payload), self._outcome = self._outcome, ("failed", None)
        if outcome == "finished":
            self.finished.emit(payload)
        elif outcome == "cancelled":
            self.cancelled.emit()
        else:
            if not isinstance(payload, UserError):
                self.logged.emit("debug", "".join(traceback.format_exception(payload)))
            self.errored.emit(payload)
            self.failed.emit(message(payload))
        self.stopped.emit()


class LatestJobSlot(QObject):
    """A job slot where only the latest request matters (previews, hovering): a request made
    while a job runs cancels it and starts when it has stopped; ``finished(result)`` is emitted
    only for the request that is still current. With ``debounce_ms`` a request waits that long
    for a newer one before it starts (a pointer moving over many points starts one job)."""

    finished = Signal(object)
    errored = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None, debounce_ms: int = 0) -> None:
        super().__init__(parent)
        self.runner = JobRunner(self, rate=0)
        self.runner.finished.connect(self._on_finished)
        self.runner.errored.connect(self._on_errored)
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

    def _on_errored(self, exc: BaseException) -> None:
        if self._pending is None:
            self.errored.emit(exc)
            self.failed.emit(message(exc))

    def _on_stopped(self) -> None:
        self._submit()
