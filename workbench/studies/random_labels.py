"""Ruderman et al. 2018, sect. 5 (Figs. 6c and 7): nets trained on random labels, at a size that fits a 2-core CPU.

The five nets of the ``pooling`` study (:mod:`workbench.studies.deformation`) trained on the same
digits with their labels replaced by fixed uniform random labels (Zhang et al. 2016: drawn once
from the seed, the same in every epoch), beside the same nets (same initial weights, same images,
same epochs) trained on the real labels; filter NTV per conv layer (Fig. 6c) and NCD per layer
(Fig. 7) after training. A subset of the training digits, so that every net fits (memorises) its
random labels within minutes on a CPU. Each net is a task of
:func:`workbench.studies.deformation_tasks.study_task`, on any executor.
"""

from __future__ import annotations

import time
from typing import Any, Generator

import numpy as np
import torch

from workbench.errors import UserError
from workbench.jobs import CancelToken, Event
from workbench.studies.common import STUDY_BATCH, STUDY_INPUT, count, study_job
from workbench.studies.deformation_tasks import accuracies, later_layers, run_tasks, sample_std, sensitivity, stack
from workbench.threads import job_threads

#: random-labels: 256 training digits are memorised (train accuracy 1.0 on their random labels) by
#: cifar-vgg-maxpool and -strided-relu after 10 epochs of Adam (0.29 / 0.11 after 5), avg-pool only to
#: 0.88 after 10; 15 epochs leave a margin.
#: 2 nets per variant and label kind: 20 trainings.
RANDOM_LABELS_SIZE = {"seeds": 2, "epochs": 15, "n": 128, "train_images": 256}

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

    def body(run):
        started = time.monotonic()
        tasks = [{"study": "random-labels", "downsampling": d, "labels": kind, "seed": s, "epochs": epochs, "n": n,
                  "train_images": train_images, "device": str(device)}
                 for d in downsamplings for kind in LABEL_KINDS for s in range(seeds)]
        for t in tasks:
            t["variant"] = f"{t['downsampling']}/{t['labels']}"
        groups, status = yield from run_tasks(
            tasks, executor, cancel, group="variant", stage=lambda c: f"{c['variant']} seed {c['seed']}",
            summary=lambda key, outs: f"{key} labels: {accuracies(outs, 'train', 'test')}")
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
            per[d, kind] = {"ncd": stack([sensitivity(o["sensitivity"]) for o in outs]), "ntv": ntv[:, cols],
                            "init_ntv": init_ntv[:, cols]}
            metrics["variants"].setdefault(d, {})[kind] = {
                "ncd": per[d, kind]["ncd"].table(),
                "ntv": [{"layer": name, "mean": float(m), "std": float(sd)}
                        for name, m, sd in zip(own, ntv.mean(axis=0), sample_std(ntv))],
                "per_net_ntv": ntv.tolist(), "init_ntv": init_ntv.tolist(),
                "mean_ntv": float(ntv[:, cols].mean()),
                "train_accuracy": [o["train_accuracy"] for o in outs],
                "test_accuracy": [o["test_accuracy"] for o in outs]}
        if per:
            init = np.concatenate([v["init_ntv"].ravel() for v in per.values()])
            metrics["init_ntv"] = float(init.mean())
            metrics["spread"] = {kind: _spread({d: v for (d, k), v in per.items() if k == kind})
                                 for kind in LABEL_KINDS if any(k == kind for _, k in per)}
            _figures(run, per, shared, seeds, epochs, train_images, metrics["init_ntv"], figure)
        return metrics

    return (yield from study_job("random-labels", config, body, threads=job_threads(STUDY_INPUT, STUDY_BATCH),
                                 out=out, runs_root=runs_root, device=device))


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
                nets[d] = v["ncd"].values[:, later_layers(v["ncd"].layers)].mean(axis=1)
            else:
                nets[d] = v["ntv"].mean(axis=1)
        means = {d: float(x.mean()) for d, x in nets.items()}
        seed_std = float(np.mean([x.std(ddof=1) if len(x) > 1 else 0.0 for x in nets.values()]))
        out[what] = {"by_variant": means, "architecture_range": float(max(means.values()) - min(means.values())),
                     "seed_std": seed_std}
    out["later_ncd"]["layers"] = "block 3 and 4 (relu3_1 .. down4)"
    return out


def _figures(run, per, shared, seeds, epochs, train_images, init_ntv, figure) -> None:
    """Fig. 6c (NTV per conv layer of ``shared``, the ones every variant has) and Fig. 7 (NCD per
    layer): one colour per downsampling, solid random labels, dashed real labels, bands ± 2 std over the nets."""
    from workbench.deformation.job import _shared_layers
    from workbench.export.plots import HLine, Series, line_figure
    from workbench.export.render import PALETTE, save_run_figure

    variants = list(dict.fromkeys(d for d, _ in per))
    colours = {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(variants)}
    nets = f"{count(seeds, 'net')} each, mean ± 2 std"
    trained = f"{count(epochs, 'epoch')} on {train_images} digits"

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
        series(lambda v: (v["ntv"].mean(axis=0), sample_std(v["ntv"]))), x_labels=shared, xlabel="3×3 conv layer",
        ylabel="normalized total variation (mean ± 2 std)", hlines=[HLine(init_ntv, f"initialization ({init_ntv:.3f})")],
        style=figure, title=f"Filter smoothness after training on random labels (solid) and real labels (dashed), "
                            f"{trained} ({nets}; Fig. 6c)"), figure)
    save_run_figure(run, "random_labels_sensitivity", line_figure(
        series(lambda v: (v["ncd"].mean, v["ncd"].std)), x_labels=names, xlabel=xlabel,
        ylabel="normalized cosine distance (mean ± 2 std)", style=figure,
        title=f"Deformation sensitivity after training on random labels (solid) and real labels (dashed), "
              f"{trained} ({nets}; Fig. 7)"), figure)


def describe(m: dict) -> list[str]:
    """The lines ``workbench study random-labels`` prints from its metrics."""
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
