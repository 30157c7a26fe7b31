"""SIGINT and SIGTERM: the one place that turns a stop signal into a cancel.

Every way of running a job stops the same way: the first SIGINT or SIGTERM asks the job to stop
(the CLI raises :class:`~workbench.jobs.Cancelled` where the command is, the window closes, a sweep
cell in a worker process sets its own :class:`~workbench.jobs.CancelToken`), so its run folder is
marked ``cancelled`` with what it had. A second signal while that stop is under way ends it at
once (:class:`Forced`): an executor that is waiting for its workers kills them instead. Later
signals change nothing: the forced stop is under way and bounded.

The command line's outcome is decided once (:meth:`StopSignals.settle`): a second signal that came
before is ``workbench: stopped at once by a second SIGINT`` (or SIGTERM) and exit status 130; one
that comes after (while the interpreter tears down, while Ray shuts down after the line was
printed) is counted and changes nothing, so a stopped command always ends with one line and the
status that line belongs to. The program's own handler stays installed until the process exits
(``for_life``): a signal during interpreter shutdown never meets Python's default handlers.

A teardown that must not be cut in the middle (Ray's shutdown, waiting for a pool's workers) runs
:func:`held`: a stop signal during it is counted and acted on when it ends, and the waits inside
it look at :attr:`Hold.signalled` to end early.

A process-pool worker keeps one :class:`WorkerSignals` for its life (:func:`worker_signals`): a
stop signal cancels the cell it runs and every cell it would start after (the pool is stopping;
its sentinel then ends the worker through its normal exit, which releases what it holds —
multiprocessing's resource tracker warns of the semaphores of a worker that was killed instead).

Handlers are installed for the length of a ``with`` block and the previous ones put back after it
(unless ``for_life``); a signal the process was started ignoring (``nohup``, a background job of a
shell) stays ignored, and off the main thread nothing is installed (Python only runs handlers
there). Nothing here is module state: each handler object owns its count of signals.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator

#: The signals that stop a job like a cancel.
STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)
#: The exit status of a command ended at once by a second stop signal (128 + SIGINT, as a shell reports Ctrl+C).
FORCED_EXIT = 130


class Forced(KeyboardInterrupt):
    """A second stop signal: stop now, without waiting for the running work to mark itself."""


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _force(signum: int) -> None:
    raise Forced(f"stopped at once by a second {signal_name(signum)}")


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class Hold:
    """What :func:`held` gives its block: whether a stop signal came while it ran."""

    def __init__(self, stops: StopSignals | None = None) -> None:
        self._stops = stops
        self._seen = stops.count if stops is not None else 0

    @property
    def signalled(self) -> bool:
        return self._stops is not None and self._stops.count > self._seen


class StopSignals:
    """A SIGINT/SIGTERM handler: the first signal calls ``first(signum)``, the second ``again(signum)``
    (None: ``first`` again, every time), later ones nothing. While :meth:`holding`, a signal is
    counted and acted on when the hold ends; once :meth:`settle`-d, signals are only counted."""

    def __init__(self, first: Callable[[int], None], again: Callable[[int], None] | None = _force) -> None:
        self.first = first
        self.again = again
        self.count = 0
        self.settled = False
        self._holds = 0
        self._deferred: int | None = None

    def __call__(self, signum: int, frame: Any = None) -> None:
        self.count += 1
        if self.settled or (self.again is not None and self.count > 2):
            return
        if self._holds:
            self._deferred = signum
            return
        self._act(signum)

    def _act(self, signum: int) -> None:
        if self.count == 1 or self.again is None:
            self.first(signum)
        else:
            self.again(signum)

    def settle(self) -> None:
        """The outcome is decided: from now on a stop signal is counted, never acted on."""
        self.settled = True

    @contextmanager
    def holding(self) -> Iterator[Hold]:
        hold = Hold(self)
        self._holds += 1
        try:
            yield hold
        finally:
            self._holds -= 1
            if not self._holds and self._deferred is not None:
                signum, self._deferred = self._deferred, None
                if not self.settled:
                    self._act(signum)


def _installed(kind: type) -> Any:
    """The handler of this process's stop signals if it is a ``kind``, else None."""
    if not _on_main_thread():
        return None
    for s in STOP_SIGNALS:
        handler = signal.getsignal(s)
        if isinstance(handler, kind):
            return handler
    return None


