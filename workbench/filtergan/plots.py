"""Figures of the filter-GAN drawn with numpy and PIL (no Qt, no matplotlib)."""

from __future__ import annotations

import colorsys

import numpy as np


def filter_image(weight: np.ndarray) -> np.ndarray:
    """One filter (C_in, k, k) as a (k, k, 3) image in [0, 1].

    As in the paper's Figure 2, input channels are summed in thirds; the three sums become
    the red, green and blue channels (a one-channel filter is grey). 0.5 is zero.
    """
    w = np.asarray(weight, dtype=np.float32)
    c = w.shape[0]
    if c < 3:
        rgb = np.repeat(w.sum(0, keepdims=True), 3, axis=0)
    else:
        rgb = np.stack([part.sum(0) for part in np.array_split(w, 3, axis=0)])
    scale = float(np.abs(rgb).max()) or 1.0
    return np.ascontiguousarray((0.5 + 0.5 * rgb / scale).transpose(1, 2, 0))


def filter_sheet(rows: list[np.ndarray], channels: int = 16, cell: int = 18, gap: int = 2) -> np.ndarray:
    """Rows of filter sets (C_out, C_in, k, k) → an (H, W, 3) float image; one filter per cell.

    Every filter is scaled by the largest |value| of its column over all rows, so a column
    compares one output channel across filter sets.
    """
    sets = [np.asarray(r, dtype=np.float32)[:channels] for r in rows]
    n_cols = sets[0].shape[0]
    k = sets[0].shape[-1]
    rep = max(1, cell // k)
    size = k * rep
    out = np.ones((len(sets) * (size + gap) + gap, n_cols * (size + gap) + gap, 3), np.float32)
    for col in range(n_cols):
        thirds = [_thirds(s[col]) for s in sets]
        scale = max(float(np.abs(t).max()) for t in thirds) or 1.0
        for row, t in enumerate(thirds):
            img = (0.5 + 0.5 * t / scale).transpose(1, 2, 0)
            img = np.kron(img, np.ones((rep, rep, 1), np.float32))
            y, x = gap + row * (size + gap), gap + col * (size + gap)
            out[y:y + size, x:x + size] = img
    return out


def _thirds(w: np.ndarray) -> np.ndarray:
    if w.shape[0] < 3:
        return np.repeat(w.sum(0, keepdims=True), 3, axis=0)
    return np.stack([part.sum(0) for part in np.array_split(w, 3, axis=0)])


def palette(n: int) -> np.ndarray:
    """n distinguishable colours (n, 3) uint8, golden-ratio hues at two lightness levels."""
    out = []
    for i in range(n):
        h = (i * 0.618033988749895) % 1.0
        light = 0.45 if i % 2 else 0.6
        out.append(colorsys.hls_to_rgb(h, light, 0.85))
    return (np.asarray(out) * 255).astype(np.uint8)


def mds_plot(coords: np.ndarray, real_index: np.ndarray, is_real: np.ndarray, *, title: str = "",
             size: int = 900) -> np.ndarray:
    """Scatter of MDS coordinates: generated filters as small dots coloured by their real
    filter, real filters as large outlined discs of the same colour. Returns (H, W, 3) uint8."""
    from PIL import Image, ImageDraw

    from workbench.export.grid import font

    coords = np.asarray(coords, dtype=np.float64)
    n_real = int(real_index.max()) + 1
    colours = palette(n_real)
    margin, top = 40, 50 if title else 20
    img = Image.new("RGB", (size, size + top - 20), "white")
    draw = ImageDraw.Draw(img)
    lo, hi = coords.min(0), coords.max(0)
    span = float((hi - lo).max()) or 1.0
    inner = size - 2 * margin

    def xy(p: np.ndarray) -> tuple[float, float]:
        q = (p - lo) / span * inner
        return margin + q[0], top + q[1]

    for p, j in zip(coords[~is_real], real_index[~is_real]):
        x, y = xy(p)
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=tuple(int(v) for v in colours[j]))
    for p, j in zip(coords[is_real], real_index[is_real]):
        x, y = xy(p)
        draw.ellipse([x - 6, y - 6, x + 6, y + 6], fill=tuple(int(v) for v in colours[j]), outline=(0, 0, 0), width=2)
    if title:
        draw.text((margin, 12), title, fill=(0, 0, 0), font=font(16))
    draw.text((margin, size + top - 20 - margin + 10),
              "large outlined discs: real filters; dots: generated filters, coloured by their real filter",
              fill=(60, 60, 60), font=font(13))
    return np.asarray(img)
