"""One sweep cell, run wherever an executor puts it: ``preimage_job`` through ``run_job`` into the
cell's run folder, with a fixed intra-op thread count so that every executor gives the same numbers."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator

#: Models opened in this process, by (spec, device): a worker that runs many cells opens each once.
_MODELS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()

#: Metrics a results row carries (the mean of a per-restart list where the metric is one).
ROW_METRICS = ("reconstruction_error_mean", "reconstruction_error_std", "classification_consistency",
               "activation", "restart_rms_mean", "iterations_used", "seconds")
#: Per-restart lists kept in results.json (for the mean ± std over images and restarts).
PER_RESTART = ("reconstruction_error", "activation", "predictions")


@contextmanager
def fixed_threads(n: int) -> Iterator[None]:
    """``WORKBENCH_THREADS=n`` while the block runs (read by :func:`workbench.threads.job_threads`)."""
    from workbench.threads import ENV

    previous = os.environ.get(ENV)
    os.environ[ENV] = str(n)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous


def open_model(spec: str, device: str = "cpu"):
    from workbench.device import resolve_device
    from workbench.models import load_model

    dev = resolve_device(device)
    key = (spec, str(dev))
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(spec, device=dev, imports=False)  # a config names no code to import
        return _MODELS[key]


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
    reference = metrics.get("reference_prediction")
    out["reference_prediction"] = reference if isinstance(reference, (int, str, type(None))) and len(str(reference)) < 200 else None
    out["per_restart"] = {k: [v if _number(v) is not None else None for v in metrics[k]]
                          if k != "predictions" else metrics[k]
                          for k in PER_RESTART if isinstance(metrics.get(k), list) and len(metrics[k]) <= 100_000}
    return out


def run_cell(config: dict[str, Any], folder: str, threads: int = 1, cancel=None) -> dict[str, Any]:
    """Run one cell into ``folder`` (a new folder); return :func:`summary` of its metrics.
    Raises what the job raised (the folder is marked failed or cancelled by the job's finalise)."""
    from workbench.config import from_dict
    from workbench.config.preimage import PreimageConfig
    from workbench.jobs import CancelToken, run_job
    from workbench.preimage.solve import preimage_job
    from workbench.signals import stop_signals_set

    cfg = from_dict(PreimageConfig, config)
    cancel = cancel or CancelToken()
    with fixed_threads(threads):
        model = open_model(cfg.model, cfg.device)
        with stop_signals_set(cancel):  # in a pool worker: a stop signal cancels this cell
            result = run_job(preimage_job(cfg, cancel=cancel, out=folder, model=model))
    return summary(result.metrics)


def worker_init() -> None:
    """A pool worker: a stop signal while a cell runs cancels it (its folder marked cancelled, see
    :func:`run_cell`); between cells it ends the worker."""
    from workbench.signals import exit_when_idle

    exit_when_idle()
