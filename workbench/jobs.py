"""Jobs: plain-Python generators that yield progress events and return a result.

A job is ``job(config, *, cancel) -> Generator[Event, None, Result]``. The same job is
iterated by the CLI (progress bar), by the Qt worker (events become signals) and by tests
(iterated directly). Cancellation is cooperative: the job calls ``cancel.check()`` between
iterations, which raises :class:`Cancelled`; :func:`workbench.runs.finalise` marks its run folder.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Union

import numpy as np


class Cancelled(Exception):
    """Raised inside a job when its :class:`CancelToken` was set, or by a stop signal."""


class CancelToken:
    """Thread-safe cancellation flag shared between a job and whoever runs it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class Step:
    """One iteration of an iterative job.

    ``values`` holds scalar quantities for plotting (energy terms, losses). ``images`` is
    an optional snapshot, a detached CPU float32 array (K, H, W, C) in [0, 1], attached
    only every ``snapshot_every`` iterations so the GUI is not flooded.
    """

    iteration: int
    total: int
    values: dict[str, float] = field(default_factory=dict)
    images: np.ndarray | None = None
    stage: str = ""


@dataclass(frozen=True)
class Log:
    message: str
    level: str = "info"  # info | warning | error


@dataclass(frozen=True)
class Artifact:
    """A file the job has written (path relative to the run folder, or absolute)."""

    name: str
    path: str


@dataclass(frozen=True)
class GridExpanded:
    """A grid job (a sweep, an atlas) knows its cells, before any runs: ``cells`` in the grid's order
    (:class:`workbench.sweep.grid.Cell`: ``name``, ``config``, ``columns``), ``done`` the summaries
    (:func:`workbench.sweep.cell.summary`) by index of the cells finished before (``--resume``), which
    are not run again, and ``folder`` the grid's run folder (its cells in ``folder/cells/<name>``)."""

    cells: tuple[Any, ...]
    done: dict[int, dict[str, Any]]
    folder: str


@dataclass(frozen=True)
class CellDone:
    """One cell of a grid job has ended: ``index`` into :attr:`GridExpanded.cells`, its run ``folder``,
    ``status`` done | failed | cancelled, its ``summary`` (done) or the ``error`` line (otherwise)."""

    index: int
    folder: str
    status: str
    summary: dict[str, Any] | None = None
    error: str | None = None


Event = Union[Step, Log, Artifact, GridExpanded, CellDone]
Job = Generator[Event, None, Any]


def relay(job: Job, translate: Callable[[Event], Event | None] | None = None, *,
          on_close: Callable[[], None] | None = None) -> Job:
    """The one loop that drives a job: ``result = yield from relay(job, translate)`` runs ``job`` inside
    another job. Each event goes through ``translate``, which gives the event to yield on (or None to
    drop it; no ``translate`` passes every event on); returns ``job``'s result. Whatever ends the loop,
    ``job`` is closed, so its run folder is marked then (not when it is collected): an exception from
    ``job`` or ``translate`` goes on after it, and when the outer job is closed by its driver
    (``GeneratorExit`` where an event is yielded), ``on_close()`` runs first — how
    :func:`workbench.runs.finalise` tells its driver stopping it from a body raising ``GeneratorExit``."""
    try:
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            out = event if translate is None else translate(event)
            if out is not None:
                try:
                    yield out
                except GeneratorExit:
                    if on_close is not None:
                        on_close()
                    raise
    finally:
        job.close()


def run_job(job: Job, on_event: Callable[[Event], None] | None = None) -> Any:
    """Drive ``job`` to completion, passing every event to ``on_event``; return its result.

    :func:`relay` with nothing to yield on: the CLI, the API, the executors' cells and the studies'
    tasks drive their jobs through the same loop as a job run inside another. If ``on_event`` raises
    (or a signal arrives while it runs), the job is closed, so its run folder is marked before the
    exception goes on.
    """
    def deliver(event: Event) -> None:
        if on_event is not None:
            on_event(event)

    driver = relay(job, deliver)
    try:
        next(driver)  # deliver yields nothing on, so the loop runs to the job's end
    except StopIteration as stop:
        return stop.value
    finally:
        driver.close()
    raise AssertionError("run_job: relay yielded an event it was told to drop")  # pragma: no cover


class Throttle:
    """True at most every ``interval`` seconds (and always on the first call)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -float("inf")

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False
