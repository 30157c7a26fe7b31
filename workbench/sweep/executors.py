"""Three ways to run a sweep's cells: in this process, in a local process pool, or on Ray.

Each executor's :meth:`run` takes (index, config, folder) triples and yields (index, summary or the
exception) as cells finish, polling ``cancel`` between completions; closing the generator (Ctrl+C,
a cancel) stops the cells still queued or running, whose folders their jobs mark ``cancelled``.
Every cell runs :func:`workbench.sweep.cell.run_cell` with the same fixed thread count, so the
same seeds give the same numbers on every executor. ``function`` replaces ``run_cell`` by another
module-level ``function(config, folder, threads, cancel=None)`` (the deformation studies' tasks).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from workbench.errors import UserError

Task = tuple[int, dict[str, Any], str]
POLL_SECONDS = 0.2
#: Seconds a stopped executor waits for its running cells to mark their folders before killing them.
STOP_GRACE = 10.0


def default_workers() -> int:
    from workbench.threads import available_cores

    return available_cores()


class LocalExecutor:
    """Cells one after another in this process (the cell's job sees the sweep's cancel token)."""

    name = "local"

    def __init__(self, threads: int = 1, function=None, **_: Any) -> None:
        from functools import partial

        from workbench.sweep.cell import CellModels, run_cell

        self.threads = threads
        self.function = function or partial(run_cell, models=CellModels())  # each model opened once

    def run(self, tasks: Iterable[Task], cancel) -> Iterator[tuple[int, Any]]:
        from workbench.jobs import Cancelled

        function = self.function
        for index, config, folder in tasks:
            cancel.check()
            try:
                outcome: Any = function(config, folder, self.threads, cancel=cancel)
            except Cancelled:
                raise
            except Exception as exc:  # one failed cell does not stop the sweep
                outcome = exc
            yield index, outcome

    def close(self) -> None:
        pass


class ProcessExecutor:
    """A ``concurrent.futures`` pool of ``workers`` spawned processes (no fork: torch and threads)."""

    name = "process"

    def __init__(self, threads: int = 1, workers: int | None = None, function=None, **_: Any) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from workbench.sweep.cell import worker_init

        self.threads = threads
        self.function = function
        self.workers = workers or default_workers()
        self._busy = False
        self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=worker_init)

    def run(self, tasks: Iterable[Task], cancel) -> Iterator[tuple[int, Any]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        from workbench.sweep.cell import run_cell

        self._busy = True
        queue = iter(tasks)
        futures: dict[Any, int] = {}

        def submit() -> None:  # at most one cell per worker in flight: a stop leaves none queued
            for index, config, folder in queue:
                futures[self.pool.submit(self.function or run_cell, config, folder, self.threads)] = index
                return

        try:
            for _ in range(self.workers):
                submit()
            while futures:
                cancel.check()
                done, _ = wait(set(futures), timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                for f in done:
                    index = futures.pop(f)
                    submit()
                    exc = f.exception()
                    yield index, exc if exc is not None else f.result()
            self._busy = False
        finally:
            if self._busy:
                self._stop()

    def _stop(self) -> None:
        """Drop queued cells, ask running ones to cancel (SIGTERM sets their token: their folders are
        marked ``cancelled``), wait up to STOP_GRACE seconds, then kill what is left. A second stop
        signal while waiting (:class:`~workbench.signals.Forced`) kills the workers at once."""
        import time

        self._busy = False
        # the pool forgets its processes on shutdown: take them first
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            _signal(process.pid, signal.SIGTERM)
        try:
            deadline = time.monotonic() + STOP_GRACE
            for process in processes:
                process.join(max(0.0, deadline - time.monotonic()))
        except BaseException:  # a second stop signal: a second one to every cell stops it now
            for process in processes:
                _signal(process.pid, signal.SIGTERM)
            for process in processes:
                process.join(2.0)
            raise
        finally:  # no worker outlives the sweep
            for process in processes:
                if process.is_alive():
                    _signal(process.pid, signal.SIGKILL)
                    process.join(5.0)
            self.pool.shutdown(wait=True)

    def close(self) -> None:
        if self._busy:
            self._stop()
        else:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:  # gone already
        pass


class RayExecutor:
    """Cells as Ray tasks: an embedded local Ray (``workers`` CPUs) or the cluster at ``address``.

    A cell asks for ``threads`` CPUs, and one GPU when its device is CUDA (or ``auto`` on a cluster
    with GPUs)."""

    name = "ray"

    def __init__(self, threads: int = 1, workers: int | None = None, address: str | None = None,
                 device: str = "auto", function=None, **_: Any) -> None:
        # Ray's C++ crash handler takes SIGTERM (a stack dump on stderr) and leaves it at its default
        # (death, the run still "running") while ray.shutdown runs: the sweep's own handler must stay.
        os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'cnn-workbench[cluster]' (or pip install ray)") from None
        self.ray = ray
        self.threads = threads
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            try:
                with _keep_stop_handlers():  # ray.init makes SIGTERM a SystemExit: the sweep's handler stays
                    if address:
                        ray.init(address=address, **kwargs)
                    else:
                        ray.init(num_cpus=workers or default_workers(), num_gpus=0 if device == "cpu" else None,
                                 **kwargs)
            except BaseException as exc:  # a stop signal while Ray starts: leave no Ray process behind
                with _keep_stop_handlers():
                    ray.shutdown()
                raise _unwrapped(exc) from None
            self.started = True
        gpus = ray.cluster_resources().get("GPU", 0)
        wants_gpu = device.startswith("cuda") or (device == "auto" and gpus > 0)
        if device.startswith("cuda") and gpus == 0:
            raise UserError(f"--device {device} but the Ray cluster has no GPUs: use --device cpu or auto")
        from workbench.sweep.cell import run_cell

        self.task = ray.remote(num_cpus=threads, num_gpus=1 if wants_gpu else 0, max_retries=0)(function or run_cell)

    def run(self, tasks: Iterable[Task], cancel) -> Iterator[tuple[int, Any]]:
        ray = self.ray
        refs = {self.task.remote(config, folder, self.threads): index for index, config, folder in tasks}
        pending = list(refs)
        try:
            while pending:
                cancel.check()
                done, pending = _ray_call(ray.wait, pending, num_returns=1, timeout=POLL_SECONDS)
                for ref in done:
                    try:
                        outcome: Any = _ray_call(ray.get, ref)
                    except Exception as exc:  # RayTaskError wraps the cell's exception
                        outcome = getattr(exc, "cause", None) or exc
                    yield refs[ref], outcome
        finally:
            if pending:
                self._stop(pending)

    def _stop(self, pending) -> None:
        """Cancel the queued and running cells (KeyboardInterrupt in a running one: its folder is
        marked cancelled), wait up to STOP_GRACE seconds, then force; a second stop signal forces at once."""
        ray = self.ray
        for ref in pending:
            try:
                ray.cancel(ref)
            except Exception:
                pass
        try:
            _ray_call(ray.wait, pending, num_returns=len(pending), timeout=STOP_GRACE)
        except Exception:
            pass
        finally:  # also on Forced: kill the workers of the cells still running
            try:
                left = ray.wait(pending, num_returns=len(pending), timeout=0)[1]
            except Exception:
                left = pending
            for ref in left:
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass

    def close(self) -> None:
        if self.started:
            with _keep_stop_handlers():  # ray.shutdown puts back the handlers it found before ours
                self.ray.shutdown()


def _unwrapped(exc: BaseException) -> BaseException:
    """What a stop signal raised inside Ray: its compiled code wraps our handler's exception in a
    SystemError, and while ``ray.init`` runs, Ray's own SIGTERM handler raises ``SystemExit(15)``."""
    from workbench.jobs import Cancelled
    from workbench.signals import STOP_SIGNALS, signal_name

    inner = exc.__cause__ or exc.__context__
    if isinstance(exc, SystemError) and isinstance(inner, (Cancelled, KeyboardInterrupt)):
        return inner
    if isinstance(exc, SystemExit) and exc.code in STOP_SIGNALS:  # ray.init's own SIGTERM handler
        return Cancelled(f"stopped by {signal_name(exc.code)}")
    return exc


def _ray_call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except SystemError as exc:
        raise _unwrapped(exc) from None


@contextmanager
def _keep_stop_handlers() -> Iterator[None]:
    from workbench.signals import STOP_SIGNALS

    handlers = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for s, handler in handlers.items():
                if handler is not None:
                    signal.signal(s, handler)


def make_executor(name: str, **kwargs: Any):
    kinds = {"local": LocalExecutor, "process": ProcessExecutor, "ray": RayExecutor}
    if name not in kinds:
        raise UserError(f"unknown executor {name!r}: use local, process or ray")
    return kinds[name](**kwargs)
