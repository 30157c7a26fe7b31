"""Labelled image grids as pixels, for the window and for callers that want an array: the same
figure as :class:`workbench.export.figures.FigureGrid` (matplotlib), rasterised."""

from __future__ import annotations

import numpy as np

from workbench.export.style import FigureStyle


def labelled_grid(rows: list[list[np.ndarray | None]], col_labels: list[str] | None = None,
                  row_labels: list[str] | None = None, title: str | None = None, tile: int | None = None,
                  pad: int | None = None, font_size: int | None = None, captions: list[list[str]] | None = None,
                  style: FigureStyle | None = None, **_ignored) -> np.ndarray:
    """Tiles (H, W, C) in [0, 1] arranged in rows, each ``tile`` pixels high (default: small
    tiles upscaled up to 4×, to at most 160 px); ``None`` leaves a cell empty; ``captions`` (per
    cell) go under the tiles. Returns an (H, W, 3) uint8 image. ``pad`` and ``font_size`` are
    accepted for older callers; the layout follows ``style``."""
    from workbench.export.figures import FigureGrid

    if tile is None:
        first = next(t for row in rows for t in row if t is not None)
        h0 = np.asarray(first).shape[0]
        tile = max(h0, min(160, 4 * h0)) if h0 < 160 else h0
    grid = FigureGrid(rows, row_labels=list(row_labels or []), col_labels=list(col_labels or []), title=title or "",
                      captions=[list(c) for c in captions or []])
    return grid.render(tile=tile, style=style)
