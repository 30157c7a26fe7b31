"""The cost of the live view: the same pre-image job headless and in the window.

    python benchmarks/bench_gui_liveview.py [--case window|single|stress|all] [--iters 3000] [--repeat 8]

Three cases, each run headless and through the window's Run button (session.start_job) with
the window's live view, energy curves and status bar all updating:

- ``window``: the job the window starts with (digits-vgg relu3, 4 restarts, a snapshot every
  5 iterations and a GIF frame every 10: the session's defaults), ~900 iterations per second;
- ``single``: the same with 1 restart (4 times as many Steps per second);
- ``stress``: 1 restart with a snapshot at EVERY iteration (the window never asks for that),
  the worst case for the view.

The worker forwards at most 10 updates per second in both. Throughput is iterations per
second between the first and the last Step, timed on the thread that runs the job, so model
loading and run-folder writing are left out. Pairs run in ABBA order and the cost printed
is the median over pairs of 1 − gui/headless (goal ≤ 5 %), with the quartiles of the pairs:
on this 2-core VM the same run varies by ~10 % from one repeat to the next.

The headless job also runs on a (plain Python) thread: on a loaded CPU, torch's OpenMP
threads make the same job many times slower on the main thread than on any other thread,
which would flatter the window; both sides are timed on a worker thread here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

CASES = {
    "window": dict(restarts=4, snapshot_every=5, frame_every=10),
    "single": dict(restarts=1, snapshot_every=5, frame_every=10),
    "stress": dict(restarts=1, snapshot_every=1, frame_every=0),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=[*CASES, "all"], default="all")
    ap.add_argument("--layer", default="relu3")
    ap.add_argument("--iters", type=int, default=3000, help="iterations per run (per restart)")
    ap.add_argument("--repeat", type=int, default=8, help="headless/window pairs per case")
    args = ap.parse_args()
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QEventLoop, QSettings

    from workbench.jobs import Step
    from workbench.preimage import PreimageConfig, preimage_job
    from workbench.runs import RunStore
    from workbench.ui.app import build_window, make_application, wait_for

    tmp = Path(tempfile.mkdtemp())
    app = make_application()
    window = build_window(QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat), workspace=tmp / "gui")
    window.resize(1600, 1000)
    window.show()
    wait_for(app, lambda: window.session.model is not None, 300)
    session = window.session
    model = session.model

    def headless(config) -> float:
        stamps = []

        def drive():
            job = preimage_job(PreimageConfig(model="digits-vgg", **config), runs=RunStore(tmp / "headless"), model=model)
            for event in _drain(job):
                if isinstance(event, Step):
                    stamps.append(time.perf_counter())

        thread = threading.Thread(target=drive)
        thread.start()
        thread.join()
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    def gui(config, frames_per_s: list) -> float:
        stamps = []
        frames = window.live_view.frames_received

        def record(progress):
            stamps.append((progress.iteration, progress.elapsed))  # timed on the worker thread

        session.job_progressed.connect(record)
        session.update_config(**config)
        loop = QEventLoop()  # wait in Qt's C++ loop, as app.exec() does, not in a Python polling loop
        session.job_stopped.connect(loop.quit)
        session.start_job()
        loop.exec()
        session.job_stopped.disconnect(loop.quit)
        session.job_progressed.disconnect(record)
        (i0, t0), (i1, t1) = stamps[0], stamps[-1]
        frames_per_s.append((window.live_view.frames_received - frames) / (t1 - t0))
        return (i1 - i0) / (t1 - t0)

    for case in CASES if args.case == "all" else [args.case]:
        config = dict(method="invert", layer=args.layer, image="digits:0", iters=args.iters, fine_tune_iters=0,
                      seed=0, device="cpu", **CASES[case])
        heads, guis, costs, frames = [], [], [], []
        for i in range(args.repeat):
            # pairs in ABBA order, so a drift in the machine's load hits both sides alike
            if i % 2 == 0:
                heads.append(headless(config))
                guis.append(gui(config, frames))
            else:
                guis.append(gui(config, frames))
                heads.append(headless(config))
            costs.append(1 - guis[-1] / heads[-1])
        q1, median, q3 = statistics.quantiles(costs, n=4) if len(costs) > 1 else (costs[0],) * 3
        h, g = statistics.median(heads), statistics.median(guis)
        print(f"[{case}] {CASES[case]}")
        print(f"  headless   {h:8.1f} it/s   runs: {', '.join(f'{v:.0f}' for v in heads)}")
        print(f"  live view  {g:8.1f} it/s   runs: {', '.join(f'{v:.0f}' for v in guis)}   "
              f"({statistics.median(frames):.1f} frames shown per second)")
        print(f"  cost of the live view: {100 * median:+.1f} % (median of {len(costs)} pairs; quartiles "
              f"{100 * q1:+.1f} %, {100 * q3:+.1f} %)   goal ≤ 5 %")
    window.close()


def _drain(job):
    while True:
        try:
            yield next(job)
        except StopIteration:
            return


if __name__ == "__main__":
    main()
