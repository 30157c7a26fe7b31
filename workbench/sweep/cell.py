"""One sweep cell, run wherever an executor puts it: ``preimage_job`` through ``run_job`` into the
cell's run folder, with a fixed intra-op thread count so that every executor gives the same numbers.

A cell's task (:func:`task`) carries its PreimageConfig, the full :class:`~workbench.config.model.ModelSpec`
of its model (weights, model_kwargs, input size, ..., path) and the user's consent (``trust``, and
``imports``: the spec was typed on the command line or handed to the API, not read from a folder), so a
worker process opens the same model the command line named, and the cell's run.json records
``model.spec`` like any run (the window reopens it through the same spec and consent).
"""

from __future__ import annotations

import json
import threading
from typing import Any

#: Metrics a results row carries (the mean of a per-restart list where the metric is one).
ROW_METRICS = ("reconstruction_error_mean", "reconstruction_error_std", "classification_consistency",
               "activation", "restart_rms_mean", "iterations_used", "seconds",
               # issue 22: IJCV Fig. 7's similarity; a cvpr2015 cell's N_Φ error and the λ_TV it used
               "gradient_histogram_intersection_mean", "reconstruction_error_nphi_mean", "lambda_tv_used")
#: Per-restart lists kept in results.json (for the mean ± std over images and restarts).
PER_RESTART = ("reconstruction_error", "activation", "predictions", "gradient_histogram_intersection",
               "reconstruction_error_nphi",
               # issue 19: a maximisation's quality (preimage/quality.py), written under each atlas tile
               "p_target", "p_blur", "p_half", "blur_retention", "half_retention", "spectral_slope")


def open_model(spec, device: str = "cpu", *, trust: bool = False, imports: bool = False):
    """The model ``spec`` (a ModelSpec, its dict or a name) names, on ``device``. ``imports=False`` (the
    default: a spec read from a file) imports no Python code unless ``trust``."""
    from workbench.config import from_dict
    from workbench.config.model import ModelSpec
    from workbench.device import resolve_device
    from workbench.models import load_model

    spec = from_dict(ModelSpec, spec) if isinstance(spec, dict) else spec
    return load_model(spec, device=resolve_device(device), trust=trust, imports=imports)


class CellModels:
    """The models a sweep's cells use, each opened once while it is among the ``size`` used last: the
    grid's expansion and every cell run in this process share them (the local executor). The object
    owns them and goes with its sweep (no module-level cache); the bound keeps a grid over many models
    from holding every one in memory. A copy sent to another process (the process and Ray executors
    pickle it with each cell) arrives empty and opens the model again there."""

    #: Models kept open at once (the least recently used is dropped first).
    SIZE = 4

    def __init__(self, size: int = SIZE) -> None:
        from collections import OrderedDict

        self.size = max(1, int(size))
        self._models: OrderedDict[tuple[str, str, bool, bool], Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._models)

    def open(self, spec, device: str = "cpu", *, trust: bool = False, imports: bool = False):
        """:func:`open_model`, once per (spec, device, consent) while it is among the last ``size`` used."""
        from workbench.config import to_dict
        from workbench.device import resolve_device

        dev = resolve_device(device)
        text = json.dumps(spec if isinstance(spec, (dict, str)) else to_dict(spec), sort_keys=True)
        key = (text, str(dev), bool(trust), bool(imports))
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
            else:
                self._models[key] = open_model(spec, dev, trust=trust, imports=imports)
                while len(self._models) > self.size:
                    self._models.popitem(last=False)
            return self._models[key]

    def __getstate__(self) -> dict:
        return {"size": self.size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state.get("size", self.SIZE))


def task(config: dict[str, Any], spec: dict[str, Any], *, trust: bool = False, imports: bool = False) -> dict[str, Any]:
    """What an executor hands :func:`run_cell`: the cell's PreimageConfig (a dict), its model's full
    spec (``to_dict(ModelSpec)``) and the consent to open it (see the module's docstring)."""
    return {"config": config, "spec": spec, "trust": bool(trust), "imports": bool(imports)}


