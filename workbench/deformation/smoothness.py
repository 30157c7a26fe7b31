"""Filter smoothness and smoothed initialization (Ruderman et al. 2018, sect. 4.1–4.2).

Normalized total variation of a conv weight W (out, in, h, w), sect. 4.1:

    TV(W) = Σ_{i,j} ‖W_{i,j,·,·} − W_{i+1,j,·,·}‖₁ + ‖W_{i,j,·,·} − W_{i,j+1,·,·}‖₁,   NTV = TV(W) / ‖W‖₁

with i, j the spatial indices. A spatially constant filter has NTV 0. For a fresh layer drawn
from a truncated normal with std 1/√n_in (footnote 2) the paper measured about 1.87 (footnote 1),
averaging the NTV of single resampled filters; a whole layer's NTV converges to 1.857 instead, as
the mean of a ratio of small sums lies above the ratio of the means (docs/deformation.md).

Initializations: ``truncnormal`` (footnote 2: std 1/√n_in, cut at ±2 std, zero biases),
``default`` (PyTorch's own reset, driven by the seeded generator) and ``gaussian:SIGMA``
(sect. 4.2: the truncated normal filters convolved with a Gaussian of std σ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from workbench.errors import UserError

#: Footnote 1: mean NTV of freshly initialized (truncated normal) layers, "approximately 1.87".
PAPER_INIT_NTV = 1.87


def total_variation(weight: torch.Tensor) -> torch.Tensor:
    """TV(W) of sect. 4.1 for a conv weight (out, in, h, w): L1 of vertical plus horizontal differences."""
    w = weight.detach().to(torch.float64)
    return (w[..., 1:, :] - w[..., :-1, :]).abs().sum() + (w[..., :, 1:] - w[..., :, :-1]).abs().sum()


def normalized_tv(weight: torch.Tensor) -> float:
    """TV(W) / ‖W‖₁ (sect. 4.1); 0 for an all-zero weight."""
    l1 = weight.detach().to(torch.float64).abs().sum()
    return float(total_variation(weight) / l1) if l1 > 0 else 0.0


def conv_layers(module: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Conv layers with a spatial extent (kernel larger than 1×1), in network order."""
    return [(n, m) for n, m in module.named_modules()
            if isinstance(m, nn.Conv2d) and m.weight.shape[-1] * m.weight.shape[-2] > 1]


@dataclass(frozen=True)
class LayerSmoothness:
    layer: str
    ntv: float
    shape: tuple[int, ...]


def filter_smoothness(module: nn.Module) -> list[LayerSmoothness]:
    """NTV of every conv layer of ``module`` (its effective weights where a layer masks them)."""
    out = []
    for name, conv in conv_layers(module):
        w = conv.weight
        mask = getattr(conv, "connection", None)
        if isinstance(mask, torch.Tensor):
            w = w * mask
        if not bool(torch.isfinite(w.detach()).all()):  # its NTV would read as a (perfectly smooth) number
            raise UserError(f"layer {name} holds NaN or infinite weights: its smoothness is not defined; "
                            f"check the weights")
        out.append(LayerSmoothness(name, normalized_tv(w), tuple(w.shape)))
    return out


def gaussian_kernel(sigma: float, dtype=torch.float64) -> torch.Tensor:
    """A normalized 2-D Gaussian of std ``sigma`` (pixels), radius ⌈3σ⌉, at least 3×3."""
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=dtype)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    k = g[:, None] * g[None, :]
    return k / k.sum()


def smooth_filters(weight: torch.Tensor, sigma: float) -> torch.Tensor:
    """Sect. 4.2: every h×w filter convolved with a Gaussian of std σ, same size (zero outside).

    The Gaussian is separable, so the zero-padded convolution restricted to the filter's support
    is G_h W G_wᵀ with G[a, i] = g(a − i), g the normalized 1-D Gaussian of :func:`gaussian_kernel`.
    """
    if sigma <= 0:
        return weight.clone()
    k = gaussian_kernel(sigma)
    r = k.shape[-1] // 2
    g = k.sum(dim=1)  # the 1-D factor, normalized
    h, w = weight.shape[-2:]

    def band(size: int) -> torch.Tensor:
        idx = torch.arange(size)
        offset = (idx[:, None] - idx[None, :]).clamp(-r, r) + r
        inside = (idx[:, None] - idx[None, :]).abs() <= r
        return torch.where(inside, g[offset], torch.zeros(()))

    gh, gw = band(h).to(weight.device), band(w).to(weight.device)
    smoothed = torch.einsum("ai,...ij,bj->...ab", gh, weight.detach().to(torch.float64), gw)
    return smoothed.to(weight.dtype)


def parse_init(spec: str) -> tuple[str, float]:
    """``truncnormal`` | ``default`` | ``gaussian:SIGMA`` → (scheme, sigma)."""
    if not isinstance(spec, str):
        raise UserError(f"init must be truncnormal, default or gaussian:SIGMA (a text), not {spec!r:.40}")
    if spec in ("truncnormal", "default"):
        return spec, 0.0
    if spec.startswith("gaussian:"):
        try:
            sigma = float(spec.split(":", 1)[1])
        except ValueError:
            sigma = -1.0
        if not sigma > 0 or not math.isfinite(sigma):
            raise UserError(f"bad init '{spec}': write gaussian:SIGMA with SIGMA a positive number, e.g. gaussian:1.0")
        return "gaussian", sigma
    raise UserError(f"unknown init '{spec}': use truncnormal, default or gaussian:SIGMA")


def _fan_in(weight: torch.Tensor) -> int:
    return int(weight[0].numel())


@torch.no_grad()
def initialize(module: nn.Module, spec: str = "truncnormal", seed: int = 0) -> nn.Module:
    """Re-initialize ``module`` in place from ``seed`` (see the module docstring); returns it."""
    scheme, sigma = parse_init(spec)
    g = torch.Generator().manual_seed(int(seed))
    for m in module.modules():
        weight = getattr(m, "weight", None)
        bias = getattr(m, "bias", None)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.reset_parameters()
            continue
        if not isinstance(m, (nn.Conv2d, nn.Linear)) or not isinstance(weight, torch.Tensor):
            if isinstance(weight, nn.Parameter) and hasattr(m, "reset_parameters") and not list(m.children()):
                m.reset_parameters()
            continue
        w = torch.empty(weight.shape, dtype=torch.float32)
        fan_in = _fan_in(weight)
        if scheme == "default":
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)
            b = torch.empty(bias.shape).uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=g) \
                if bias is not None else None
        else:
            std = 1.0 / math.sqrt(fan_in)
            nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std, generator=g)
            if scheme == "gaussian" and w.ndim == 4 and w.shape[-1] * w.shape[-2] > 1:
                w = smooth_filters(w, sigma)
            b = torch.zeros(bias.shape) if bias is not None else None
        weight.copy_(w.to(weight.device, weight.dtype))
        if bias is not None and b is not None:
            bias.copy_(b.to(bias.device, bias.dtype))
    return module
