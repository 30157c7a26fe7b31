"""Natural image statistics of a pre-image (Mahendran & Vedaldi, IJCV 2016, sect. 5.2.3, Fig. 7).

"Natural images are well known to have certain statistical regularities; for example, the magnitude of
image gradients have an exponential distribution [...] we compute the histogram of gradient magnitudes
for the [...] reference images [...] and for their AlexNet inversions [...]. Then the original and
reconstructed histograms are compared using histogram intersection" (sect. 5.2.3). Fig. 7 plots the mean
similarity per layer and C with 95 % confidence intervals of the mean.

The paper gives neither the gradient operator nor the bins. Ours, chosen once and used everywhere:

- the gradient is the forward difference the TV prior uses (sect. 3.2.2), and its magnitude at a pixel
  is isotropic in colour, ‖∇x(u, v)‖ = (Σ_k Δ_u² + Δ_v²)^½, on pixels in [0, 1];
- :data:`HIST_BINS` = 64 equal bins over [0, :data:`HIST_TOP`] = [0, 0.5] (bins two grey levels wide on a
  0–255 scale); a larger magnitude counts in the last bin, so every pixel is counted;
- each histogram is normalised to sum 1, and the intersection Σ_b min(h_b, g_b) lies in [0, 1]: 1 for
  identical histograms, 0 for disjoint ones (Swain & Ballard 1991).

Fixed bins in pixel units make two images' histograms comparable whatever their contrast: an
adaptive range (to the larger of the two maxima) would let one noisy pixel of a pre-image squeeze the
reference's histogram into the first bin.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

HIST_BINS = 64
HIST_TOP = 0.5
#: Fig. 7's error bars: the 95 % confidence interval of the mean.
CONFIDENCE = 0.95


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """‖∇x‖ at every pixel of ``image`` (H, W, C) or (H, W), forward differences (zero past the last
    row and column, as in :func:`workbench.preimage.regularizers.tv_beta`), isotropic in colour."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    d_u = np.zeros_like(x)
    d_v = np.zeros_like(x)
    d_u[:, :-1] = x[:, 1:] - x[:, :-1]
    d_v[:-1] = x[1:] - x[:-1]
    return np.sqrt((d_u ** 2 + d_v ** 2).sum(axis=-1))


def gradient_histogram(image: np.ndarray, bins: int = HIST_BINS, top: float = HIST_TOP) -> np.ndarray:
    """The normalised histogram of ``image``'s gradient magnitudes: ``bins`` equal bins over [0, top],
    larger magnitudes in the last bin. Sums to 1."""
    g = np.minimum(gradient_magnitude(image).ravel(), top)
    h, _ = np.histogram(g, bins=bins, range=(0.0, top))
    return h / max(h.sum(), 1)


def histogram_intersection(h: np.ndarray, g: np.ndarray) -> float:
    """Σ_b min(h_b, g_b) of two histograms, each normalised to sum 1 first: in [0, 1]."""
    h = np.asarray(h, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    if h.shape != g.shape:
        raise ValueError(f"histograms of {h.shape} and {g.shape} bins cannot be intersected")
    return float(np.minimum(h / h.sum(), g / g.sum()).sum())


def gradient_histogram_intersection(images: np.ndarray, reference: np.ndarray) -> list[float]:
    """Fig. 7's similarity of each pre-image in ``images`` (K, H, W, C) to ``reference`` (H, W, C), pixels
    in [0, 1]: the intersection of their gradient-magnitude histograms."""
    h0 = gradient_histogram(reference)
    return [histogram_intersection(gradient_histogram(x), h0) for x in images]


def mean_confidence_interval(values: Sequence[float], level: float = CONFIDENCE) -> tuple[float, float]:
    """(mean, half-width of its ``level`` confidence interval): Student's t with n − 1 degrees of
    freedom times the standard error; the half-width is NaN for fewer than two values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    if v.size < 2:
        return float(v.mean()), math.nan
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return float(v.mean()), half
