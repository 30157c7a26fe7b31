"""The natural-image prior of Mahendran & Vedaldi (IJCV 2016, sect. 3.2).

Images ``x`` are batches (N, D, H, W) in the paper's units: mean-subtracted pixels on a
0–255 scale. Each regulariser returns one value per image, shape (N,), so restarts solved
as one batch stay independent.
"""

from __future__ import annotations

import torch


def alpha_norm(x: torch.Tensor, alpha: float = 6.0, B: float = 80.0) -> torch.Tensor:
    """Bounded range N_α (eq. 5): (1 / HWB^α) Σ_uv (Σ_k x(v,u,k)²)^(α/2), isotropic in RGB."""
    h, w = x.shape[-2:]
    pixel_sq = x.pow(2).sum(dim=1)
    return pixel_sq.pow(alpha / 2).sum(dim=(1, 2)) / (h * w * B ** alpha)


def tv_beta(x: torch.Tensor, beta: float = 2.0, V: float = 80.0 / 6.5) -> torch.Tensor:
    """Bounded variation R_TV^β (sect. 3.2.2): (1 / HWV^β) Σ_uvk (Δ_u² + Δ_v²)^(β/2)."""
    h, w = x.shape[-2:]
    # Forward differences, zero past the last column / row, so every pixel is in some term; cropping
    # both to (H−1)×(W−1) left the corner pixel (H−1, W−1) out of the prior, free to drift.
    d_u = torch.nn.functional.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))
    d_v = torch.nn.functional.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    grad_sq = d_u.pow(2) + d_v.pow(2)
    if beta != 2.0:  # (·)^(β/2) has an infinite slope at 0 for β < 2
        grad_sq = grad_sq + 1e-8
    return grad_sq.pow(beta / 2).sum(dim=(1, 2, 3)) / (h * w * V ** beta)


def project_bounded_range(x: torch.Tensor, B_plus: float) -> torch.Tensor:
    """Projection onto the hard bound of eq. 6: every pixel's colour vector has norm ≤ B+."""
    norm = x.pow(2).sum(dim=1, keepdim=True).sqrt()
    return x * (B_plus / norm.clamp_min(B_plus))


def jitter(x: torch.Tensor, T: int, offsets: torch.Tensor) -> torch.Tensor:
    """jitter(x; τ) of eq. 7: the (H−T+1) × (W−T+1) window of ``x`` at offset τ = (τ1, τ2).

    ``offsets`` is an integer tensor (N, 2) with τ ∈ {0, …, T−1}², one per image.
    """
    if T <= 1:
        return x
    h, w = x.shape[-2] - T + 1, x.shape[-1] - T + 1
    if offsets.shape[0] == 1 or bool((offsets == offsets[0]).all()):
        t1, t2 = (int(v) for v in offsets[0])
        return x[..., t2:t2 + h, t1:t1 + w]
    return torch.stack([x[k, :, int(t2):int(t2) + h, int(t1):int(t1) + w] for k, (t1, t2) in enumerate(offsets.tolist())])
