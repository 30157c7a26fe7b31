"""Losses ℓ(Φ(x), Φ0) of Mahendran & Vedaldi (IJCV 2016, sect. 3.1), one value per image."""

from __future__ import annotations

import torch


def inversion_loss(phi: torch.Tensor, phi0: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised Euclidean loss, eq. 2, or with a binary mask M, eq. 3:
    ‖(Φ(x) − Φ0) ⊙ M‖² / ‖Φ0 ⊙ M‖²."""
    diff = phi - phi0
    ref = phi0.expand_as(phi)
    if mask is not None:
        diff = diff * mask
        ref = ref * mask
    dims = tuple(range(1, phi.dim()))
    return diff.pow(2).sum(dim=dims) / ref.pow(2).sum(dim=dims).clamp_min(1e-12)


def inner_product_loss(phi: torch.Tensor, phi0: torch.Tensor, Z: float) -> torch.Tensor:
    """Activation maximisation and caricature, eq. 4: −⟨Φ(x), Φ0⟩ / Z."""
    dims = tuple(range(1, phi.dim()))
    return -(phi * phi0).sum(dim=dims) / Z


def spatial_window_mask(shape: tuple[int, ...], window: int) -> torch.Tensor:
    """A mask selecting the central ``window`` × ``window`` positions of a (C, H, W) code (Fig. 13)."""
    mask = torch.zeros(shape)
    h, w = shape[-2:]
    k_h, k_w = min(window, h), min(window, w)
    top, left = (h - k_h) // 2, (w - k_w) // 2
    mask[..., top:top + k_h, left:left + k_w] = 1.0
    return mask


def channel_mask(shape: tuple[int, ...], channels: tuple[int, ...]) -> torch.Tensor:
    """A mask selecting a subset of feature channels (Fig. 14)."""
    mask = torch.zeros(shape)
    mask[list(channels)] = 1.0
    return mask
