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


Event = Union[Step, Log, Artifact]
Job = Generator[Event, None, Any]


def run_job(job: Job, on_event: Callable[[Event], None] | None = None) -> Any:
    """Drive ``job`` to completion, passing every event to ``on_event``; return its result.

    The one loop that drives job generators outside the window. If ``on_event`` raises (or a
    signal arrives while it runs), the job is closed, so its run folder is marked before the
    exception goes on.
    """
    try:
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            if on_event is not None:
                on_event(event)
    finally:
        job.close()


def relay(job: Job, translate: Callable[[Event], Event | None]) -> Job:
    """Run ``job`` inside another job (``result = yield from relay(job, translate)``): each of its
    events goes through ``translate``, which gives the event to yield on (or None to drop it); returns
    ``job``'s result. If the outer job is closed, ``job`` is closed too, so its run folder is marked."""
    try:
        while True:
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
            out = translate(event)
            if out is not None:
                yield out
    finally:
        job.close()


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
