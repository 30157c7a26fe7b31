"""Small line plots and displacement-field drawings, rendered with PIL (no Qt, no matplotlib).

:func:`line_plot` draws one line per :class:`Series` with an optional shaded band (the
papers' mean ± 2 std), categorical x labels (layer names, rotated), a legend and dotted
reference lines. :func:`draw_displacement` draws arrows from a dense field over an image.
Every function returns an RGB uint8 array (H, W, 3) ready for :func:`workbench.runs.save_png`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: A colour cycle readable on white, light to dark pairs avoided.
PALETTE = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


@dataclass
class Series:
    label: str
    y: Sequence[float]
    band: Sequence[float] | None = None  # half-width of the shaded band around y
    color: tuple[int, int, int] | None = None
    dashed: bool = False


@dataclass
class HLine:
    y: float
    label: str = ""
    color: tuple[int, int, int] = (0, 0, 0)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _text_size(draw, text: str, font) -> tuple[int, int]:
    box = draw.textbbox((0, 0), text, font=font)
    return box[2] - box[0], box[3] - box[1]


def _nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + 1e-9 * step:
        if t >= lo - 1e-9 * step:
            ticks.append(round(t, 10))
        t += step
    return ticks


def _dashed_line(draw, p0, p1, fill, width=2, dash=6, gap=5):
    (x0, y0), (x1, y1) = p0, p1
    length = math.hypot(x1 - x0, y1 - y0)
    if length == 0:
        return
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    t = 0.0
    while t < length:
        e = min(t + dash, length)
        draw.line([(x0 + ux * t, y0 + uy * t), (x0 + ux * e, y0 + uy * e)], fill=fill, width=width)
        t = e + gap


def line_plot(series: Sequence[Series], *, x_labels: Sequence[str] | None = None, x: Sequence[float] | None = None,
              title: str = "", xlabel: str = "", ylabel: str = "", hlines: Sequence[HLine] = (),
              size: tuple[int, int] = (960, 600), y_range: tuple[float, float] | None = None) -> np.ndarray:
    """A line plot as an RGB array. x is categorical (``x_labels``) or numeric (``x``)."""
    from PIL import Image, ImageDraw

    width, height = size
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font, small, big = _font(15), _font(13), _font(18)
    n = max((len(s.y) for s in series), default=0)
    xs = np.asarray(x if x is not None else np.arange(n), dtype=float)
    ys = [np.asarray(s.y, dtype=float) for s in series]
    lows = [y - np.nan_to_num(np.asarray(s.band, float)) if s.band is not None else y for s, y in zip(series, ys)]
    highs = [y + np.nan_to_num(np.asarray(s.band, float)) if s.band is not None else y for s, y in zip(series, ys)]
    finite = [v for arr in lows + highs for v in arr[np.isfinite(arr)]] + [h.y for h in hlines]
    if y_range is not None:
        y0, y1 = y_range
    elif finite:
        y0, y1 = min(finite), max(finite)
        pad = 0.05 * (y1 - y0 or 1.0)
        y0, y1 = y0 - pad, y1 + pad
    else:
        y0, y1 = 0.0, 1.0
    ticks = _nice_ticks(y0, y1)
    y0, y1 = min(y0, ticks[0]), max(y1, ticks[-1])

    label_h = 0
    if x_labels is not None:
        label_h = max((_text_size(draw, s, small)[0] for s in x_labels), default=0) * 0.72 + 14
    left, right, top = 80, 24, 48 if title else 20
    bottom = int(48 + label_h)
    pw, ph = width - left - right, height - top - bottom
    x_lo, x_hi = (float(xs.min()), float(xs.max())) if len(xs) else (0.0, 1.0)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    x_pad = 0.03 * (x_hi - x_lo)

    def px(v: float) -> float:
        return left + (v - x_lo + x_pad) / (x_hi - x_lo + 2 * x_pad) * pw

    def py(v: float) -> float:
        return top + (1.0 - (v - y0) / (y1 - y0)) * ph

    for t in ticks:
        yy = py(t)
        draw.line([(left, yy), (left + pw, yy)], fill=(232, 232, 232))
        label = f"{t:g}"
        tw, th = _text_size(draw, label, small)
        draw.text((left - 8 - tw, yy - th / 2 - 2), label, fill="black", font=small)
    if x_labels is not None:
        for xi, lab in zip(xs, x_labels):
            tw, th = _text_size(draw, lab, small)
            tile = Image.new("RGBA", (tw + 4, th + 6), (255, 255, 255, 0))
            ImageDraw.Draw(tile).text((2, 0), lab, fill="black", font=small)
            tile = tile.rotate(45, expand=True, resample=Image.Resampling.BICUBIC)
            img.paste(tile, (int(px(xi) - tile.width + 6), int(top + ph + 6)), tile)
            draw.line([(px(xi), top + ph), (px(xi), top + ph + 4)], fill="black")
    else:
        for t in _nice_ticks(x_lo, x_hi):
            label = f"{t:g}"
            tw, _ = _text_size(draw, label, small)
            draw.line([(px(t), top + ph), (px(t), top + ph + 4)], fill="black")
            draw.text((px(t) - tw / 2, top + ph + 6), label, fill="black", font=small)

    overlay = Image.new("RGBA", (width, height), (255, 255, 255, 0))
    odraw = ImageDraw.Draw(overlay)
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    for s, y, lo, hi, c in zip(series, ys, lows, highs, colors):
        if s.band is None:
            continue
        ok = np.isfinite(lo) & np.isfinite(hi)
        pts_hi = [(px(a), py(b)) for a, b, k in zip(xs, hi, ok) if k]
        pts_lo = [(px(a), py(b)) for a, b, k in zip(xs, lo, ok) if k]
        if len(pts_hi) >= 2:
            odraw.polygon(pts_hi + pts_lo[::-1], fill=c + (60,))
    img.paste(overlay, (0, 0), overlay)
    draw = ImageDraw.Draw(img)
    for h in hlines:
        _dashed_line(draw, (left, py(h.y)), (left + pw, py(h.y)), h.color, width=2, dash=3, gap=4)
    for s, y, c in zip(series, ys, colors):
        pts = [(px(a), py(b)) for a, b in zip(xs, y) if np.isfinite(b)]
        if len(pts) >= 2:
            if s.dashed:
                for p0, p1 in zip(pts[:-1], pts[1:]):
                    _dashed_line(draw, p0, p1, c, width=3)
            else:
                draw.line(pts, fill=c, width=3, joint="curve")
        for p in pts:
            draw.ellipse([p[0] - 3.5, p[1] - 3.5, p[0] + 3.5, p[1] + 3.5], fill=c)
    draw.rectangle([left, top, left + pw, top + ph], outline="black", width=1)

    if title:
        tw, _ = _text_size(draw, title, big)
        draw.text(((width - tw) / 2, 12), title, fill="black", font=big)
    if xlabel:
        tw, th = _text_size(draw, xlabel, font)
        draw.text((left + (pw - tw) / 2, height - th - 10), xlabel, fill="black", font=font)
    if ylabel:
        tw, th = _text_size(draw, ylabel, font)
        tile = Image.new("RGBA", (tw + 4, th + 6), (255, 255, 255, 0))
        ImageDraw.Draw(tile).text((2, 0), ylabel, fill="black", font=font)
        tile = tile.rotate(90, expand=True)
        img.paste(tile, (8, int(top + (ph - tile.height) / 2)), tile)

    entries = [(s.label, c, s.dashed, False) for s, c in zip(series, colors) if s.label]
    entries += [(h.label, h.color, True, True) for h in hlines if h.label]
    if entries:
        lw = max(_text_size(draw, e[0], small)[0] for e in entries) + 44
        lh = 19 * len(entries) + 8
        lx, ly = left + 10, top + 10
        draw.rectangle([lx, ly, lx + lw, ly + lh], fill="white", outline=(160, 160, 160))
        for k, (label, c, dashed, thin) in enumerate(entries):
            yy = ly + 13 + 19 * k
            if dashed:
                _dashed_line(draw, (lx + 6, yy), (lx + 30, yy), c, width=2, dash=3 if thin else 6, gap=4)
            else:
                draw.line([(lx + 6, yy), (lx + 30, yy)], fill=c, width=3)
            draw.text((lx + 36, yy - 8), label, fill="black", font=small)
    return np.asarray(img)


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) float in [0, 1] or uint8 → (H, W, 3) uint8."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def draw_displacement(image: np.ndarray, field: np.ndarray, *, scale: int = 8, every: int | None = None,
                      control: np.ndarray | None = None, color=(255, 40, 40)) -> np.ndarray:
    """Upsample ``image`` by ``scale`` and draw the field (H, W, 2, pixels x/y) as arrows.

    Arrows go from the sampled source p + u(p) (tail) to p (tip), as in Ruderman et al. Fig. 2c.
    ``control`` (K, 2) marks control-point positions.
    """
    from PIL import Image, ImageDraw

    rgb = to_rgb8(image)
    h, w = rgb.shape[:2]
    big = Image.fromarray(rgb).resize((w * scale, h * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(big)
    every = every or max(1, min(h, w) // 8)
    for yy in range(every // 2, h, every):
        for xx in range(every // 2, w, every):
            ux, uy = field[yy, xx]
            tip = ((xx + 0.5) * scale, (yy + 0.5) * scale)
            tail = ((xx + ux + 0.5) * scale, (yy + uy + 0.5) * scale)
            draw.line([tail, tip], fill=color, width=2)
            ang = math.atan2(tip[1] - tail[1], tip[0] - tail[0])
            if math.hypot(tip[0] - tail[0], tip[1] - tail[1]) > 2:
                for da in (2.6, -2.6):
                    draw.line([tip, (tip[0] + 6 * math.cos(ang + da), tip[1] + 6 * math.sin(ang + da))],
                              fill=color, width=2)
    if control is not None:
        for cx, cy in np.asarray(control):
            c = ((cx + 0.5) * scale, (cy + 0.5) * scale)
            draw.ellipse([c[0] - 3, c[1] - 3, c[0] + 3, c[1] + 3], outline=(40, 120, 255), width=2)
    return np.asarray(big)


def hstack(images: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Side by side on white, vertically centred; each converted to RGB uint8."""
    rgbs = [to_rgb8(i) for i in images]
    height = max(i.shape[0] for i in rgbs)
    width = sum(i.shape[1] for i in rgbs) + gap * (len(rgbs) - 1)
    out = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for i in rgbs:
        y = (height - i.shape[0]) // 2
        out[y:y + i.shape[0], x:x + i.shape[1]] = i
        x += i.shape[1] + gap
    return out


def vstack(images: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    rgbs = [to_rgb8(i) for i in images]
    width = max(i.shape[1] for i in rgbs)
    height = sum(i.shape[0] for i in rgbs) + gap * (len(rgbs) - 1)
    out = np.full((height, width, 3), 255, np.uint8)
    y = 0
    for i in rgbs:
        out[y:y + i.shape[0], :i.shape[1]] = i
        y += i.shape[0] + gap
    return out


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    rgb = to_rgb8(image)
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)
