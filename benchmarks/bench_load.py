"""Speed under load: the same job on a quiet machine and beside a busy process, by thread policy.

    python benchmarks/bench_load.py [--case invert|deform|gan|vgg16|lite0|all] [--busy python|torch|both]
                                    [--seconds 2] [--repeat 4] [--thread main|worker]

Each case runs with torch's default intra-op threads (one per core: ``default``) and with
the count ``workbench.threads.job_threads`` gives it (``policy``), each on a quiet machine
and beside a busy process that this script starts and pauses (SIGSTOP/SIGCONT), so all four
cells are timed in the same run:

- ``invert``: digits-vgg relu3, 1 restart, sequential schedule (the window's job; the case
  that took 812 s instead of ~10 s in a test on a loaded machine), iterations per second;
- ``deform``: the deformation sensitivity of digits-vgg on 128 digits, batch 64, images per
  second;
- ``gan``: filter-GAN training steps (Algorithm 1) on conv4, m = 16, steps per second;
- ``vgg16``: an untrained vgg16 inversion at conv3_3 (224 × 224), iterations per second;
- ``lite0``: a trained efficientnet-lite0 inversion of chelsea from its classifier ``_fc`` (224 × 224, the
  whole network forward and back: issue 18's 36.0 s for 20 iterations on two threads beside a busy
  process against 2.97 s on one), iterations per second; skipped without the extra ``[imagenet]``.

The busy process is ``python``: a pure-Python loop (one core), or ``torch``: a small
convolution in a loop with torch's default threads (what another test or job does). Rounds
run the four cells in ABBA order, so a drift in the machine's load hits them alike; speeds
are medians over rounds. Printed: the loaded/quiet ratio with the default threads (before)
and with the policy (after), and the policy's loaded speed against the default's quiet speed
(what a user sees change). A fair share beside one busy process on two cores is 0.5.

Jobs run on the main thread as in the CLI (``--thread worker``: on a Python thread as in the
window). The counts are set through ``WORKBENCH_THREADS`` and ``torch_threads``, so the
result is the same whether or not the jobs apply the policy themselves.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CASES = ("invert", "deform", "gan", "vgg16", "lite0")
BUSY = {
    "python": "while True: pass",
    "torch": "import torch\nc = torch.nn.Conv2d(32, 32, 3, padding=1)\nx = torch.randn(1, 32, 32, 32)\n"
             "with torch.no_grad():\n    while True: c(x)",
}


def _stepper(case: str, tmp: Path):
    """(one timed run → units per second, the policy's thread count) for ``case``."""
    import torch

    from workbench.jobs import Step
    from workbench.models import load_model
    from workbench.runs import RunStore
    from workbench.threads import job_threads

    def steps_per_second(job, seconds: float) -> float:
        stamps = []
        try:
            for event in job:
                if isinstance(event, Step):
                    stamps.append(time.perf_counter())
                    if len(stamps) > 3 and stamps[-1] - stamps[1] > seconds:
                        break
        finally:
            job.close()
        return (len(stamps) - 2) / (stamps[-1] - stamps[1])   # the first step pays for warming up

    def folder() -> str:
        return tempfile.mkdtemp(dir=tmp) + "/run"

    if case in ("invert", "vgg16", "lite0"):
        from workbench.preimage import PreimageConfig, preimage_job

        name, layer = {"invert": ("digits-vgg", "relu3"), "vgg16": ("vgg16", "features.15"),
                       "lite0": ("efficientnet-lite0", "_fc")}[case]
        model = load_model(name, device="cpu")
        image = "digits:0" if model.input_size[0] == 1 else "chelsea" if case == "lite0" else "astronaut"

        def run(seconds):
            config = PreimageConfig(model=name, layer=layer, image=image, restarts=1, iters=10**6, fine_tune_iters=0, frame_every=0,
                                    schedule="sequential", device="cpu")
            return steps_per_second(preimage_job(config, runs=RunStore(tmp), out=folder(), model=model), seconds)
        return run, job_threads(model.input_size, 1)

    if case == "gan":
        from workbench.filtergan import FilterGanConfig, train_filter_gan

        model = load_model("digits-vgg", device="cpu")

        def run(seconds):
            config = FilterGanConfig(steps=10**6, batch_size=16, train_images=512, device="cpu",
                                     checkpoint_every=10**6, sample_every=10**6)
            return steps_per_second(train_filter_gan(config, runs=RunStore(tmp), out=folder(), model=model), seconds)
        return run, job_threads(model.input_size, 16)

    from workbench.deformation.job import layers_to_measure, load_images
    from workbench.deformation.sensitivity import deformation_sensitivity

    model = load_model("digits-vgg", device="cpu")
    images = load_images("digits", 128, model.input_size)
    layers = layers_to_measure(model)

    def run(seconds):
        start, count = time.perf_counter(), 0
        while count == 0 or time.perf_counter() - start < seconds:
            for _ in deformation_sensitivity(model.module, images, layers, mean=model.mean,
                                             std=model.std, seeds=[0], batch_size=64, device=torch.device("cpu")):
                pass
            count += 1
        return count * 2 * len(images) / (time.perf_counter() - start)   # a reference pass and one repeat
    return run, job_threads(model.input_size, 64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=[*CASES, "all"], default="all")
    ap.add_argument("--busy", choices=[*BUSY, "both"], default="both")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per cell")
    ap.add_argument("--repeat", type=int, default=4, help="rounds of the four cells")
    ap.add_argument("--thread", choices=("main", "worker"), default="main")
    args = ap.parse_args()

    import torch

    from workbench.threads import ENV, available_cores, torch_threads

    cores = available_cores()
    tmp = Path(tempfile.mkdtemp())
    print(f"{cores} cores; torch {torch.__version__}, default {torch.get_num_threads()} intra-op threads; "
          f"jobs on the {args.thread} thread; load average {os.getloadavg()[0]:.2f} at start")

    def timed(run, threads: int, seconds: float) -> float:
        os.environ[ENV] = str(threads)
        box = []

        def go():
            with torch_threads(threads):
                box.append(run(seconds))
        try:
            if args.thread == "main":
                go()
            else:
                worker = threading.Thread(target=go)
                worker.start()
                worker.join()
        finally:
            os.environ.pop(ENV)
        return box[0]

    if os.environ.pop(ENV, None) is not None:
        print(f"({ENV} ignored: this script compares the policy with torch's default)")
    for case in CASES if args.case == "all" else [args.case]:
        if case == "lite0" and importlib.util.find_spec("efficientnet_lite_pytorch") is None:
            print("[lite0] skipped: the extra [imagenet] is not installed")
            continue
        run, policy = _stepper(case, tmp)
        timed(run, policy, 0.5)   # warm-up: caches, first allocations
        for busy in BUSY if args.busy == "both" else [args.busy]:
            _measure(case, busy, run, timed, {"default": cores, "policy": policy}, args)


def _measure(case, busy, run, timed, threads: dict[str, int], args) -> None:
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY[busy]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4.0 if busy == "torch" else 0.5)   # let it import torch and start its threads
        neighbour.send_signal(signal.SIGSTOP)
        cells = [(load, label) for load in ("quiet", "loaded") for label in threads]
        speeds: dict[tuple[str, str], list[float]] = {cell: [] for cell in cells}
        for i in range(args.repeat):
            for load, label in cells if i % 2 == 0 else cells[::-1]:
                neighbour.send_signal(signal.SIGCONT if load == "loaded" else signal.SIGSTOP)
                if load == "loaded":
                    time.sleep(0.3)
                speeds[load, label].append(timed(run, threads[label], args.seconds))
            neighbour.send_signal(signal.SIGSTOP)
    finally:
        neighbour.kill()
        neighbour.wait()
    med = {cell: statistics.median(v) for cell, v in speeds.items()}
    unit = "img/s" if case == "deform" else "it/s"
    print(f"[{case}] beside a busy {busy} process (load average {os.getloadavg()[0]:.2f})")
    for label, n in threads.items():
        for load in ("quiet", "loaded"):
            runs = ", ".join(f"{v:.3g}" for v in speeds[load, label])
            print(f"  {label:7s} ({n} thread{'s' if n > 1 else ' '})  {load:6s} {med[load, label]:9.2f} {unit}   runs: {runs}")
    before = med["loaded", "default"] / med["quiet", "default"]
    after = med["loaded", "policy"] / med["quiet", "policy"]
    seen = med["loaded", "policy"] / med["quiet", "default"]
    print(f"  loaded/quiet: before {before:.2f}, after {after:.2f};  policy loaded / default quiet {seen:.2f};  "
          f"policy/default: quiet {med['quiet', 'policy'] / med['quiet', 'default']:.2f}, "
          f"loaded {med['loaded', 'policy'] / med['loaded', 'default']:.2f}")


if __name__ == "__main__":
    main()
