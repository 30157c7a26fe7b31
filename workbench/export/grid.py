"""Labelled image grids for run folders and papers (PIL only; no Qt)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from workbench.export.plots import to_rgb8


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def labelled_grid(rows: list[list[np.ndarray | None]], col_labels: list[str] | None = None,
                  row_labels: list[str] | None = None, title: str | None = None, tile: int | None = None,
                  pad: int = 6, font_size: int = 14, background: tuple[int, int, int] = (255, 255, 255),
                  captions: list[list[str]] | None = None) -> np.ndarray:
    """Tiles (H, W, C) in [0, 1] arranged in rows, upscaled (nearest) to ``tile`` pixels high.

    ``None`` leaves a cell empty; ``captions`` (per cell) are written under the tiles.
    Returns an (H, W, 3) uint8 image.
    """
    cells = [[to_rgb8(t) if t is not None else None for t in row] for row in rows]
    first = next(t for row in cells for t in row if t is not None)
    h0, w0 = first.shape[:2]
    if tile is None:
        tile = max(h0, min(160, 4 * h0)) if h0 < 160 else h0
    scale = tile / h0
    tw = int(round(w0 * scale))
    f = font(font_size)
    line = font_size + 6
    n_cols = max(len(r) for r in cells)
    left = 0
    if row_labels:
        left = max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(s, font=f)) for s in row_labels) + 2 * pad
    top = (line if col_labels else 0) + (line + pad if title else 0)
    cap = line if captions else 0
    width = left + n_cols * (tw + pad) + pad
    if title:
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        width = max(width, int(probe.textlength(title, font=font(font_size + 2))) + 2 * pad)
    height = top + len(cells) * (tile + cap + pad) + pad
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    y = pad
    if title:
        draw.text((pad, y), title, fill=(0, 0, 0), font=font(font_size + 2))
        y += line + pad
    if col_labels:
        for j, label in enumerate(col_labels[:n_cols]):
            x = left + pad + j * (tw + pad) + tw / 2
            draw.text((x, y), label, fill=(40, 40, 40), font=f, anchor="ma")
    for i, row in enumerate(cells):
        y = top + pad + i * (tile + cap + pad)
        if row_labels and i < len(row_labels):
            draw.text((pad, y + tile / 2), row_labels[i], fill=(40, 40, 40), font=f, anchor="lm")
        for j, t in enumerate(row):
            if t is None:
                continue
            im = Image.fromarray(t).resize((tw, tile), Image.Resampling.NEAREST)
            x = left + pad + j * (tw + pad)
            canvas.paste(im, (x, y))
            if captions and i < len(captions) and j < len(captions[i]) and captions[i][j]:
                draw.text((x + tw / 2, y + tile + 3), captions[i][j], fill=(40, 40, 40), font=font(font_size - 2), anchor="ma")
    return np.asarray(canvas)
