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
from typing import Any, Iterable, Iterator

from workbench.errors import UserError

Task = tuple[int, dict[str, Any], str]
POLL_SECONDS = 0.2


def default_workers() -> int:
    from workbench.threads import available_cores

    return available_cores()


class LocalExecutor:
    """Cells one after another in this process (the cell's job sees the sweep's cancel token)."""

    name = "local"

    def __init__(self, threads: int = 1, function=None, **_: Any) -> None:
        self.threads = threads
        self.function = function

    def run(self, tasks: Iterable[Task], cancel) -> Iterator[tuple[int, Any]]:
        from workbench.jobs import Cancelled
        from workbench.sweep.cell import run_cell

        function = self.function or run_cell
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
        self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=worker_init)

    def run(self, tasks: Iterable[Task], cancel) -> Iterator[tuple[int, Any]]:
        from concurrent.futures import FIRST_COMPLETED, wait

        from workbench.sweep.cell import run_cell

        futures = {self.pool.submit(self.function or run_cell, config, folder, self.threads): index for index, config, folder in tasks}
        pending = set(futures)
        try:
            while pending:
                cancel.check()
                done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                for f in done:
                    exc = f.exception()
                    yield futures[f], exc if exc is not None else f.result()
        finally:
            if pending:
                self._stop()

    def _stop(self) -> None:
        """Drop queued cells, ask running ones to cancel (SIGTERM → their token), wait for them."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in list(getattr(self.pool, "_processes", {}).values()):
            try:
                os.kill(process.pid, signal.SIGTERM)
            except (ProcessLookupError, OSError):
                pass
        self.pool.shutdown(wait=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Cells as Ray tasks: an embedded local Ray (``workers`` CPUs) or the cluster at ``address``.

    A cell asks for ``threads`` CPUs, and one GPU when its device is CUDA (or ``auto`` on a cluster
    with GPUs)."""

    name = "ray"

    def __init__(self, threads: int = 1, workers: int | None = None, address: str | None = None,
                 device: str = "auto", function=None, **_: Any) -> None:
        try:
            import ray
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'cnn-workbench[cluster]' (or pip install ray)") from None
        self.ray = ray
        self.threads = threads
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=workers or default_workers(), num_gpus=0 if device == "cpu" else None, **kwargs)
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
                done, pending = ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
                for ref in done:
                    try:
                        outcome: Any = ray.get(ref)
                    except Exception as exc:  # RayTaskError wraps the cell's exception
                        outcome = getattr(exc, "cause", None) or exc
                    yield refs[ref], outcome
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref)  # KeyboardInterrupt in a running cell: its folder is marked cancelled
                except Exception:
                    pass
            if pending:
                try:
                    ray.wait(pending, num_returns=len(pending), timeout=30)
                except Exception:
                    pass

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_executor(name: str, **kwargs: Any):
    kinds = {"local": LocalExecutor, "process": ProcessExecutor, "ray": RayExecutor}
    if name not in kinds:
        raise UserError(f"unknown executor {name!r}: use local, process or ray")
    return kinds[name](**kwargs)
