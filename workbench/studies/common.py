"""What every study job shares: its run folder, how it ends, and the size of what it computes.

Every study of this package (deformation, random-labels, the lecture's two, representations,
hog-template) is one job writing one run folder ``study-<name>``: the folder
is made once the settings are checked, its path is yielded as an :class:`~workbench.jobs.Artifact`,
the study's body runs inside :func:`workbench.runs.finalise` on a fixed intra-op thread count,
and the ``metrics.json`` the body returns is written; a study that stopped before every training
ran is marked ``cancelled`` with the numbers it has.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

from workbench.jobs import Artifact, Event
from workbench.runs import Run, RunStore, finalise

#: What the studies push through a network per step: 64 digits of 32×32 (workbench.threads).
STUDY_INPUT, STUDY_BATCH = (1, 32, 32), 64


def study_job(name: str, config: dict[str, Any], body: Callable[[Run], Generator[Event, None, dict]], *, threads: int,
              out=None, runs_root=None, device) -> Generator[Event, None, dict]:
    """The run folder ``study-<name>`` (``out``, else a new one under ``runs_root``) recording
    ``config``; ``body(run)`` driven on ``threads`` intra-op threads (the caller counts them with
    :func:`workbench.threads.job_threads` before calling, so a bad ``WORKBENCH_THREADS`` is refused
    before the folder exists). The metrics it returns are written to ``metrics.json``; their
    ``complete`` says whether every training and measurement ran (else the run is ``cancelled``).
    Returns the metrics."""
    from workbench.device import describe

    run = RunStore(runs_root).create(f"study-{name}", config, describe(device), folder=out)
    yield Artifact("run", str(run.path))

    def written() -> Generator[Event, None, dict]:
        metrics = yield from body(run)
        run.write_metrics(metrics)
        run.outcome = None if metrics["complete"] else "cancelled"
        return metrics

    return (yield from finalise(run, written(), threads=threads))


def count(n: int, what: str) -> str:
    """``1 net``, ``3 nets``: a figure title's count."""
    return f"{n} {what}" + ("" if n == 1 else "s")
