"""How many intra-op threads a job gets: one for small problems, every core but one for large ones.

With torch's default of one OpenMP thread per core, every operator of a small problem is a
parallel region of a few microseconds whose barrier waits for each thread of the team. As
soon as another process is busy, the scheduler parks one of them for a time slice, so every
region waits for milliseconds: on the 2-core VM a digits-vgg inversion (relu3, 1 restart)
drops from 540 to 110 iterations per second beside one busy Python process and to 5 beside
another small torch job on two threads, while on one thread it keeps 460 and 150. Measured there (median
of ABBA pairs, quiet machine → beside one busy core; benchmarks/README.md, "Load"):

==========================  ============  ===================  ===================
workload                    input values  1 thread             2 threads
==========================  ============  ===================  ===================
invert relu3, 1 restart     1 024         543 → 460 it/s       422–624 → 110 it/s
invert relu3, 8 batched     8 192         111 → 105 it/s       165 → 39 it/s
filter-GAN, m = 16          16 384        33 → 32 it/s         50 → 9 it/s
deform, 128 digits, b = 64  65 536        310 → 315 img/s      518 → 194 img/s
filter-GAN, m = 64          65 536        10.3 → 10.0 it/s     18.4 → 6.1 it/s
alexnet features.5, 224²    150 528       43 → 34 it/s         67 → 15 it/s
vgg16 conv3_3, 224²         150 528       2.4 → 2.4 it/s       4.6 → 1.6 it/s
==========================  ============  ===================  ===================

Two threads gain 1.2–1.9× on a quiet machine and lose 3–6× beside one busy core (up to 30×
beside another torch job on two threads); one thread keeps its speed while a core is free.
Below :data:`LARGE_WORK` values per forward pass the geometric mean of quiet and loaded speed
is higher on one thread; at 64 digits a batch the two tie; at a 224×224 image two threads win
for vgg16 on a quiet machine (and lose for the much cheaper alexnet, which input size alone cannot
tell apart). A trained efficientnet-lite0 at 224² (issue 18) took 36.0 s for 20 iterations at its
classifier on two threads beside one busy process and 2.97 s on one: 0.08 of its quiet speed. So a
large job uses every core but one (:data:`SPARE_CORES`): beside one busy process its team still has a
core per thread, on the 2-core VM that is one thread (quiet speed kept under load, the quiet 1.2–1.9×
of a second thread given up), on 16 cores 15.

The choice is fixed per job, never by the load seen at run time: the thread count changes
the order of floating-point sums, so a load-dependent count would give the same seed
different numbers, and a resumed run numbers unlike an uninterrupted one.

OpenMP thread counts belong to the calling thread: ``torch.set_num_threads`` sets the count
of the thread that calls it (and the default of threads started later), so
:func:`torch_threads` must be entered on the thread that computes. Inter-op threads are
left alone: eager CPU autograd does not use them, and ``torch.set_num_interop_threads`` can
be called only once per process.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

from workbench.errors import UserError

#: Values (batch × channels × height × width) per forward pass from which a job uses several cores.
LARGE_WORK = 100_000

#: Cores a large job leaves to its neighbours: a team of OpenMP threads as large as the machine waits at
#: every barrier for the thread the scheduler parked to run another busy process, so one busy neighbour
#: costs it far more than its share (efficientnet-lite0 at 224², 20 iterations at _fc on the 2-core VM:
#: 36.0 s on two threads beside a busy process against 2.97 s on one; benchmarks/bench_load.py --case
#: lite0). With one core left free the team runs on while a neighbour is busy.
SPARE_CORES = 1

#: Environment variable that fixes the thread count of every job.
ENV = "WORKBENCH_THREADS"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def intra_op_threads(work: int, *, cores: int | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Threads for a job pushing ``work`` values through the network per forward pass.

    ``WORKBENCH_THREADS`` wins, then ``OMP_NUM_THREADS`` (torch already started with it);
    otherwise 1 below :data:`LARGE_WORK` and from it every core but one (:data:`SPARE_CORES`).
    """
    environ = os.environ if environ is None else environ
    chosen = _from_environment(environ)
    if chosen is not None:
        return chosen
    if work < LARGE_WORK:
        return 1
    return max(1, (available_cores() if cores is None else cores) - SPARE_CORES)


def job_threads(model_input_size: Sequence[int], batch: int = 1, **kwargs) -> int:
    """:func:`intra_op_threads` for ``batch`` inputs of shape ``model_input_size`` (C, H, W) per forward."""
    return intra_op_threads(max(1, batch) * math.prod(model_input_size), **kwargs)


def _from_environment(environ: Mapping[str, str]) -> int | None:
    raw = environ.get(ENV, "").strip()
    if raw:
        if not raw.isdecimal() or int(raw) < 1:
            raise UserError(f"{ENV} must be a whole number of threads, 1 or more (got {raw!r}): fix it or unset it")
        return int(raw)
    first = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first.isdecimal() and int(first) >= 1:
        return int(first)
    return None


@contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Run the block with ``n`` intra-op threads on this thread; the previous count is restored after."""
    import torch

    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"thread count must be a positive integer, got {n!r}")
    previous = torch.get_num_threads()
    if n != previous:
        torch.set_num_threads(n)
    try:
        yield n
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
