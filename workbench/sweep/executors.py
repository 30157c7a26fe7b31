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
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from workbench.errors import UserError

Task = tuple[int, dict[str, Any], str]
POLL_SECONDS = 0.2
#: Seconds a stopped executor waits for its running cells to mark their folders before killing them.
STOP_GRACE = 10.0
#: Seconds a second stop signal leaves the workers to end their cells (raising where they are) before they are killed.
FORCE_GRACE = 3.0
#: Seconds the processes Ray started have to end after ``ray.shutdown`` before they are killed.
RAY_REAP = 10.0


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
        folders: dict[Any, str] = {}  # of the cells in flight

        def submit() -> None:  # at most one cell per worker in flight: a stop leaves none queued
            for index, config, folder in queue:
                future = self.pool.submit(self.function or run_cell, config, folder, self.threads)
                futures[future] = index
                folders[future] = folder
                return

        try:
            for _ in range(self.workers):
                submit()
            while futures:
                cancel.check()
                done, _ = wait(set(futures), timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                for f in done:
                    index = futures.pop(f)
                    folders.pop(f, None)
                    submit()
                    exc = f.exception()
                    yield index, exc if exc is not None else f.result()
            self._busy = False
        finally:
            if self._busy:
                self._stop(list(folders.values()))

    def _stop(self, folders: list[str] = ()) -> None:
        """Drop queued cells and ask running ones to cancel: a SIGTERM cancels a worker's cell (its folder
        is marked ``cancelled``) and every cell it would start after, and the pool's sentinels then end
        each worker through its normal exit, which releases what it holds (a killed worker leaves its
        semaphores to multiprocessing's resource tracker, which warns on stderr). Waits up to STOP_GRACE
        seconds; then — or at once on a stop signal meanwhile (the second) — sends each worker left a second
        SIGTERM (its cell raises Forced where it is, still marking its folder), waits up to FORCE_GRACE
        seconds and kills what is left, marking the folders of its cells; the signal's Forced is raised
        when the workers are gone."""
        from workbench.signals import held

        self._busy = False
        # the pool forgets its processes on shutdown: take them first
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            _signal(process.pid, signal.SIGTERM)
        with held() as hold:
            _join(processes, STOP_GRACE, hold)  # until they end, the grace runs out or a second stop signal comes
            if any(p.is_alive() for p in processes):  # ask again: a cell raises Forced where it is (also
                for process in processes:            # while it opens its model, before it checks its token)
                    _signal(process.pid, signal.SIGTERM)
                _join(processes, FORCE_GRACE)
            killed = [p for p in processes if p.is_alive()]
            for process in killed:  # no worker outlives the sweep
                _signal(process.pid, signal.SIGKILL)
                process.join(5.0)
            self.pool.shutdown(wait=True)
            if killed:
                _mark_stopped(folders)

    def close(self) -> None:
        if self._busy:
            self._stop()
        else:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _mark_stopped(folders) -> None:
    """Mark ``cancelled`` the folders of cells whose workers were killed before they could (a forced
    stop): their run.json still says ``running``. A folder that is no run of this sweep's is left alone."""
    from workbench.errors import UserError
    from workbench.runs import Run

    for folder in folders:
        if not folder:
            continue  # a study's task has no folder
        try:
            run = Run(folder)
            if run.info.get("status") == "running":
                run.finish("cancelled", error="stopped at once: its worker was killed before it marked the folder")
        except (OSError, ValueError, UserError):
            pass


def _join(processes, seconds: float, hold=None) -> None:
    """Wait up to ``seconds`` for ``processes`` to end, less when a stop signal comes (``hold``)."""
    deadline = time.monotonic() + seconds
    for process in processes:
        while process.is_alive() and time.monotonic() < deadline:
            if hold is not None and hold.signalled:
                return
            process.join(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


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
        self._before = _descendants()  # the processes Ray starts are the ones not here yet
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
                if address and isinstance(exc, ConnectionError):  # nothing answers there, or it refused us
                    from workbench.errors import one_line

                    raise UserError(f"--address {address}: cannot connect to a Ray cluster there ({one_line(exc)}): "
                                    f"start one with `ray start --head` or check the address") from None
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
        refs, folders = {}, {}
        for index, config, folder in tasks:
            ref = self.task.remote(config, folder, self.threads)
            refs[ref], folders[ref] = index, folder
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
                self._stop(pending, folders)

    def _stop(self, pending, folders: dict[Any, str]) -> None:
        """Cancel the queued and running cells (KeyboardInterrupt in a running one: its folder is
        marked cancelled), wait up to STOP_GRACE seconds, then force. Held (:func:`~workbench.signals.held`):
        a stop signal meanwhile (the second) ends the wait at once and is raised once the cells are
        forced, never inside Ray's own code."""
        from workbench.signals import held

        ray = self.ray
        with held() as hold:
            for ref in pending:
                try:
                    ray.cancel(ref)
                except Exception:
                    pass
            left = list(pending)
            deadline = time.monotonic() + STOP_GRACE
            while left and time.monotonic() < deadline and not hold.signalled:
                try:
                    left = ray.wait(left, num_returns=len(left), timeout=POLL_SECONDS)[1]
                except Exception:
                    break
            for ref in left:  # also on a second signal: kill the workers of the cells still running
                try:
                    ray.cancel(ref, force=True)
                except Exception:
                    pass
            if left:
                try:
                    ray.wait(left, num_returns=len(left), timeout=FORCE_GRACE)
                except Exception:
                    pass
                _mark_stopped([folders[ref] for ref in left])

    def close(self) -> None:
        """Shut down the Ray this executor started, held (a stop signal meanwhile acts once it is down),
        and wait up to RAY_REAP seconds for every process it started to end — its workers outlive
        ``ray.shutdown`` by a moment, as orphans — killing those left (at once on a stop signal)."""
        from workbench.signals import held

        if self.started:
            with held() as hold:
                ours = {pid: start for pid, start in _descendants().items() if self._before.get(pid) != start}
                with _keep_stop_handlers():  # ray.shutdown puts back the handlers it found before ours
                    self.ray.shutdown()
                _reap(ours, RAY_REAP, hold)


def _descendants() -> dict[int, str]:
    """This process's descendants, by pid with their start time (a pid may be reused), from /proc;
    empty where there is none."""
    import os
    from pathlib import Path

    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    try:
        entries = [e for e in Path("/proc").iterdir() if e.name.isdigit()]
    except OSError:
        return {}
    for entry in entries:
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
        if fields[0] in ("Z", "X"):
            continue
        pid = int(entry.name)
        parents.setdefault(int(fields[1]), []).append(pid)
        starts[pid] = fields[19]
    out: dict[int, str] = {}
    todo = [os.getpid()]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in out:
                out[child] = starts[child]
                todo.append(child)
    return out


def _alive(pid: int, start: str) -> bool:
    from pathlib import Path

    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0] not in ("Z", "X") and fields[19] == start


def _reap(processes: dict[int, str], seconds: float, hold) -> None:
    """Wait up to ``seconds`` (less on a stop signal) for ``processes`` (pid: start time) to end; kill the rest."""
    deadline = time.monotonic() + seconds
    while any(_alive(p, s) for p, s in processes.items()) and time.monotonic() < deadline and not hold.signalled:
        time.sleep(0.1)
    for pid, start in processes.items():
        if _alive(pid, start):
            _signal(pid, signal.SIGKILL)


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
