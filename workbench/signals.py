"""SIGINT and SIGTERM: the one place that turns a stop signal into a cancel.

Every way of running a job stops the same way: the first SIGINT or SIGTERM asks the job to stop
(the CLI raises :class:`~workbench.jobs.Cancelled` where the command is, the window closes, a sweep
cell in a worker process sets its own :class:`~workbench.jobs.CancelToken`), so its run folder is
marked ``cancelled`` with what it had. A second signal while that stop is under way ends it at
once (:class:`Forced`): an executor that is waiting for its workers kills them instead.

Handlers are installed for the length of a ``with`` block and the previous ones put back after it;
a signal the process was started ignoring (``nohup``, a background job of a shell) stays ignored,
and off the main thread nothing is installed (Python only runs handlers there). Nothing here is
module state: each block owns its handler and its count of signals.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

#: The signals that stop a job like a cancel.
STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


class Forced(KeyboardInterrupt):
    """A second stop signal: stop now, without waiting for the running work to mark itself."""


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _force(signum: int) -> None:
    raise Forced(f"stopped at once by a second {signal_name(signum)}")


@contextmanager
def on_stop_signals(first: Callable[[int], None], again: Callable[[int], None] | None = _force) -> Iterator[None]:
    """While the block runs, the first SIGINT or SIGTERM calls ``first(signum)`` and every later one
    ``again(signum)`` (by default, raise :class:`Forced`; None: call ``first`` again)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    seen: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        seen.append(signum)
        if len(seen) == 1 or again is None:
            first(signum)
        else:
            again(signum)

    installed = [s for s, h in previous.items() if h is not signal.SIG_IGN]
    for s in installed:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s in installed:
            signal.signal(s, previous[s])


@contextmanager
def stop_signals_cancel() -> Iterator[None]:
    """The command line's handler: the first signal raises :class:`~workbench.jobs.Cancelled` where
    the command is (its job's :func:`~workbench.runs.finalise` marks the run ``cancelled``), a second
    raises :class:`Forced`."""
    from workbench.jobs import Cancelled

    def cancel(signum: int) -> None:
        raise Cancelled(f"stopped by {signal_name(signum)}")

    with on_stop_signals(cancel):
        yield


@contextmanager
def stop_signals_set(token) -> Iterator[None]:
    """The first stop signal sets ``token`` (a :class:`~workbench.jobs.CancelToken`): the job it belongs
    to stops at its next check; a second raises :class:`Forced` where the job is (its folder is still
    marked ``cancelled``). For a sweep cell or a study task in a worker process."""
    with on_stop_signals(lambda signum: token.cancel()):
        yield


def exit_when_idle() -> None:
    """A pool worker's handler between tasks: a stop signal ends the process quietly, at once."""
    def leave(signum: int, frame: Any) -> None:
        os._exit(0)

    for s in STOP_SIGNALS:
        if signal.getsignal(s) is not signal.SIG_IGN:
            signal.signal(s, leave)
