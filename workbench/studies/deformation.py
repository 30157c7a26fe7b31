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
- ``random-labels`` (Figs. 6c and 7, sect. 5): :mod:`workbench.studies.random_labels`.

Each study is a job writing one run folder (:func:`workbench.studies.common.study_job`):
``metrics.json`` (settings, sizes, seconds, the per-layer numbers) and ``images/*.png`` with a
``.pdf`` of each plot. Its independent trainings and measurements (one per network seed and
variant) are tasks (:mod:`workbench.studies.deformation_tasks`) run on an executor of
:mod:`workbench.sweep.executors` (``local``, ``process`` or ``ray``), each a pure function of its
config on the study's fixed thread count, so every executor gives the numbers of the sequential
loop. :data:`STUDIES` names them all for ``workbench study`` and :func:`run_study`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Generator

import numpy as np
import torch

from workbench.deformation.sensitivity import SensitivityResult
from workbench.errors import UserError
from workbench.jobs import CancelToken, Event
from workbench.studies import random_labels
from workbench.studies.common import STUDY_BATCH, STUDY_INPUT, count, study_job
from workbench.studies.deformation_tasks import (accuracies, later_layers, run_tasks, sample_std, sensitivity, stack,
                                                 synthetic_task)
from workbench.threads import job_threads

#: Sizes chosen so each study takes minutes of CPU time on a 2-core machine (measured: pooling
#: 18 CPU-min, smoothing 1, synthetic 5; wall times 3-4x longer when the machine is shared).
POOLING_SIZE = {"seeds": 3, "epochs": 3, "n": 128}
SMOOTHING_SIZE = {"seeds": 3, "n": 128, "sigmas": (0.0, 0.5, 1.0, 2.0, 4.0)}
SYNTHETIC_SIZE = {"seeds": 3, "epochs": 8, "per_class": 64, "strengths": (1.0, 2.0, 3.0, 4.0),
                  "blocks": ((1, 16), (1, 32), (1, 64))}


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

    def body(run):
        started = time.monotonic()
        tasks = [{"study": "pooling", "downsampling": d, "seed": s, "epochs": epochs, "n": n, "device": str(device)}
                 for d in DOWNSAMPLINGS for s in range(seeds)]
        groups, status = yield from run_tasks(
            tasks, executor, cancel, group="downsampling", stage=lambda c: f"{c['downsampling']} seed {c['seed']}",
            summary=lambda d, outs: f"{d}: {accuracies(outs, 'test')}")
        per: dict[str, dict[str, Any]] = {
            d: {"init": stack([sensitivity(o["init"]) for o in outs]),
                "trained": stack([sensitivity(o["trained"]) for o in outs]),
                "test_accuracy": [o["test_accuracy"] for o in outs]}
            for d, outs in groups.items()}
        seconds = time.monotonic() - started
        metrics: dict[str, Any] = {"config": config, "seconds": round(seconds, 1), "complete": status == "done",
                                   "variants": {}}
        for d, v in per.items():
            metrics["variants"][d] = {"init": v["init"].table(), "trained": v["trained"].table(),
                                      "test_accuracy": v["test_accuracy"]}
        if per:
            metrics["comparison"] = _later_layer_comparison({d: v["init"] for d, v in per.items()})
            metrics["comparison_trained"] = _later_layer_comparison({d: v["trained"] for d, v in per.items()})
            save_run_figure(run, "pooling_init", sensitivity_plot(
                [(d, v["init"]) for d, v in per.items()], f"At initialization ({count(seeds, 'net')} each, mean ± 2 std)",
                style=figure), figure)
            save_run_figure(run, "pooling_trained", sensitivity_plot(
                [(d, v["trained"]) for d, v in per.items()], f"After {count(epochs, 'epoch')} on digits ({count(seeds, 'net')} each)",
                style=figure), figure)
        return metrics

    return (yield from study_job("pooling", config, body, threads=job_threads(STUDY_INPUT, STUDY_BATCH),
                                 out=out, runs_root=runs_root, device=device))


def _later_layer_comparison(results: dict[str, SensitivityResult]) -> dict[str, Any]:
    """Mean NCD over the later layers (block 3 on: relu3_1 … down4) per downsampling."""
    out = {d: float(np.mean(r.mean[later_layers(r.layers)])) for d, r in results.items()}
    return {"layers": "block 3 and 4 (relu3_1 .. down4)", "mean_ncd": out}


# --------------------------------------------------------------------------- smoothing (Fig. 4)

def smoothing_study(*, seeds: int = 3, n: int = 128, sigmas=SMOOTHING_SIZE["sigmas"], architecture: str = "subsample",
                    out=None, runs_root=None, device: str | torch.device = "cpu",
                    cancel: CancelToken | None = None, figure=None,
                    executor: dict | None = None) -> Generator[Event, None, dict]:
    cancel = cancel or CancelToken()
    device = torch.device(device)
    config = {"study": "smoothing", "architecture": f"cifar-vgg-{architecture}", "seeds": seeds, "n": n,
              "sigmas": list(sigmas), "grid": 3, "max_disp": 2.0, "init": "truncnormal convolved with a Gaussian (σ)"}

    def body(run):
        started = time.monotonic()
        tasks = [{"study": "smoothing", "architecture": architecture, "sigma": sigma, "seed": s, "n": n,
                  "device": str(device)} for sigma in sigmas for s in range(seeds)]
        groups, status = yield from run_tasks(tasks, executor, cancel, group="sigma", stage=lambda c: f"σ={c['sigma']}")
        per: dict[float, SensitivityResult] = {
            sigma: stack([sensitivity(o["sensitivity"]) for o in outs]) for sigma, outs in groups.items()}
        ntv: dict[float, float] = {sigma: float(np.mean([o["ntv"] for o in outs])) for sigma, outs in groups.items()}
        metrics: dict[str, Any] = {"config": config, "seconds": round(time.monotonic() - started, 1),
                                   "complete": status == "done", "sigmas": {}}
        for sigma, r in per.items():
            metrics["sigmas"][str(sigma)] = {"mean_ntv": ntv[sigma], "layers": r.table()}
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
                      f"({count(seeds, 'net')} each)"), figure)
        return metrics

    return (yield from study_job("smoothing", config, body, threads=job_threads(STUDY_INPUT, STUDY_BATCH),
                                 out=out, runs_root=runs_root, device=device))


def _shades(k: int) -> list[tuple[int, int, int]]:
    """Light to dark blue: darker lines for smoother filters, as in Fig. 4."""
    return [tuple(int(a + (b - a) * t) for a, b in zip((150, 190, 235), (8, 30, 90)))
            for t in np.linspace(0.0, 1.0, max(k, 2))][:k]


# --------------------------------------------------------------------------- synthetic (Fig. 5)

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

    def body(run):
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
        groups, status = yield from run_tasks(
            tasks, executor, cancel, group="strength", stage=lambda t: f"C={t['strength']:g} seed {t['seed']}",
            summary=lambda c, outs: f"C={c:g}: mean NTV {np.mean([o['ntv'] for o in outs]):.4f}, "
                                    f"{accuracies(outs, 'test')}")
        per: dict[float, np.ndarray] = {c: np.array([o["ntv"] for o in outs]) for c, outs in groups.items()}
        accuracy: dict[float, list[float]] = {c: [o["test_accuracy"] for o in outs] for c, outs in groups.items()}
        layer_names: list[str] = next((outs[0]["layers"] for outs in groups.values()), [])
        init_ntv: list[float] = [v for c, outs in groups.items() for o in outs for v in o["init_ntv"]]
        metrics: dict[str, Any] = {"config": config, "seconds": round(time.monotonic() - started, 1),
                                   "complete": status == "done", "init_ntv": float(np.mean(init_ntv)) if init_ntv else None,
                                   "strengths": {}}
        for c, rows in per.items():
            metrics["strengths"][f"{c:g}"] = {
                "mean_ntv": float(rows.mean()), "test_accuracy": accuracy[c], "per_seed": rows.tolist(),
                "layers": [{"layer": n, "mean": float(m), "std": float(sd)}
                           for n, m, sd in zip(layer_names, rows.mean(axis=0), sample_std(rows))]}
        if per:
            overall = [float(r.mean()) for r in per.values()]
            metrics["mean_ntv_by_strength"] = dict(zip([f"{c:g}" for c in per], overall))
            metrics["monotone_decreasing"] = bool(np.all(np.diff(overall) < 0))
            first = next(iter(per.values()))
            metrics["paired_change_vs_weakest"] = {  # same seeds (same initial nets) across strengths
                f"{c:g}": [float(v) for v in (rows - first).mean(axis=0)] for c, rows in per.items()}
            shades = _shades(len(per))
            series = [Series(f"C = {c:g}", rows.mean(axis=0), 2 * sample_std(rows), shades[k])
                      for k, (c, rows) in enumerate(per.items())]
            level = float(np.mean(init_ntv)) if init_ntv else PAPER_INIT_NTV
            save_run_figure(run, "synthetic_smoothness", line_figure(
                series, x_labels=layer_names, xlabel="conv layer", ylabel="normalized total variation (mean ± 2 std)",
                hlines=[HLine(level, f"initialization ({level:.3f})")], style=figure,
                title=f"Filter NTV after training on synthetic deformation tasks ({count(seeds, 'net')} each)"), figure)
            save_run_figure(run, "synthetic_by_strength", line_figure(
                [Series("mean NTV over conv layers", overall,
                        [2 * float(np.std(r.mean(axis=1), ddof=1)) if len(r) > 1 else 0.0 for r in per.values()],
                        markers=True)],
                x=list(per), xlabel="deformation strength C (px)", ylabel="mean normalized total variation",
                hlines=[HLine(level, "initialization")], style=figure,
                title="Stronger deformations → smoother filters? (Fig. 5b)"), figure)
        return metrics

    return (yield from study_job("synthetic", config, body, threads=job_threads(STUDY_INPUT, STUDY_BATCH),
                                 out=out, runs_root=runs_root, device=device))


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


STUDIES = {
    "pooling": StudySpec(pooling_study, _describe_pooling),
    "smoothing": StudySpec(smoothing_study, _describe_smoothing),
    "synthetic": StudySpec(synthetic_study, _describe_synthetic),
    "random-labels": StudySpec(random_labels.random_labels_study, random_labels.describe),
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
