"""The paper's comparisons at a size that fits a 2-core CPU (Ruderman et al. 2018).

- ``pooling`` (Fig. 3c/d): the five CIFAR-style nets (sect. 2.2), truncated-normal init
  (footnote 2), normalized cosine distance on the 13 layers of Fig. 3 at initialization and
  after training on the bundled digits; one deformation seed per network seed.
- ``smoothing`` (Fig. 4, sect. 4.2): ``cifar-vgg-subsample`` initialized with filters
  convolved with Gaussians of std σ; sensitivity per layer for each σ (no training).
- ``synthetic`` (Fig. 5, sect. 4.3): ten classes, each one digit image; examples are its
  random deformations of strength C (maximum control-point displacement in pixels, 3×3 grid);
  a narrow version of ``cifar-vgg-maxpool`` (blocks 1×16, 1×32, 1×64, so that 12 trainings fit
  in minutes on a CPU) is trained per C and seed and the filter NTV per layer is compared.
- ``random-labels`` (Figs. 6c and 7, sect. 5): the five nets of ``pooling`` trained on the same
  digits with their labels replaced by fixed uniform random labels (Zhang et al. 2016: drawn once
  from the seed, the same in every epoch), beside the same nets (same initial weights, same
  images, same epochs) trained on the real labels; filter NTV per conv layer (Fig. 6c) and NCD
  per layer (Fig. 7) after training. A subset of the training digits, so that every net fits
  (memorises) its random labels within minutes on a CPU.

Each study is a job writing one run folder: ``metrics.json`` (settings, sizes, seconds, the
per-layer numbers) and ``images/*.png`` with a ``.pdf`` of each plot.

The independent trainings and measurements (one per network seed and variant) are tasks run by
:func:`study_task` on an executor of :mod:`workbench.sweep.executors` (``local``, ``process`` or
``ray``): each a pure function of its config (study, variant, seed, sizes, device) returning
numbers, on the study's fixed thread count, so every executor gives the numbers of the
sequential loop. The study job collects them in their sequential order, yields a Step per task,
honours cancel and writes the run folder.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator

import numpy as np
import torch

from workbench.data.digits import DIGITS_MEAN, DIGITS_STD, load_digits32
from workbench.deformation.features import default_layers
from workbench.deformation.sensitivity import SensitivityResult, deformation_sensitivity
from workbench.deformation.tps import random_deform
from workbench.errors import UserError
from workbench.jobs import Artifact, Cancelled, CancelToken, Event, Log, Step
from workbench.runs import Run, RunStore, finalise
from workbench.signals import Forced
from workbench.threads import job_threads

#: Sizes chosen so each study takes minutes of CPU time on a 2-core machine (measured: pooling
#: 18 CPU-min, smoothing 1, synthetic 5; wall times 3-4x longer when the machine is shared).
POOLING_SIZE = {"seeds": 3, "epochs": 3, "n": 128}
SMOOTHING_SIZE = {"seeds": 3, "n": 128, "sigmas": (0.0, 0.5, 1.0, 2.0, 4.0)}
SYNTHETIC_SIZE = {"seeds": 3, "epochs": 8, "per_class": 64, "strengths": (1.0, 2.0, 3.0, 4.0),
                  "blocks": ((1, 16), (1, 32), (1, 64))}
#: random-labels: 256 training digits are memorised (train accuracy 1.0 on their random labels) by
#: cifar-vgg-maxpool and -strided-relu after 10 epochs of Adam (0.29 / 0.11 after 5), avg-pool only to
#: 0.88 after 10; 15 epochs leave a margin.
#: 2 nets per variant and label kind: 20 trainings.
RANDOM_LABELS_SIZE = {"seeds": 2, "epochs": 15, "n": 128, "train_images": 256}


def _fresh(downsampling: str, init: str, seed: int, blocks=None) -> torch.nn.Module:
    from workbench.models.architectures import cifar_vgg
    from workbench.deformation.smoothness import initialize

    module = cifar_vgg(downsampling) if blocks is None else cifar_vgg(downsampling, blocks=tuple(blocks))
    return initialize(module, init, seed).eval()


def _measure(module, images, seed, n_seeds, cancel, device):
    layers = default_layers(module)
    return deformation_sensitivity(module, images, layers, mean=DIGITS_MEAN, std=DIGITS_STD, grid=3, max_disp=2.0,
                                   seeds=[seed * 1000 + k for k in range(n_seeds)], device=device, cancel=cancel)


def _stack(results: list[SensitivityResult]) -> SensitivityResult:
    """One result per network seed → a result whose repeats are the networks (mean of each net's repeats)."""
    values = np.stack([r.mean for r in results])
    return SensitivityResult(results[0].layers, [r.seeds[0] for r in results], values,
                             np.mean([r.median_distance for r in results], axis=0))


def _rows(r: SensitivityResult) -> list[dict]:
    return r.table()


#: What the studies push through a network per step: 64 digits of 32×32 (workbench.threads).
STUDY_INPUT, STUDY_BATCH = (1, 32, 32), 64


# --------------------------------------------------------------------------- tasks on an executor

def _numbers(r: SensitivityResult) -> dict[str, Any]:
    if not r.complete:
        raise Cancelled()
    return {"layers": list(r.layers), "seeds": list(r.seeds), "values": np.asarray(r.values),
            "median_distance": np.asarray(r.median_distance)}


def _result(d: dict[str, Any]) -> SensitivityResult:
    return SensitivityResult(list(d["layers"]), list(d["seeds"]), np.array(d["values"]),
                             np.array(d["median_distance"]))


def _pooling_task(c: dict[str, Any], device, cancel) -> dict[str, Any]:
    from workbench.jobs import run_job
    from workbench.models.train import train_classifier

    images = load_digits32("test")[0][:c["n"]]
    module = _fresh(c["downsampling"], "truncnormal", c["seed"])
    init = _numbers(run_job(_measure(module, images, c["seed"], 1, cancel, device)))
    res = run_job(train_classifier(module, epochs=c["epochs"], seed=c["seed"], device=device, cancel=cancel))
    module.eval()
    trained = _numbers(run_job(_measure(module, images, c["seed"], 1, cancel, device)))
    return {"init": init, "trained": trained, "test_accuracy": res["test_accuracy"]}


def _smoothing_task(c: dict[str, Any], device, cancel) -> dict[str, Any]:
    from workbench.deformation.smoothness import filter_smoothness
    from workbench.jobs import run_job

    images = load_digits32("test")[0][:c["n"]]
    sigma = c["sigma"]
    module = _fresh(c["architecture"], f"gaussian:{sigma}" if sigma > 0 else "truncnormal", c["seed"])
    smooth = float(np.mean([x.ntv for x in filter_smoothness(module)]))
    return {"sensitivity": _numbers(run_job(_measure(module, images, c["seed"], 1, cancel, device))), "ntv": smooth}


def _synthetic_task(c: dict[str, Any], device, cancel) -> dict[str, Any]:
    from workbench.deformation.smoothness import filter_smoothness
    from workbench.jobs import run_job
    from workbench.models.train import train_classifier

    s, strength, per_class = c["seed"], c["strength"], c["per_class"]
    module = _fresh(c["architecture"], "truncnormal", s, c["blocks"])
    init_ntv = [x.ntv for x in filter_smoothness(module)]
    train = synthetic_task(strength, per_class, seed=10_000 + s)
    test = synthetic_task(strength, max(per_class // 4, 4), seed=20_000 + s)
    res = run_job(train_classifier(module, epochs=c["epochs"], seed=s, train_data=train, test_data=test,
                                   device=device, cancel=cancel))
    layers = filter_smoothness(module.cpu())
    return {"init_ntv": init_ntv, "layers": [x.layer for x in layers], "ntv": [x.ntv for x in layers],
            "test_accuracy": res["test_accuracy"]}


def _random_labels_task(c: dict[str, Any], device, cancel) -> dict[str, Any]:
    """One net of ``random-labels``: trained on the first ``train_images`` training digits with their
    real labels or with fixed uniform random ones (``train_classifier(random_labels=True)``: drawn once
    from the seed), then its filter NTV per conv layer, and its NCD per layer and test accuracy (real
    labels) on the first ``n`` test digits."""
    from workbench.deformation.smoothness import filter_smoothness
    from workbench.jobs import run_job
    from workbench.models.train import train_classifier

    x, y = load_digits32("train")
    train = (x[:c["train_images"]], y[:c["train_images"]])
    images, labels = (t[:c["n"]] for t in load_digits32("test"))
    module = _fresh(c["downsampling"], "truncnormal", c["seed"])
    init_ntv = [v.ntv for v in filter_smoothness(module)]
    res = run_job(train_classifier(module, epochs=c["epochs"], seed=c["seed"], train_data=train,
                                   test_data=(images, labels), random_labels=c["labels"] == "random",
                                   device=device, cancel=cancel))
    module.eval()
    ntv = filter_smoothness(module)
    return {"sensitivity": _numbers(run_job(_measure(module, images, c["seed"], 1, cancel, device))),
            "layers": [v.layer for v in ntv], "ntv": [v.ntv for v in ntv], "init_ntv": init_ntv,
            "train_accuracy": res["train_accuracy"], "test_accuracy": res["test_accuracy"]}


_TASKS = {"pooling": _pooling_task, "smoothing": _smoothing_task, "synthetic": _synthetic_task,
          "random-labels": _random_labels_task}


def study_task(config: dict[str, Any], folder: str = "", threads: int = 1, cancel: CancelToken | None = None) -> dict:
    """One training or measurement of a study (``config["study"]`` names which), on ``threads``
    intra-op threads; returns its numbers. The signature of :func:`workbench.sweep.cell.run_cell`
    (``folder`` unused: the study job writes the one run folder), so every executor runs it; a stop
    signal to a process-pool worker cancels it as it does a cell."""
    from workbench.device import resolve_device
    from workbench.signals import stop_signals_set
    from workbench.threads import torch_threads

    cancel = cancel or CancelToken()
    # the count is passed as a value: the tasks' trainings and measurements choose none of their own
    with torch_threads(threads), stop_signals_set(cancel):
        return _TASKS[config["study"]](config, resolve_device(config["device"]), cancel)


#: The executor of a study when none is given: the sequential loop in this process.
LOCAL = {"executor": "local"}


def _run_tasks(configs: list[dict[str, Any]], executor: dict[str, Any], cancel: CancelToken, stage: Callable,
               group: Callable, on_group: Callable) -> Generator[Event, None, tuple[dict[int, Any], str]]:
    """Run ``configs`` on ``executor`` (make_executor's name and options); a Step per finished task,
    ``on_group(key, outcomes)``'s events once every task of a ``group(config)`` has finished.
    Returns (outcome by index, "done" or "cancelled"); a task's error is raised."""
    from workbench.sweep.executors import make_executor

    threads = job_threads(STUDY_INPUT, STUDY_BATCH)
    options = dict(executor)
    runner = make_executor(options.pop("executor", "local"), threads=threads, function=study_task, **options)
    members: dict[Any, list[int]] = {}
    for i, c in enumerate(configs):
        members.setdefault(group(c), []).append(i)
    outcomes: dict[int, Any] = {}
    status = "done"
    try:
        stream = runner.run([(i, c, "") for i, c in enumerate(configs)], cancel)
        try:
            for index, outcome in stream:
                if isinstance(outcome, (Cancelled, KeyboardInterrupt)):
                    status = "cancelled"
                    break
                if isinstance(outcome, BaseException):
                    raise outcome
                outcomes[index] = outcome
                yield Step(len(outcomes), len(configs), stage=stage(configs[index]))
                key = group(configs[index])
                if all(i in outcomes for i in members[key]):
                    yield from on_group(key, [outcomes[i] for i in members[key]])
        except Forced:  # a second stop signal: end at once, no figures (issue 17)
            raise
        except (Cancelled, KeyboardInterrupt):
            status = "cancelled"
        finally:
            stream.close()
    finally:
        runner.close()
    if len(outcomes) < len(configs):
        status = "cancelled"
    return outcomes, status


def _groups(configs: list[dict[str, Any]], outcomes: dict[int, Any], key: str) -> dict[Any, list[Any]]:
    """Outcomes of the groups whose tasks all finished, in the sequential loop's order."""
    out: dict[Any, list[Any]] = {}
    for i, c in enumerate(configs):
        out.setdefault(c[key], []).append(outcomes.get(i))
    return {k: v for k, v in out.items() if all(x is not None for x in v)}


def _start(name: str, config: dict, out, runs_root, device) -> Run:
    from workbench.device import describe

    job_threads(STUDY_INPUT, STUDY_BATCH)  # a bad WORKBENCH_THREADS is refused before the folder exists
    return RunStore(runs_root).create(f"study-{name}", config, describe(device), folder=out)


# --------------------------------------------------------------------------- pooling (Fig. 3)

def pooling_study(*, seeds: int = 3, epochs: int = 3, n: int = 128, out=None, runs_root=None,
                  device: str | torch.device = "cpu", cancel: CancelToken | None = None,
                  figure=None, executor: dict | None = None) -> Generator[Event, None, dict]:
    from workbench.deformation.job import sensitivity_plot
    from workbench.export.render import save_run_figure
    from workbench.models.architectures import DOWNSAMPLINGS

    cancel = cancel or CancelToken()
    device = torch.device(device)
    config = {"study": "pooling", "seeds": seeds, "epochs": epochs, "n": n, "grid": 3, "max_disp": 2.0,
              "init": "truncnormal", "data": "digits 32x32 (1347 train / 450 test)", "images": "first n test digits"}
    run = _start("pooling", config, out, runs_root, device)
    yield Artifact("run", str(run.path))

    def body():
        started = time.monotonic()
        tasks = [{"study": "pooling", "downsampling": d, "seed": s, "epochs": epochs, "n": n, "device": str(device)}
                 for d in DOWNSAMPLINGS for s in range(seeds)]

        def logged(d, outs):
            yield Log(f"{d}: test accuracy {np.mean([o['test_accuracy'] for o in outs]):.3f}")

        outcomes, status = yield from _run_tasks(tasks, executor or LOCAL, cancel,
                                                 lambda c: f"{c['downsampling']} seed {c['seed']}",
                                                 lambda c: c["downsampling"], logged)
        per: dict[str, dict[str, Any]] = {
            d: {"init": _stack([_result(o["init"]) for o in outs]),
                "trained": _stack([_result(o["trained"]) for o in outs]),
                "test_accuracy": [o["test_accuracy"] for o in outs]}
            for d, outs in _groups(tasks, outcomes, "downsampling").items()}
        seconds = time.monotonic() - started
        metrics: dict[str, Any] = {"config": config, "seconds": round(seconds, 1), "complete": status == "done",
                                   "variants": {}}
        for d, v in per.items():
            metrics["variants"][d] = {"init": _rows(v["init"]), "trained": _rows(v["trained"]),
                                      "test_accuracy": v["test_accuracy"]}
        if per:
            metrics["comparison"] = _later_layer_comparison({d: v["init"] for d, v in per.items()})
            metrics["comparison_trained"] = _later_layer_comparison({d: v["trained"] for d, v in per.items()})
            save_run_figure(run, "pooling_init", sensitivity_plot(
                [(d, v["init"]) for d, v in per.items()], f"At initialization ({_count(seeds, 'net')} each, mean ± 2 std)",
                style=figure), figure)
            save_run_figure(run, "pooling_trained", sensitivity_plot(
                [(d, v["trained"]) for d, v in per.items()], f"After {_count(epochs, 'epoch')} on digits ({_count(seeds, 'net')} each)",
                style=figure), figure)
        run.write_metrics(metrics)
        run.outcome = None if status == "done" else status
        return metrics

    return (yield from finalise(run, body(), threads=job_threads(STUDY_INPUT, STUDY_BATCH)))


def _later_layer_comparison(results: dict[str, SensitivityResult]) -> dict[str, Any]:
    """Mean NCD over the later layers (block 3 on: relu3_1 … down4) per downsampling."""
    out = {d: float(np.mean(r.mean[_later_layers(r.layers)])) for d, r in results.items()}
    return {"layers": "block 3 and 4 (relu3_1 .. down4)", "mean_ncd": out}


def _later_layers(layers: list[str]) -> list[int]:
    """Indices of block 3 and 4's layers (relu3_1 … down4): the first digit of the name is 3 or 4."""
    return [i for i, name in enumerate(layers) if re.search(r"\d", name) and re.search(r"\d", name)[0] in "34"]


# --------------------------------------------------------------------------- smoothing (Fig. 4)

def smoothing_study(*, seeds: int = 3, n: int = 128, sigmas=SMOOTHING_SIZE["sigmas"], architecture: str = "subsample",
                    out=None, runs_root=None, device: str | torch.device = "cpu",
                    cancel: CancelToken | None = None, figure=None,
                    executor: dict | None = None) -> Generator[Event, None, dict]:
    cancel = cancel or CancelToken()
    device = torch.device(device)
    config = {"study": "smoothing", "architecture": f"cifar-vgg-{architecture}", "seeds": seeds, "n": n,
              "sigmas": list(sigmas), "grid": 3, "max_disp": 2.0, "init": "truncnormal convolved with a Gaussian (σ)"}
    run = _start("smoothing", config, out, runs_root, device)
    yield Artifact("run", str(run.path))

    def body():
        started = time.monotonic()
        tasks = [{"study": "smoothing", "architecture": architecture, "sigma": sigma, "seed": s, "n": n,
                  "device": str(device)} for sigma in sigmas for s in range(seeds)]
        outcomes, status = yield from _run_tasks(tasks, executor or LOCAL, cancel, lambda c: f"σ={c['sigma']}",
                                                 lambda c: c["sigma"], lambda key, outs: ())
        groups = _groups(tasks, outcomes, "sigma")
        per: dict[float, SensitivityResult] = {
            sigma: _stack([_result(o["sensitivity"]) for o in outs]) for sigma, outs in groups.items()}
        ntv: dict[float, float] = {sigma: float(np.mean([o["ntv"] for o in outs])) for sigma, outs in groups.items()}
        metrics: dict[str, Any] = {"config": config, "seconds": round(time.monotonic() - started, 1),
                                   "complete": status == "done", "sigmas": {}}
        for sigma, r in per.items():
            metrics["sigmas"][str(sigma)] = {"mean_ntv": ntv[sigma], "layers": _rows(r)}
        if per:
            means = np.stack([r.mean for r in per.values()])
            monotone = [bool(np.all(np.diff(means[:, i]) <= 0)) for i in range(means.shape[1])]
            metrics["monotone_per_layer"] = dict(zip(next(iter(per.values())).layers, monotone))
            shades = _shades(len(per))
            from workbench.export.plots import Series, line_figure
            from workbench.export.render import save_run_figure

            series = [Series(f"σ = {sigma:g} (NTV {ntv[sigma]:.2f})", r.mean, 2 * r.std, shades[k])
                      for k, (sigma, r) in enumerate(per.items())]
            save_run_figure(run, "smoothing", line_figure(
                series, x_labels=next(iter(per.values())).layers, xlabel="layer",
                ylabel="normalized cosine distance (mean ± 2 std)", style=figure,
                title=f"cifar-vgg-{architecture} at init, filters smoothed with a Gaussian of std σ "
                      f"({_count(seeds, 'net')} each)"), figure)
        run.write_metrics(metrics)
        run.outcome = None if status == "done" else status
        return metrics

    return (yield from finalise(run, body(), threads=job_threads(STUDY_INPUT, STUDY_BATCH)))


def _count(n: int, what: str) -> str:
    """``1 net``, ``3 nets``: a figure title's count."""
    return f"{n} {what}" + ("" if n == 1 else "s")


def _shades(k: int) -> list[tuple[int, int, int]]:
    """Light to dark blue: darker lines for smoother filters, as in Fig. 4."""
    return [tuple(int(a + (b - a) * t) for a, b in zip((150, 190, 235), (8, 30, 90)))
            for t in np.linspace(0.0, 1.0, max(k, 2))][:k]


# --------------------------------------------------------------------------- synthetic (Fig. 5)

def synthetic_task(strength: float, per_class: int, seed: int, grid: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Sect. 4.3: class k = random deformations (strength C px) of the k-th prototype digit."""
    prototypes = synthetic_prototypes()
    g = torch.Generator().manual_seed(seed)
    x = prototypes.repeat_interleave(per_class, dim=0)
    y = torch.arange(len(prototypes)).repeat_interleave(per_class)
    with torch.no_grad():
        deformed, _, _ = random_deform(x, grid, strength, g)
    return deformed.clamp(0.0, 1.0), y


def synthetic_prototypes() -> torch.Tensor:
    """One training image per digit class 0–9 (the first of each in the train split)."""
    x, y = load_digits32("train")
    return torch.stack([x[int(torch.nonzero(y == k)[0])] for k in range(10)])


def synthetic_study(*, seeds: int = 3, epochs: int = 8, per_class: int = 64, strengths=SYNTHETIC_SIZE["strengths"],
                    architecture: str = "maxpool", blocks=SYNTHETIC_SIZE["blocks"], out=None, runs_root=None,
                    device: str | torch.device = "cpu",
                    cancel: CancelToken | None = None, figure=None,
                    executor: dict | None = None) -> Generator[Event, None, dict]:
    from workbench.export.figures import FigureGrid
    from workbench.export.plots import HLine, Series, line_figure
    from workbench.export.render import save_run_figure
    from workbench.deformation.smoothness import PAPER_INIT_NTV

    cancel = cancel or CancelToken()
    device = torch.device(device)
    config = {"study": "synthetic", "architecture": f"cifar-vgg-{architecture}", "blocks": [list(b) for b in blocks],
              "seeds": seeds, "epochs": epochs,
              "per_class": per_class, "classes": 10, "strengths": list(strengths), "grid": 3,
              "strength": "maximum control-point displacement in pixels", "init": "truncnormal"}
    run = _start("synthetic", config, out, runs_root, device)
    yield Artifact("run", str(run.path))

    def body():
        examples = [[synthetic_task(c, 1, 100 + j)[0][k, 0].numpy() for k in range(10)] for c in strengths
                    for j in range(2)]
        save_run_figure(run, "synthetic_examples", FigureGrid(
            examples, row_labels=[f"C = {c:g}" if j == 0 else "" for c in strengths for j in range(2)],
            col_labels=[str(k) for k in range(10)],
            title="Synthetic tasks: class k (columns) is the k-th prototype digit, deformed by up to C px (rows)"
            ).figure(figure), figure)
        started = time.monotonic()
        tasks = [{"study": "synthetic", "architecture": architecture, "blocks": [list(b) for b in blocks],
                  "strength": c, "seed": s, "epochs": epochs, "per_class": per_class, "device": str(device)}
                 for c in strengths for s in range(seeds)]

        def logged(c, outs):
            yield Log(f"C={c:g}: mean NTV {np.array([o['ntv'] for o in outs]).mean():.4f}, "
                      f"test accuracy {np.mean([o['test_accuracy'] for o in outs]):.3f}")

        outcomes, status = yield from _run_tasks(tasks, executor or LOCAL, cancel,
                                                 lambda t: f"C={t['strength']:g} seed {t['seed']}",
                                                 lambda t: t["strength"], logged)
        groups = _groups(tasks, outcomes, "strength")
        per: dict[float, np.ndarray] = {c: np.array([o["ntv"] for o in outs]) for c, outs in groups.items()}
        accuracy: dict[float, list[float]] = {c: [o["test_accuracy"] for o in outs] for c, outs in groups.items()}
        layer_names: list[str] = next((outs[0]["layers"] for outs in groups.values()), [])
        init_ntv: list[float] = [v for c, outs in groups.items() for o in outs for v in o["init_ntv"]]
        metrics: dict[str, Any] = {"config": config, "seconds": round(time.monotonic() - started, 1),
                                   "complete": status == "done", "init_ntv": float(np.mean(init_ntv)) if init_ntv else None,
                                   "strengths": {}}
        for c, rows in per.items():
            std = rows.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(rows.shape[1])
            metrics["strengths"][f"{c:g}"] = {
                "mean_ntv": float(rows.mean()), "test_accuracy": accuracy[c], "per_seed": rows.tolist(),
                "layers": [{"layer": n, "mean": float(m), "std": float(sd)}
                           for n, m, sd in zip(layer_names, rows.mean(axis=0), std)]}
        if per:
            overall = [float(r.mean()) for r in per.values()]
            metrics["mean_ntv_by_strength"] = dict(zip([f"{c:g}" for c in per], overall))
            metrics["monotone_decreasing"] = bool(np.all(np.diff(overall) < 0))
            first = next(iter(per.values()))
            metrics["paired_change_vs_weakest"] = {  # same seeds (same initial nets) across strengths
                f"{c:g}": [float(v) for v in (rows - first).mean(axis=0)] for c, rows in per.items()}
            shades = _shades(len(per))
            series = [Series(f"C = {c:g}", rows.mean(axis=0),
                             2 * (rows.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(rows.shape[1])), shades[k])
                      for k, (c, rows) in enumerate(per.items())]
            level = float(np.mean(init_ntv)) if init_ntv else PAPER_INIT_NTV
            save_run_figure(run, "synthetic_smoothness", line_figure(
                series, x_labels=layer_names, xlabel="conv layer", ylabel="normalized total variation (mean ± 2 std)",
                hlines=[HLine(level, f"initialization ({level:.3f})")], style=figure,
                title=f"Filter NTV after training on synthetic deformation tasks ({_count(seeds, 'net')} each)"), figure)
            save_run_figure(run, "synthetic_by_strength", line_figure(
                [Series("mean NTV over conv layers", overall,
                        [2 * float(np.std(r.mean(axis=1), ddof=1)) if len(r) > 1 else 0.0 for r in per.values()],
                        markers=True)],
                x=list(per), xlabel="deformation strength C (px)", ylabel="mean normalized total variation",
                hlines=[HLine(level, "initialization")], style=figure,
                title="Stronger deformations → smoother filters? (Fig. 5b)"), figure)
        run.write_metrics(metrics)
        run.outcome = None if status == "done" else status
        return metrics

    return (yield from finalise(run, body(), threads=job_threads(STUDY_INPUT, STUDY_BATCH)))


# --------------------------------------------------------------------------- random labels (Figs. 6c, 7)

LABEL_KINDS = ("random", "real")


def random_labels_study(*, seeds: int = RANDOM_LABELS_SIZE["seeds"], epochs: int = RANDOM_LABELS_SIZE["epochs"],
                        n: int = RANDOM_LABELS_SIZE["n"], train_images: int = RANDOM_LABELS_SIZE["train_images"],
                        downsamplings=None, out=None, runs_root=None, device: str | torch.device = "cpu",
                        cancel: CancelToken | None = None, figure=None,
                        executor: dict | None = None) -> Generator[Event, None, dict]:
    """Sect. 5: the five downsamplings trained on fixed uniform random labels beside the same nets
    on the real labels; filter NTV per conv layer (Fig. 6c) and NCD per layer (Fig. 7).

    ``metrics.json`` has, per downsampling and label kind, the NCD rows, the NTV per layer (mean and
    std over the nets), each net's train accuracy (on the labels it was trained on: 1.0 = its
    random labels memorised) and test accuracy (on the real test labels), and ``spread``: per label
    kind, how far the variants lie apart (range of their means) against how far one variant's
    nets do (mean std over seeds), for the later-layer NCD and the mean NTV — the paper's claim is
    a spread across architectures that the seeds do not explain, with random labels only."""
    from workbench.models.architectures import DOWNSAMPLINGS

    downsamplings = tuple(downsamplings or DOWNSAMPLINGS)
    for d in downsamplings:
        if d not in DOWNSAMPLINGS:
            raise UserError(f"unknown downsampling '{d}': use one of {', '.join(DOWNSAMPLINGS)}")
    cancel = cancel or CancelToken()
    device = torch.device(device)
    config = {"study": "random-labels", "downsamplings": list(downsamplings), "seeds": seeds, "epochs": epochs,
              "n": n, "train_images": train_images, "grid": 3, "max_disp": 2.0, "init": "truncnormal",
              "labels": "random: uniform over the 10 classes, drawn once from the net's seed (the same every "
                        "epoch, independent of the images); real: the digits' labels",
              "data": f"the first {train_images} training digits (32x32); NCD and test accuracy on the first n test digits"}
    run = _start("random-labels", config, out, runs_root, device)
    yield Artifact("run", str(run.path))

    def body():
        started = time.monotonic()
        tasks = [{"study": "random-labels", "downsampling": d, "labels": kind, "seed": s, "epochs": epochs, "n": n,
                  "train_images": train_images, "device": str(device)}
                 for d in downsamplings for kind in LABEL_KINDS for s in range(seeds)]
        for t in tasks:
            t["variant"] = f"{t['downsampling']}/{t['labels']}"

        def logged(key, outs):
            yield Log(f"{key} labels: train accuracy {np.mean([o['train_accuracy'] for o in outs]):.3f}, "
                      f"test accuracy {np.mean([o['test_accuracy'] for o in outs]):.3f}")

        outcomes, status = yield from _run_tasks(tasks, executor or LOCAL, cancel,
                                                 lambda c: f"{c['variant']} seed {c['seed']}",
                                                 lambda c: c["variant"], logged)
        groups = _groups(tasks, outcomes, "variant")
        metrics: dict[str, Any] = {"config": config, "seconds": round(time.monotonic() - started, 1),
                                   "complete": status == "done", "variants": {}}
        # NTV is compared on the conv layers every variant has (the 3x3 block convs): the strided
        # variants' downsamplings are 2x2 convs of their own, whose NTV is lower by construction
        shared = [name for name in next(iter(groups.values()))[0]["layers"] if
                  all(name in outs[0]["layers"] for outs in groups.values())] if groups else []
        metrics["ntv_layers_compared"] = shared
        per: dict[tuple[str, str], dict[str, Any]] = {}
        for key, outs in groups.items():
            d, kind = key.split("/")
            own = outs[0]["layers"]
            ntv, init_ntv = (np.array([o[k] for o in outs]) for k in ("ntv", "init_ntv"))
            cols = [own.index(name) for name in shared]
            per[d, kind] = {"ncd": _stack([_result(o["sensitivity"]) for o in outs]), "ntv": ntv[:, cols],
                            "init_ntv": init_ntv[:, cols]}
            metrics["variants"].setdefault(d, {})[kind] = {
                "ncd": _rows(per[d, kind]["ncd"]),
                "ntv": [{"layer": name, "mean": float(m), "std": float(sd)}
                        for name, m, sd in zip(own, ntv.mean(axis=0), _sd(ntv))],
                "per_net_ntv": ntv.tolist(), "init_ntv": init_ntv.tolist(),
                "mean_ntv": float(ntv[:, cols].mean()),
                "train_accuracy": [o["train_accuracy"] for o in outs],
                "test_accuracy": [o["test_accuracy"] for o in outs]}
        if per:
            init = np.concatenate([v["init_ntv"].ravel() for v in per.values()])
            metrics["init_ntv"] = float(init.mean())
            metrics["spread"] = {kind: _spread({d: v for (d, k), v in per.items() if k == kind})
                                 for kind in LABEL_KINDS if any(k == kind for _, k in per)}
            _random_labels_figures(run, per, shared, seeds, epochs, train_images, metrics["init_ntv"], figure)
        run.write_metrics(metrics)
        run.outcome = None if status == "done" else status
        return metrics

    return (yield from finalise(run, body(), threads=job_threads(STUDY_INPUT, STUDY_BATCH)))


def _sd(rows: np.ndarray) -> np.ndarray:
    """Sample std over the nets (rows), 0 for one net."""
    return rows.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(rows.shape[1])


def _spread(per: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """For one label kind: each variant's mean later-layer NCD and mean NTV over its nets; the range
    of those means across variants (``architecture_range``) and the mean std across one variant's
    nets (``seed_std``). Fig. 7's claim, "depends on architecture significantly, but does not vary
    much as a function of the random seed", reads as range ≫ seed_std."""
    out: dict[str, Any] = {}
    for what in ("later_ncd", "mean_ntv"):
        nets = {}
        for d, v in per.items():
            if what == "later_ncd":
                nets[d] = v["ncd"].values[:, _later_layers(v["ncd"].layers)].mean(axis=1)
            else:
                nets[d] = v["ntv"].mean(axis=1)
        means = {d: float(x.mean()) for d, x in nets.items()}
        seed_std = float(np.mean([x.std(ddof=1) if len(x) > 1 else 0.0 for x in nets.values()]))
        out[what] = {"by_variant": means, "architecture_range": float(max(means.values()) - min(means.values())),
                     "seed_std": seed_std}
    out["later_ncd"]["layers"] = "block 3 and 4 (relu3_1 .. down4)"
    return out


def _random_labels_figures(run, per, shared, seeds, epochs, train_images, init_ntv, figure) -> None:
    """Fig. 6c (NTV per conv layer of ``shared``, the ones every variant has) and Fig. 7 (NCD per
    layer): one colour per downsampling, solid random labels, dashed real labels, bands ± 2 std over the nets."""
    from workbench.deformation.job import _shared_layers
    from workbench.export.plots import HLine, Series, line_figure
    from workbench.export.render import PALETTE, save_run_figure

    variants = list(dict.fromkeys(d for d, _ in per))
    colours = {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(variants)}
    nets = f"{_count(seeds, 'net')} each, mean ± 2 std"
    trained = f"{_count(epochs, 'epoch')} on {train_images} digits"

    def series(value):
        out = []
        for kind in LABEL_KINDS:
            for d in variants:
                if (d, kind) in per:
                    y, sd = value(per[d, kind])
                    out.append(Series(d if kind == "random" else "", y, 2 * sd, colours[d], dashed=kind == "real"))
        return out

    names, xlabel = _shared_layers([v["ncd"].layers for v in per.values()], "layer")
    save_run_figure(run, "random_labels_smoothness", line_figure(
        series(lambda v: (v["ntv"].mean(axis=0), _sd(v["ntv"]))), x_labels=shared, xlabel="3×3 conv layer",
        ylabel="normalized total variation (mean ± 2 std)", hlines=[HLine(init_ntv, f"initialization ({init_ntv:.3f})")],
        style=figure, title=f"Filter smoothness after training on random labels (solid) and real labels (dashed), "
                            f"{trained} ({nets}; Fig. 6c)"), figure)
    save_run_figure(run, "random_labels_sensitivity", line_figure(
        series(lambda v: (v["ncd"].mean, v["ncd"].std)), x_labels=names, xlabel=xlabel,
        ylabel="normalized cosine distance (mean ± 2 std)", style=figure,
        title=f"Deformation sensitivity after training on random labels (solid) and real labels (dashed), "
              f"{trained} ({nets}; Fig. 7)"), figure)


# --------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class StudySpec:
    job: Callable[..., Generator[Event, None, dict]]
    describe: Callable[[dict], list[str]]


def _describe_pooling(m: dict) -> list[str]:
    lines = [f"pooling study: {m['seconds']} s"]
    for key in ("comparison", "comparison_trained"):
        if key in m:
            lines.append(f"{'init' if key == 'comparison' else 'trained'} mean NCD, {m[key]['layers']}: " +
                         ", ".join(f"{d} {v:.3f}" for d, v in m[key]["mean_ncd"].items()))
    return lines


def _describe_smoothing(m: dict) -> list[str]:
    lines = [f"smoothing study: {m['seconds']} s"]
    for sigma, v in m["sigmas"].items():
        last = v["layers"][-1]
        lines.append(f"σ={sigma}: mean NTV {v['mean_ntv']:.3f}, NCD at {last['layer']} {last['mean']:.3f}")
    if "monotone_per_layer" in m:
        ok = sum(m["monotone_per_layer"].values())
        lines.append(f"NCD non-increasing in σ at {ok} of {len(m['monotone_per_layer'])} layers")
    return lines


def _describe_synthetic(m: dict) -> list[str]:
    lines = [f"synthetic study: {m['seconds']} s, init NTV {m['init_ntv']}"]
    for c, v in m["strengths"].items():
        lines.append(f"C={c}: mean NTV {v['mean_ntv']:.4f}, test accuracy {np.mean(v['test_accuracy']):.3f}")
    if "monotone_decreasing" in m:
        lines.append(f"mean NTV strictly decreasing in C: {m['monotone_decreasing']}")
    return lines


def _describe_random_labels(m: dict) -> list[str]:
    lines = [f"random-labels study: {m['seconds']} s, init NTV {m.get('init_ntv')}"]
    for d, kinds in m["variants"].items():
        lines.append(f"{d}: " + "; ".join(
            f"{kind} labels mean NTV {v['mean_ntv']:.3f}, train accuracy {np.mean(v['train_accuracy']):.3f}, "
            f"test accuracy {np.mean(v['test_accuracy']):.3f}" for kind, v in kinds.items()))
    for kind, s in m.get("spread", {}).items():
        lines.append(f"{kind} labels: later-layer NCD " + ", ".join(
            f"{d} {v:.3f}" for d, v in s["later_ncd"]["by_variant"].items()) +
            f" (range across variants {s['later_ncd']['architecture_range']:.3f}, std across seeds "
            f"{s['later_ncd']['seed_std']:.3f}); mean NTV range {s['mean_ntv']['architecture_range']:.3f}, "
            f"std across seeds {s['mean_ntv']['seed_std']:.3f}")
    return lines


STUDIES = {
    "pooling": StudySpec(pooling_study, _describe_pooling),
    "smoothing": StudySpec(smoothing_study, _describe_smoothing),
    "synthetic": StudySpec(synthetic_study, _describe_synthetic),
    "random-labels": StudySpec(random_labels_study, _describe_random_labels),
}


#: Upper bounds beyond which a study size is a typo rather than a setting.
STUDY_LIMITS = {"seeds": 1000, "epochs": 1000, "n": 10_000}


def run_study(name: str, *, out=None, runs_root=None, device: str = "auto", cancel: CancelToken | None = None,
              figure=None, executor: str = "local", workers: int | None = None, address: str | None = None,
              **size) -> Generator[Event, None, dict]:
    """Run the study ``name`` (``size``: seeds, epochs, n); ``figure`` is a
    :class:`~workbench.export.style.FigureStyle` for its plots (default: a page width). Its tasks
    run on ``executor`` (local, process with ``workers`` processes, or ray: an embedded Ray of
    ``workers`` CPUs or the cluster at ``address``)."""
    from workbench import limits
    from workbench.config.sweep import ExecutorConfig
    from workbench.device import resolve_device

    if name not in STUDIES:
        raise UserError(f"unknown study '{name}': use one of {', '.join(STUDIES)}")
    where = ExecutorConfig(executor, workers, address)
    where.validate()
    for key, value in size.items():
        if value is not None:
            limits.integer(f"--{key}", value, 2 if key == "n" else 1, STUDY_LIMITS[key])
    if name == "smoothing":
        size.pop("epochs", None)
    if name == "synthetic":
        size.pop("n", None)
    return (yield from STUDIES[name].job(out=out, runs_root=runs_root, device=resolve_device(device), cancel=cancel,
                                         figure=figure, executor=where.options(), **size))