def _number(value: Any) -> float | None:
    """A finite metric as a float; anything else (a string, a 400-digit integer, NaN) is None."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _value(value: Any) -> int | float | None:
    """An integer metric as it is (while a float holds it exactly), any other as :func:`_number`."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return value
    return _number(value)


def summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a results row and results.json keep of a cell's metrics.json. The file may come from
    anywhere (a received sweep, --resume): a value that is not a finite number is left out (None)."""
    out: dict[str, Any] = {}
    for name in ROW_METRICS:
        value = metrics.get(name)
        if isinstance(value, list):
            numbers = [_number(v) for v in value[:100_000]]
            value = sum(numbers) / len(numbers) if numbers and None not in numbers else None
        out[name] = _value(value)
    out["C_used"] = _value(metrics.get("C"))
    out["lambda_tv_used"] = _value(metrics.get("lambda_tv"))
    reference = metrics.get("reference_prediction")
    out["reference_prediction"] = reference if isinstance(reference, (int, str, type(None))) and len(str(reference)) < 200 else None
    out["per_restart"] = {k: [v if _number(v) is not None else None for v in metrics[k]]
                          if k != "predictions" else metrics[k]
                          for k in PER_RESTART if isinstance(metrics.get(k), list) and len(metrics[k]) <= 100_000}
    return out


def run_cell(cell: dict[str, Any], folder: str, threads: int = 1, cancel=None,
             models: CellModels | None = None) -> dict[str, Any]:
    """Run one cell (a :func:`task`) into ``folder`` (a new folder); return :func:`summary` of its
    metrics. ``models`` keeps the models open between cells (the local executor). Raises what the job
    raised (the folder is marked failed or cancelled by the job's finalise)."""
    from workbench.config import from_dict
    from workbench.config.preimage import PreimageConfig
    from workbench.jobs import CancelToken, run_job
    from workbench.preimage.quality import open_judge
    from workbench.preimage.solve import preimage_job
    from workbench.signals import stop_signals_set

    cfg = from_dict(PreimageConfig, cell["config"])
    cancel = cancel or CancelToken()
    models = models if models is not None else CellModels()
    with stop_signals_set(cancel):  # in a pool worker: a stop signal cancels this cell
        model = models.open(cell.get("spec") or cfg.model, cfg.device, trust=bool(cell.get("trust")),
                            imports=bool(cell.get("imports")))
        judge = open_judge(cfg, model)  # a cell's config names none (grid.py); a hand-made one may
        cancel.check()  # stopped while the models opened: no folder
        # the cell's thread count is a value (the same on every executor), not an environment variable
        result = run_job(preimage_job(cfg, cancel=cancel, out=folder, model=model, judge=judge, threads=threads))
    return summary(result.metrics)


def worker_init() -> None:
    """A pool worker: its stop signals for its life (:class:`~workbench.signals.WorkerSignals`): a stop
    signal cancels the cell running (its folder marked cancelled, see :func:`run_cell`) and any it would
    start after; the pool's sentinel then ends the worker through its normal exit (:func:`_leave`)."""
    import atexit

    from workbench.signals import worker_signals

    worker_signals()
    atexit.register(_leave)  # registered before any cell imports torch: runs last
    _thread_lock_for_tqdm()


def _thread_lock_for_tqdm() -> None:
    """torch.fx's Interpreter (the layer table) makes a tqdm bar, whose class then creates a
    multiprocessing RLock: a named semaphore registered with the resource tracker, which a worker killed
    at the end of a forced stop leaves behind (the tracker then warns on stderr, two lines). A worker
    draws no bar that shares a terminal with another process: a thread lock serves, and nothing leaks."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    tqdm.set_lock(threading.RLock())


def _leave() -> None:
    """A pool worker's last exit hook. What ends a process cleanly has run by now: multiprocessing's
    finalizers (run before any hook: they unlink the worker's semaphores, which its resource tracker
    would otherwise report as leaked) and every hook registered after this one (torch's and the
    cells'); what is left is the interpreter freeing its modules, which with torch loaded took 3.6 s
    against 0.2 s on a busy machine — seconds a stopped sweep would wait. Skip it."""
    import logging
    import os
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)
