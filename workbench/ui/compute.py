"""Small Qt-free jobs behind the views: the reference image, first-layer filters, feature maps.

They run on worker threads like every other job (the GUI thread imports no torch) and
return CPU float32 arrays in [0, 1] ready to show.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from workbench.jobs import CancelToken, Job, Step

class TraceLock:
    """torch.fx tracing (layer tables, Φ_ℓ) patches ``nn.Module.__call__`` for the whole process
    while it runs, so no forward pass may run in another thread meanwhile.

    A readers-writer lock: tracing holds :meth:`write` (re-entrant in its thread); forward
    passes hold :meth:`read`. Traces are rare, since each Φ_ℓ is cached per model
    (:func:`cache_truncations`).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer: int | None = None
        self._depth = 0

    @contextmanager
    def write(self):
        me = threading.get_ident()
        with self._cond:
            if self._writer != me:
                self._cond.wait_for(lambda: self._writer is None and self._readers == 0)
                self._writer = me
            self._depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if self._depth == 0:
                    self._writer = None
                    self._cond.notify_all()

    @contextmanager
    def read(self):
        me = threading.get_ident()
        with self._cond:
            nested = self._writer == me
            if not nested:
                self._cond.wait_for(lambda: self._writer is None)
                self._readers += 1
        try:
            yield
        finally:
            if not nested:
                with self._cond:
                    self._readers -= 1
                    self._cond.notify_all()


TRACE_LOCK = TraceLock()


def cache_truncations(model) -> None:
    """Make ``model.truncate`` build each Φ_ℓ once, under the trace lock."""
    if getattr(model, "_truncations", None) is not None:
        return
    build = model.truncate
    cache: dict[str, object] = {}

    def truncate(name: str):
        key = model.layer(name).name
        if key not in cache:
            with TRACE_LOCK.write():
                cache[key] = build(key)
        return cache[key]

    model._truncations = cache
    model.truncate = truncate


def guarded(job: Job) -> Job:
    """Run a pre-image job holding the trace lock for writing while it builds Φ_ℓ (until its
    first Step), then for reading while it iterates."""
    with TRACE_LOCK.write():
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value
        while not isinstance(event, Step):
            yield event
            try:
                event = next(job)
            except StopIteration as stop:
                return stop.value
    with TRACE_LOCK.read():
        yield event
        return (yield from job)


def reference_image(spec: str, model) -> np.ndarray:
    """The reference as the model sees it: (H, W, C) in [0, 1] at the model's input size."""
    from workbench.data.images import load_image, load_sample, prepare_image

    if Path(spec).suffix and Path(spec).exists():
        image = load_image(spec)
    else:
        image, _ = load_sample(spec)
    c, h, w = model.input_size
    return prepare_image(image, c, (h, w))


def reference_job(spec: str, model, cancel: CancelToken):
    cancel.check()
    return reference_image(spec, model)
    yield  # a generator, like every job


def first_conv_filters(model) -> tuple[str, np.ndarray] | None:
    """The first convolution's filters as tiles (O, k, k, C): 0.5 + w / (2 max|w|) per filter."""
    import torch

    for name, module in model.module.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            w = module.weight.detach().float().cpu()
            if w.shape[1] not in (1, 3):
                w = w[:, :1]
            scale = w.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            tiles = (0.5 + w / (2 * scale)).permute(0, 2, 3, 1).numpy()
            return name, np.ascontiguousarray(tiles, dtype=np.float32)
    return None


def filters_job(model, cancel: CancelToken):
    cancel.check()
    return first_conv_filters(model)
    yield


def feature_maps(model, layer: str, reference: np.ndarray, limit: int = 256) -> np.ndarray | None:
    """Φ_layer(reference) as (C, H, W, 1) tiles, each channel scaled by its own range; None for vectors."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(reference)).permute(2, 0, 1)[None].float()
        mean = torch.tensor(model.mean).view(1, -1, 1, 1)
        std = torch.tensor(model.std).view(1, -1, 1, 1)
        device = next(model.module.parameters(), torch.empty(0)).device
        phi = model.truncate(layer)
        with TRACE_LOCK.read():
            code = phi.to(device)(((x - mean) / std).to(device))[0].cpu()
    if code.ndim != 3:
        return None
    code = code[:limit]
    lo = code.flatten(1).amin(1).view(-1, 1, 1)
    hi = code.flatten(1).amax(1).view(-1, 1, 1)
    maps = (code - lo) / (hi - lo).clamp_min(1e-12)
    return np.ascontiguousarray(maps[..., None].numpy(), dtype=np.float32)


def feature_maps_job(model, layer: str, reference: np.ndarray, cancel: CancelToken):
    cancel.check()
    return feature_maps(model, layer, reference)
    yield
