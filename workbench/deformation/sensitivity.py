"""Normalized cosine distance per layer (Ruderman et al. 2018, sect. 2.1).

For a representation r (the output of one layer) and random deformations τ,

    NCD(r) = mean_x dcos(r(x), r(τ(x))) / median_{x≠y} dcos(r(x), r(y))

with dcos(a, b) = 1 - <a, b> / (|a| |b|), the mean over the N images of the sample (paper:
128) and the median over all pairs of distinct images of the same sample. Layer 0 is the
network's (normalized) input. Each repeat draws new deformations from its own seed; the
pairwise median depends only on the images and is computed once. All requested layers come
from one forward pass per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generator

import numpy as np
import torch
import torch.nn as nn

from workbench.deformation.features import layer_extractor
from workbench.deformation.tps import random_deform
from workbench.errors import UserError
from workbench.jobs import Cancelled, CancelToken, Step

#: Representations kept on the CPU for the pairwise median; more than this is refused.
MAX_REPRESENTATION_BYTES = 3 * 2**30


def unit_rows(r: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Flatten each sample to a vector and scale it to unit length (zero vectors stay zero)."""
    flat = r.reshape(r.shape[0], -1).to(torch.float32)
    return flat / flat.norm(dim=1, keepdim=True).clamp_min(eps)


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dcos per row of two (N, ...) batches."""
    return 1.0 - (unit_rows(a) * unit_rows(b)).sum(dim=1)


def pairwise_median(units: torch.Tensor) -> float:
    """median of dcos over all pairs i < j of unit rows (N, D)."""
    n = units.shape[0]
    if n < 2:
        raise UserError("the normalized cosine distance needs at least 2 images: raise --n")
    gram = units.to(torch.float64) @ units.to(torch.float64).T
    i, j = torch.triu_indices(n, n, offset=1)
    return float(torch.median(1.0 - gram[i, j]).item()) if n > 2 else float(1.0 - gram[0, 1])


def normalized_cosine_distance(r_x: torch.Tensor, r_tx: torch.Tensor, reference: torch.Tensor | None = None) -> float:
    """NCD of one layer: mean dcos(r(x), r(τx)) / median pairwise dcos over ``reference`` (default r_x)."""
    ref = unit_rows(r_x if reference is None else reference)
    med = pairwise_median(ref)
    return float(cosine_distance(r_x, r_tx).mean().item()) / med if med > 0 else float("nan")


@dataclass
class SensitivityResult:
    """``values[s, l]``: NCD of layer ``layers[l]`` under the deformations of seed ``seeds[s]``."""

    layers: list[str]
    seeds: list[int]
    values: np.ndarray
    median_distance: np.ndarray
    complete: bool = True
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def mean(self) -> np.ndarray:
        return np.nanmean(self.values, axis=0) if len(self.values) else np.full(len(self.layers), np.nan)

    @property
    def std(self) -> np.ndarray:
        """Sample standard deviation across repeats (0 for a single repeat)."""
        if len(self.values) < 2:
            return np.zeros(len(self.layers))
        return np.nanstd(self.values, axis=0, ddof=1)

    def table(self) -> list[dict]:
        return [{"layer": n, "mean": _num(m), "std": _num(s)} for n, m, s in zip(self.layers, self.mean, self.std)]


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def deformation_sensitivity(module: nn.Module, images: torch.Tensor, layers: list[str], *,
                            mean: tuple[float, ...], std: tuple[float, ...], grid: int = 3, max_disp: float = 2.0,
                            seeds: list[int] | tuple[int, ...] = (0, 1, 2), batch_size: int = 64,
                            device: str | torch.device = "cpu", cancel: CancelToken | None = None,
                            ) -> Generator[Step, None, SensitivityResult]:
    """Per-layer NCD of ``module`` for ``images`` (N, C, H, W) in [0, 1], one repeat per seed.

    Yields a :class:`Step` per batch. When ``cancel`` is set it stops between batches and returns
    the repeats finished so far with ``complete=False``.
    """
    cancel = cancel or CancelToken()
    device = torch.device(device)
    if images.ndim != 4:
        raise UserError(f"images must be a batch (N, C, H, W), got shape {tuple(images.shape)}")
    n = images.shape[0]
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    seeds = list(seeds)
    batches = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    total = len(batches) * (1 + len(seeds))
    step = 0
    module = module.to(device).eval()
    medians = np.full(len(layers), np.nan)
    values = np.zeros((0, len(layers)))
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with torch.no_grad(), layer_extractor(module, layers) as extract:
            originals: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
            held = 0
            for a, b in batches:
                cancel.check()
                x = images[a:b].to(device, torch.float32)
                out = extract((x - m) / s)
                for name in layers:
                    shapes[name] = tuple(out[name].shape[1:])
                    u = unit_rows(out[name]).cpu()
                    held += u.numel() * 4
                    originals[name].append(u)
                if held > MAX_REPRESENTATION_BYTES:
                    raise UserError(f"the representations of {n} images need more than "
                                    f"{MAX_REPRESENTATION_BYTES // 2**30} GiB: lower --n or pick fewer layers")
                step += 1
                yield Step(step, total, stage="reference")
            units = {name: torch.cat(v) for name, v in originals.items()}
            del originals
            medians = np.array([pairwise_median(units[name]) for name in layers])
            for k, seed in enumerate(seeds):
                g = torch.Generator().manual_seed(int(seed))
                sums = np.zeros(len(layers))
                for a, b in batches:
                    cancel.check()
                    x = images[a:b].to(device, torch.float32)
                    xt, _, _ = random_deform(x, grid, max_disp, g)
                    out = extract((xt - m) / s)
                    for li, name in enumerate(layers):
                        ref = units[name][a:b].to(device)
                        sums[li] += float((1.0 - (ref * unit_rows(out[name])).sum(dim=1)).sum().item())
                    step += 1
                    yield Step(step, total, {"seed": float(seed)}, stage=f"repeat {k + 1}/{len(seeds)}")
                with np.errstate(divide="ignore", invalid="ignore"):
                    row = np.where(medians > 0, (sums / n) / np.where(medians > 0, medians, 1.0), np.nan)
                values = np.vstack([values, row[None]])
    except (Cancelled, KeyboardInterrupt):  # Ctrl+C in the CLI stops like a cancel
        return SensitivityResult(list(layers), seeds[:len(values)], values, medians, False, shapes)
    return SensitivityResult(list(layers), seeds, values, medians, True, shapes)