@contextmanager
def on_stop_signals(first: Callable[[int], None], again: Callable[[int], None] | None = _force, *,
                    for_life: bool = False) -> Iterator[StopSignals]:
    """While the block runs, the first SIGINT or SIGTERM calls ``first(signum)`` and the second
    ``again(signum)`` (by default, raise :class:`Forced`; None: call ``first`` again). Yields the
    :class:`StopSignals`. ``for_life``: after the block the handler stays, settled, until the process
    exits (the program's own command line), instead of the previous ones being put back."""
    stops = StopSignals(first, again)
    if not _on_main_thread():
        yield stops
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    installed = [s for s, h in previous.items() if h is not signal.SIG_IGN]
    for s in installed:
        signal.signal(s, stops)
    try:
        yield stops
    finally:
        if for_life:
            stops.settle()
        else:
            for s in installed:
                signal.signal(s, previous[s])


@contextmanager
def stop_signals_cancel(*, for_life: bool = False) -> Iterator[StopSignals]:
    """The command line's handler: the first signal raises :class:`~workbench.jobs.Cancelled` where
    the command is (its job's :func:`~workbench.runs.finalise` marks the run ``cancelled``), a second
    raises :class:`Forced`. ``for_life``: see :func:`on_stop_signals`."""
    from workbench.jobs import Cancelled

    def cancel(signum: int) -> None:
        raise Cancelled(f"stopped by {signal_name(signum)}")

    with on_stop_signals(cancel, for_life=for_life) as stops:
        yield stops


@contextmanager
def held() -> Iterator[Hold]:
    """A teardown that must not be cut in the middle: a stop signal during the block is counted and
    acted on when it ends (the second raises :class:`Forced` there), instead of raising inside the
    teardown (in Ray's compiled code, half a shutdown). The block's waits end early on
    :attr:`Hold.signalled`. Where this process has no :class:`StopSignals`, it changes nothing."""
    stops = _installed(StopSignals)
    if stops is None:
        yield Hold()
        return
    with stops.holding() as hold:
        yield hold


class WorkerSignals:
    """A pool worker's stop signals for its whole life (see the module's docstring): the first cancels
    the running cell and every cell after it before it starts; the same signal again while a cell runs
    raises :class:`Forced` there (once); between cells nothing more, unless the parent is gone (then
    the worker leaves through its normal exit). A SIGTERM after a SIGINT is no second signal: Ctrl+C
    in a terminal reaches the workers with SIGINT and the stopping sweep then sends each a SIGTERM."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self._forced = False
        self._task = None  # the CancelToken of the cell running now

    def __call__(self, signum: int, frame: Any = None) -> None:
        again = signum in self.seen
        self.seen.add(signum)
        if self._task is not None:
            self._task.cancel()
            if again and not self._forced:
                self._forced = True
                _force(signum)
        elif not _parent_alive():
            raise SystemExit(0)

    @contextmanager
    def task(self, token) -> Iterator[None]:
        """The cell of ``token`` runs: a stop signal (also one that came before it started) cancels it."""
        if self.seen:
            token.cancel()
        self._task = token
        try:
            yield
        finally:
            self._task = None


def _parent_alive() -> bool:
    import multiprocessing

    parent = multiprocessing.parent_process()
    return parent is not None and parent.is_alive()


def worker_signals() -> None:
    """Install a :class:`WorkerSignals` in this pool worker, for its life (a pool's initializer)."""
    if not _on_main_thread():
        return
    handler = WorkerSignals()
    for s in STOP_SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:
            signal.signal(s, handler)


def stop_signals_set(token):
    """A context in which a stop signal sets ``token`` (a :class:`~workbench.jobs.CancelToken`): the job it
    belongs to stops at its next check; a second raises :class:`Forced` where the job is (its folder is
    still marked ``cancelled``). For a sweep cell or a study task wherever it runs: in a pool worker
    through its :class:`WorkerSignals`; in a process whose :class:`StopSignals` already stops the job
    where it is (the command line's, with the local executor) nothing is added; elsewhere (a Ray
    worker) a handler for the block."""
    worker = _installed(WorkerSignals)
    if worker is not None:
        return worker.task(token)
    if _installed(StopSignals) is not None:
        return nullcontext()
    return on_stop_signals(lambda signum: token.cancel())
