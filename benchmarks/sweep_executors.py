"""Cells per second of one sweep on the local, process and Ray executors, and Ray's overhead per
cell in ms, measured in the same run (issue 11). No assertions.

    python benchmarks/sweep_executors.py [--cells 16] [--iters 20] [--workers 2]

Each executor runs the same grid (digits-vgg, relu1/relu3 × C × seeds) into a fresh folder; the
process and Ray times include starting their workers (that is what a user waits for), and Ray's
warm rate is measured again on the started cluster. Ray's overhead per task is the round trip of
a no-op task carrying a cell's arguments, submitted in a batch of 200.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _grid(cells: int):
    seeds = max(1, cells // 4)
    return dict(models=("digits-vgg",), layers=("relu1", "relu3"), C=(1.0, 20.0), seeds=tuple(range(seeds)),
                images=("digits:0",), restarts=1, fine_tune_iters=0, device="cpu")


def _noop(config, folder, threads):
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cells", type=int, default=16)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    from workbench.config.sweep import SweepConfig
    from workbench.jobs import CancelToken, run_job
    from workbench.sweep.executors import make_executor
    from workbench.sweep.job import sweep_job

    tmp = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    grid = _grid(args.cells)
    rates = {}
    n = 0
    for name in ("local", "process", "ray"):
        if name == "ray":
            try:
                import ray  # noqa: F401
            except ImportError:
                print("ray: not installed (pip install 'cnn-workbench[cluster]')")
                continue
        t0 = time.perf_counter()
        executor = make_executor(name, threads=1, workers=args.workers, device="cpu")
        config = SweepConfig(**grid, iters=args.iters, executor=name, workers=args.workers, out=str(tmp / name))
        result = run_job(sweep_job(config, executor=executor))
        total = time.perf_counter() - t0
        rates[name] = len(result.rows) / total
        print(f"{name:8} {len(result.rows)} cells in {total:6.1f} s: {rates[name]:.2f} cells/s (with start-up)")
        if name == "local":
            t1 = time.perf_counter()
            run_job(sweep_job(SweepConfig(**grid, iters=args.iters, out=str(tmp / "local-warm")), executor=executor))
            rates["local warm"] = len(result.rows) / (time.perf_counter() - t1)
            print(f"local warm: {rates['local warm']:.2f} cells/s (modules and model already loaded)")
        if name == "ray":
            n = len(result.rows)
            t1 = time.perf_counter()
            run_job(sweep_job(SweepConfig(**grid, iters=args.iters, executor=name, out=str(tmp / "ray-warm")),
                              executor=executor))
            warm = time.perf_counter() - t1
            rates["ray warm"] = n / warm
            print(f"ray warm {n} cells in {warm:6.1f} s: {rates['ray warm']:.2f} cells/s")
            import ray

            noop = ray.remote(num_cpus=1)(_noop)
            cfg = result.rows and {"layer": "relu1"}
            ray.get([noop.remote(cfg, "x", 1) for _ in range(20)])  # warm the workers
            t2 = time.perf_counter()
            ray.get([noop.remote(cfg, "x", 1) for _ in range(200)])
            per = (time.perf_counter() - t2) / 200 * 1000
            cell_ms = 1000 / rates["ray warm"]
            print(f"ray overhead: {per:.1f} ms per no-op task (batch of 200) = {per / cell_ms:.1%} of a warm cell "
                  f"({cell_ms:.0f} ms of wall time per cell at {args.workers} workers)")
        executor.close()
    base = rates.get("local")
    if base:
        print("ratios to local (cold): " + ", ".join(f"{k} {v / base:.2f}x" for k, v in rates.items() if k != "local"))
    if rates.get("local warm") and rates.get("ray warm"):
        print(f"ray warm / local warm: {rates['ray warm'] / rates['local warm']:.2f}x at {args.workers} workers")


if __name__ == "__main__":
    main()
