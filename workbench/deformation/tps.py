"""Random smooth deformations (Ruderman et al. 2018, sect. 2.1 and Fig. 2).

An n×n grid of evenly spaced control points (corners included); each point gets a random
displacement drawn uniformly from [-d, d] in x and in y. Thin-plate-spline interpolation
(Duchon 1977; kernel U(r) = r² log r plus an affine part) turns the control displacements
u_k into a dense field u(p), and the deformed image is sampled bilinearly:

    τ(x)(p) = x(p + u(p))

i.e. the value at the tip of each arrow is read around its tail (Fig. 2c). Points are in pixel
coordinates (x = column, y = row, 0 … W-1). The map from control displacements to the dense
field is linear, so it is solved once per (grid, image size) in float64 and then applied to a
whole batch as one matrix product on any device.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from workbench.errors import UserError


@dataclass(frozen=True)
class DeformationPreset:
    grid: int
    max_disp: float
    description: str


#: Sect. 2.1: "5x5 ... maximum distance of 10" for ImageNet, "3x3 ... 2 pixels" for CIFAR10.
PRESETS = {
    "imagenet": DeformationPreset(5, 10.0, "ImageNet-size images (224 px): 5×5 control points, ±10 px"),
    "cifar": DeformationPreset(3, 2.0, "CIFAR-size images (32 px): 3×3 control points, ±2 px"),
}


def control_points(grid: int, height: int, width: int) -> torch.Tensor:
    """(grid², 2) float64 pixel coordinates (x, y), row-major, corners included."""
    if grid < 2:
        raise UserError(f"grid must be at least 2 control points per side, got {grid}")
    ys = torch.linspace(0.0, height - 1.0, grid, dtype=torch.float64)
    xs = torch.linspace(0.0, width - 1.0, grid, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def tps_kernel(r: torch.Tensor) -> torch.Tensor:
    """U(r) = r² log r, with U(0) = 0."""
    return torch.where(r > 0, r * r * torch.log(r.clamp_min(1e-300)), torch.zeros_like(r))


def tps_matrix(centers: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """The linear map (Q, K) from values at ``centers`` (K, 2) to the TPS interpolant at ``queries``.

    Solves [[A, P], [Pᵀ, 0]] [w; a] = [v; 0] with A_kl = U(|c_k - c_l|), P = [1, x, y]; the
    interpolant is f(q) = Σ_k w_k U(|q - c_k|) + a_0 + a_1 q_x + a_2 q_y. float64 throughout.
    """
    centers = centers.to(torch.float64)
    queries = queries.to(torch.float64)
    k = centers.shape[0]
    a = tps_kernel(torch.cdist(centers, centers))
    p = torch.cat([torch.ones(k, 1, dtype=torch.float64), centers], dim=1)
    system = torch.zeros(k + 3, k + 3, dtype=torch.float64)
    system[:k, :k] = a
    system[:k, k:] = p
    system[k:, :k] = p.T
    rhs = torch.zeros(k + 3, k, dtype=torch.float64)
    rhs[:k] = torch.eye(k, dtype=torch.float64)
    coeffs = torch.linalg.solve(system, rhs)  # (K+3, K): [w; a] per unit control value
    basis = torch.cat([tps_kernel(torch.cdist(queries, centers)),
                       torch.ones(queries.shape[0], 1, dtype=torch.float64), queries], dim=1)
    return basis @ coeffs


@lru_cache(maxsize=16)
def _dense_map(grid: int, height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)
    return tps_matrix(control_points(grid, height, width), pixels)


def random_displacements(batch: int, grid: int, max_disp: float, generator: torch.Generator,
                         device: str | torch.device = "cpu") -> torch.Tensor:
    """(batch, grid², 2) control-point displacements, uniform in [-max_disp, max_disp] per axis.

    Drawn on the CPU from ``generator`` so the same seed gives the same deformations on every device.
    """
    if max_disp < 0:
        raise UserError(f"maximum displacement must be >= 0 pixels, got {max_disp}")
    u = torch.rand((batch, grid * grid, 2), generator=generator, dtype=torch.float32)
    return ((2.0 * u - 1.0) * max_disp).to(device)


def displacement_field(displacements: torch.Tensor, grid: int, height: int, width: int) -> torch.Tensor:
    """Dense TPS field (B, H, W, 2) in pixels (x, y) from control displacements (B, grid², 2)."""
    m = _dense_map(grid, height, width).to(device=displacements.device, dtype=displacements.dtype)
    b, k, _ = displacements.shape
    dense = m @ displacements.permute(1, 0, 2).reshape(k, b * 2)  # (H·W, B·2)
    return dense.reshape(height, width, b, 2).permute(2, 0, 1, 3).contiguous()


def warp(images: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """τ(x)(p) = x(p + u(p)), bilinear, border values outside; images (B, C, H, W), field (B, H, W, 2)."""
    b, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=images.device, dtype=field.dtype),
                            torch.arange(w, device=images.device, dtype=field.dtype), indexing="ij")
    sx = xs + field[..., 0]
    sy = ys + field[..., 1]
    grid = torch.stack([2.0 * sx / max(w - 1, 1) - 1.0, 2.0 * sy / max(h - 1, 1) - 1.0], dim=-1)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def deform(images: torch.Tensor, displacements: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the TPS deformations given by control displacements; returns (deformed, field)."""
    _, _, h, w = images.shape
    field = displacement_field(displacements.to(images.device, images.dtype), grid, h, w)
    return warp(images, field), field


def random_deform(images: torch.Tensor, grid: int, max_disp: float,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fresh random deformation per image (sect. 2.1); returns (deformed, field, displacements)."""
    u = random_displacements(images.shape[0], grid, max_disp, generator, images.device)
    deformed, field = deform(images, u, grid)
    return deformed, field, u
