"""The deformation studies' tasks (Ruderman et al. 2018) and the loop that runs them on an executor.

A task is one training or measurement of a study, a pure function of its config (study, variant,
seed, sizes, device) returning numbers: :func:`study_task` runs one on the study's fixed thread
count, on any executor of :mod:`workbench.sweep.executors` (``local``, ``process`` or ``ray``),
so every executor gives the numbers of the sequential loop. :func:`run_tasks` runs a study's tasks,
yields a Step per task and a Log per finished group, honours cancel, and returns the outcomes
grouped in their sequential order. The studies themselves (their run folders, metrics and figures)
are :mod:`workbench.studies.deformation` and :mod:`workbench.studies.random_labels`.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Generator

import numpy as np
import torch

from workbench.data.digits import DIGITS_MEAN, DIGITS_STD, load_digits32
from workbench.deformation.features import default_layers
from workbench.deformation.sensitivity import SensitivityResult, deformation_sensitivity
from workbench.deformation.tps import random_deform
from workbench.jobs import Cancelled, CancelToken, Event, Log, Step
from workbench.signals import Forced
from workbench.studies.common import STUDY_BATCH, STUDY_INPUT
from workbench.threads import job_threads

#: The executor of a study when none is given: the sequential loop in this process.
LOCAL = {"executor": "local"}


def _fresh(downsampling: str, init: str, seed: int, blocks=None) -> torch.nn.Module:
    from workbench.deformation.smoothness import initialize
    from workbench.models.architectures import cifar_vgg

    module = cifar_vgg(downsampling) if blocks is None else cifar_vgg(downsampling, blocks=tuple(blocks))
    return initialize(module, init, seed).eval()


def _measure(module, images, seed, n_seeds, cancel, device):
    layers = default_layers(module)
    return deformation_sensitivity(module, images, layers, mean=DIGITS_MEAN, std=DIGITS_STD, grid=3, max_disp=2.0,
                                   seeds=[seed * 1000 + k for k in range(n_seeds)], device=device, cancel=cancel)


def stack(results: list[SensitivityResult]) -> SensitivityResult:
    """One result per network seed → a result whose repeats are the networks (mean of each net's repeats)."""
    values = np.stack([r.mean for r in results])
    return SensitivityResult(results[0].layers, [r.seeds[0] for r in results], values,
                             np.mean([r.median_distance for r in results], axis=0))


def _numbers(r: SensitivityResult) -> dict[str, Any]:
    if not r.complete:
        raise Cancelled()
    return {"layers": list(r.layers), "seeds": list(r.seeds), "values": np.asarray(r.values),
            "median_distance": np.asarray(r.median_distance)}


def sensitivity(d: dict[str, Any]) -> SensitivityResult:
    """A task's sensitivity numbers as the :class:`SensitivityResult` they were."""
    return SensitivityResult(list(d["layers"]), list(d["seeds"]), np.array(d["values"]),
                             np.array(d["median_distance"]))


def later_layers(layers: list[str]) -> list[int]:
    """Indices of block 3 and 4's layers (relu3_1 … down4): the first digit of the name is 3 or 4."""
    return [i for i, name in enumerate(layers) if re.search(r"\d", name) and re.search(r"\d", name)[0] in "34"]


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


# --------------------------------------------------------------------------- the tasks

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


# --------------------------------------------------------------------------- the loop

def run_tasks(tasks: list[dict[str, Any]], executor: dict[str, Any] | None, cancel: CancelToken, *, group: str,
              stage: Callable[[dict], str], summary: Callable[[Any, list[dict]], str] | None = None,
              ) -> Generator[Event, None, tuple[dict[Any, list[dict]], str]]:
    """Run ``tasks`` (configs of :func:`study_task`) on ``executor`` (make_executor's name and
    options; None: :data:`LOCAL`): a Step per finished task, its stage ``stage(task)``, and once
    every task of a group (the tasks of one ``task[group]``) has finished, ``Log(summary(key,
    outcomes))``. Returns (the outcomes of each group whose tasks all finished, by key in the
    sequential loop's order; ``"done"`` or ``"cancelled"``); a task's error is raised."""
    from workbench.sweep.executors import make_executor

    threads = job_threads(STUDY_INPUT, STUDY_BATCH)
    options = dict(executor or LOCAL)
    runner = make_executor(options.pop("executor", "local"), threads=threads, function=study_task, **options)
    members: dict[Any, list[int]] = {}
    for i, c in enumerate(tasks):
        members.setdefault(c[group], []).append(i)
    outcomes: dict[int, Any] = {}
    status = "done"
    try:
        stream = runner.run([(i, c, "") for i, c in enumerate(tasks)], cancel)
        try:
            for index, outcome in stream:
                if isinstance(outcome, (Cancelled, KeyboardInterrupt)):
                    status = "cancelled"
                    break
                if isinstance(outcome, BaseException):
                    raise outcome
                outcomes[index] = outcome
                yield Step(len(outcomes), len(tasks), stage=stage(tasks[index]))
                key = tasks[index][group]
                if summary is not None and all(i in outcomes for i in members[key]):
                    yield Log(summary(key, [outcomes[i] for i in members[key]]))
        except Forced:  # a second stop signal: end at once, no figures (issue 17)
            raise
        except (Cancelled, KeyboardInterrupt):
            status = "cancelled"
        finally:
            stream.close()
    finally:
        runner.close()
    if len(outcomes) < len(tasks):
        status = "cancelled"
    finished = {key: [outcomes[i] for i in ids] for key, ids in members.items() if all(i in outcomes for i in ids)}
    return finished, status


def accuracies(outcomes: list[dict], *kinds: str) -> str:
    """``train accuracy 1.000, test accuracy 0.912``: the mean of each kind over a group's nets."""
    return ", ".join(f"{kind} accuracy {np.mean([o[f'{kind}_accuracy'] for o in outcomes]):.3f}" for kind in kinds)


def sample_std(rows: np.ndarray) -> np.ndarray:
    """Sample std over the nets (rows), 0 for one net."""
    return rows.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(rows.shape[1])
