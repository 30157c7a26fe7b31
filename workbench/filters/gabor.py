"""How wavelet-like are a network's filters? Each filter fitted with its nearest Gabor atom.

The lecture (after IJCV Fig. 16 and Lee et al.): "the initial filters are similar to Gabor/Wavelet
filters and later layers are image components". A Gabor atom on a k×k support is

    g(u, v) = exp(−(u'² + v'²) / 2s²) · cos(2π u' / λ + ψ),   u' = (u − u₀) cos θ + (v − v₀) sin θ,
                                                              v' = −(u − u₀) sin θ + (v − v₀) cos θ

(orientation θ, wavelength λ, envelope width s, phase ψ, centre (u₀, v₀)). For each (θ, λ, s, centre)
of a grid the even (ψ = 0) and odd (ψ = π/2) atoms span a plane; a filter's best phase is its
projection on that plane. The **fit** of a 2-D filter f is the fraction of its energy the nearest
atom explains,

    fit(f) = max over the grid of ‖P f‖² / ‖f‖²   ∈ [0, 1],

1 for a Gabor atom on the grid, near 1 between grid points (the grid's resolution), and for a
multi-channel filter (out, in, k, k) the energy-weighted mean over its input channels
Σ_c ‖P_c f_c‖² / Σ_c ‖f_c‖² (each channel its own atom). The level that says "no more Gabor-like
than chance" is the mean fit of i.i.d. Gaussian filters of the same size (:func:`random_level`): on a
small support many atoms fit noise (a 3×3 filter has 9 numbers), so a layer's fit means something
only above that level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn

from workbench.errors import UserError

#: The atom grid: orientations over [0, π), wavelengths from 2 px to twice the support (geometric),
#: envelope widths as fractions of the wavelength, and at most CENTRES² centres over the support.
ORIENTATIONS = 12
WAVELENGTHS = 8
WIDTHS = (0.25, 0.4, 0.6, 0.9)
CENTRES = 7
#: At most this many filter slices of a layer are fitted (a seeded sample beyond it).
MAX_SLICES = 4096
RANDOM_FILTERS = 512


@dataclass(frozen=True)
class Atom:
    theta: float        # orientation (radians)
    wavelength: float   # pixels
    width: float        # envelope std (pixels)
    centre: tuple[float, float]  # (row, column) in the filter's pixel grid
    phase: float = 0.0  # radians

    def draw(self, size: int) -> np.ndarray:
        return gabor_atom(size, self.theta, self.wavelength, self.width, self.centre, self.phase)


def gabor_atom(size: int, theta: float, wavelength: float, width: float, centre=None, phase: float = 0.0) -> np.ndarray:
    """The Gabor function of the module docstring on a size×size grid (not normalised)."""
    c = ((size - 1) / 2.0, (size - 1) / 2.0) if centre is None else centre
    v, u = np.meshgrid(np.arange(size, dtype=np.float64) - c[1], np.arange(size, dtype=np.float64) - c[0])
    up = u * math.cos(theta) + v * math.sin(theta)
    vp = -u * math.sin(theta) + v * math.cos(theta)
    return np.exp(-(up ** 2 + vp ** 2) / (2.0 * width ** 2)) * np.cos(2.0 * math.pi * up / wavelength + phase)


@lru_cache(maxsize=16)
def _dictionary(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B1, B2, params): orthonormal bases (P, k²) of each atom pair's plane (B2 zero where the odd
    atom vanishes) and each pair's (θ, λ, s, row, column) as a (P, 5) array."""
    thetas = np.arange(ORIENTATIONS) * math.pi / ORIENTATIONS
    wavelengths = np.geomspace(2.0, max(2.0 * size, 4.0), WAVELENGTHS)
    n = min(size, CENTRES)
    centres = np.linspace(0.0, size - 1.0, n) if n > 1 else np.array([(size - 1) / 2.0])
    lam, frac, th, cy, cx = (a.ravel() for a in np.meshgrid(wavelengths, WIDTHS, thetas, centres, centres,
                                                            indexing="ij"))
    s = np.maximum(frac * lam, 0.5)
    grid = np.arange(size, dtype=np.float64)
    u = grid[None, :, None] - cy[:, None, None]
    v = grid[None, None, :] - cx[:, None, None]
    cos, sin = np.cos(th)[:, None, None], np.sin(th)[:, None, None]
    up, vp = u * cos + v * sin, -u * sin + v * cos
    envelope = np.exp(-(up ** 2 + vp ** 2) / (2.0 * s[:, None, None] ** 2))
    phase = 2.0 * math.pi * up / lam[:, None, None]
    even = (envelope * np.cos(phase)).reshape(len(lam), -1)
    odd = (envelope * -np.sin(phase)).reshape(len(lam), -1)   # cos(x + π/2) = −sin x
    ne = np.linalg.norm(even, axis=1)
    ok = ne > 1e-9
    e = even[ok] / ne[ok, None]
    o = odd[ok] - (odd[ok] * e).sum(1, keepdims=True) * e       # Gram–Schmidt: the plane's second axis
    no = np.linalg.norm(o, axis=1)
    o = np.where(no[:, None] > 1e-9, o / np.where(no > 1e-9, no, 1.0)[:, None], 0.0)
    params = np.stack([th, lam, s, cy, cx], 1)[ok]
    return e, o, params


@dataclass(frozen=True)
class FitResult:
    """Per slice: ``fit`` in [0, 1], ``energy`` ‖f‖², ``atom`` the nearest atom (its phase included)."""
    fit: np.ndarray
    energy: np.ndarray
    atoms: list[Atom]


def fit_slices(filters: np.ndarray | torch.Tensor, chunk: int = 512) -> FitResult:
    """Fit each 2-D filter of ``filters`` (N, k, k) with its nearest Gabor atom (module docstring)."""
    f = np.asarray(filters.detach().cpu().double() if isinstance(filters, torch.Tensor) else filters, dtype=np.float64)
    if f.ndim != 3 or f.shape[1] != f.shape[2]:
        raise UserError(f"Gabor fit needs square 2-D filters (N, k, k), not an array of shape {tuple(f.shape)}")
    if not np.isfinite(f).all():
        raise UserError("the filters hold NaN or infinite values: their Gabor fit is not defined; check the weights")
    k = f.shape[1]
    b1, b2, params = _dictionary(k)
    flat = f.reshape(len(f), -1)
    energy = (flat ** 2).sum(1)
    fits = np.zeros(len(f))
    atoms: list[Atom] = []
    for i in range(0, len(flat), chunk):
        x = flat[i:i + chunk]
        p1, p2 = x @ b1.T, x @ b2.T
        explained = p1 ** 2 + p2 ** 2
        best = explained.argmax(1)
        rows = np.arange(len(x))
        e = energy[i:i + chunk]
        fits[i:i + chunk] = np.where(e > 0, explained[rows, best] / np.where(e > 0, e, 1.0), 0.0)
        for r, j in zip(rows, best):
            th, lam, s, cy, cx = params[j]
            c = (float(cy), float(cx))
            # the projection A·env·cos(·+ψ) = A cos ψ·even + A sin ψ·odd: ψ read from its coefficients
            atom = p1[r, j] * b1[j] + p2[r, j] * b2[j]
            even, odd = gabor_atom(k, th, lam, s, c, 0.0).ravel(), gabor_atom(k, th, lam, s, c, math.pi / 2).ravel()
            ce, co = np.linalg.lstsq(np.stack([even, odd], 1), atom, rcond=None)[0]
            atoms.append(Atom(float(th), float(lam), float(s), c, float(math.atan2(co, ce))))
    return FitResult(fits, energy, atoms)


def filter_fit(weight: torch.Tensor | np.ndarray) -> tuple[np.ndarray, FitResult]:
    """Per filter of a conv weight (out, in, k, k): the energy-weighted fit over its input channels,
    and the per-slice result (slices in (out, in) order)."""
    w = np.asarray(weight.detach().cpu().double() if isinstance(weight, torch.Tensor) else weight)
    if w.ndim != 4:
        raise UserError(f"a conv weight is (out, in, k, k), not shape {tuple(w.shape)}")
    res = fit_slices(w.reshape(-1, *w.shape[-2:]))
    explained = (res.fit * res.energy).reshape(w.shape[:2]).sum(1)
    total = res.energy.reshape(w.shape[:2]).sum(1)
    return np.where(total > 0, explained / np.where(total > 0, total, 1.0), 0.0), res


@lru_cache(maxsize=32)
def random_level(size: int, n: int = RANDOM_FILTERS, seed: int = 0) -> tuple[float, float]:
    """(mean, std) fit of ``n`` i.i.d. Gaussian size×size filters: the level of chance."""
    g = np.random.default_rng(seed)
    fits = fit_slices(g.standard_normal((n, size, size))).fit
    return float(fits.mean()), float(fits.std())


def layer_fits(module: nn.Module, max_slices: int = MAX_SLICES, seed: int = 0) -> list[dict]:
    """For every conv layer with a spatial kernel (square): the mean and std of its slices' fits, the
    chance level for its size, how many slices were fitted (a seeded sample of ``max_slices`` at
    most) and, for the first layer, every filter's fit and atom."""
    from workbench.deformation.smoothness import conv_layers

    rows = []
    for index, (name, conv) in enumerate(conv_layers(module)):
        w = conv.weight.detach().cpu().double()
        mask = getattr(conv, "connection", None)
        if isinstance(mask, torch.Tensor):
            w = w * mask.cpu().double()
        if w.shape[-1] != w.shape[-2]:
            continue
        slices = w.reshape(-1, *w.shape[-2:])
        keep = slices.flatten(1).abs().sum(1) > 0  # masked-out (partial) connections are not filters
        slices = slices[keep]
        sampled = len(slices) > max_slices
        if sampled:
            idx = np.sort(np.random.default_rng(seed).choice(len(slices), max_slices, replace=False))
            slices = slices[torch.from_numpy(idx)]
        res = fit_slices(slices)
        weights = res.energy / res.energy.sum() if res.energy.sum() > 0 else np.full(len(res.fit), 1 / len(res.fit))
        level, level_std = random_level(int(w.shape[-1]), seed=seed)
        row = {"layer": name, "kernel": int(w.shape[-1]), "slices": int(len(slices)), "sampled": bool(sampled),
               "mean_fit": float(res.fit.mean()), "std_fit": float(res.fit.std()),
               "energy_weighted_fit": float((weights * res.fit).sum()),
               "random_fit": level, "random_std": level_std}
        if index == 0:
            per_filter, full = filter_fit(w)
            row["filters"] = [{"filter": o, "fit": float(per_filter[o]),
                               "atoms": [_atom_dict(full.atoms[o * w.shape[1] + c]) for c in range(w.shape[1])]}
                              for o in range(w.shape[0])]
        rows.append(row)
    if not rows:
        raise UserError("this model has no convolution layer with a square spatial kernel to fit")
    return rows


def _atom_dict(a: Atom) -> dict:
    return {"theta_deg": round(math.degrees(a.theta), 2), "wavelength": round(a.wavelength, 3),
            "width": round(a.width, 3), "centre": [round(a.centre[0], 2), round(a.centre[1], 2)],
            "phase_deg": round(math.degrees(a.phase), 1)}
