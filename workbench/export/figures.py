"""Labelled result grids for papers and talks: PNG, SVG and PDF, drawn with PIL (no Qt).

A :class:`FigureGrid` is rows of image tiles with row labels (layer), column labels
(reference, restart k) and a title (model · layer · method · C). The raster formats are
rendered by :func:`workbench.export.grid.labelled_grid` at ``tile`` pixels per tile; the SVG
keeps every tile as its own embedded PNG (nearest-neighbour, so pixels stay square when
scaled) and every label as real ``<text>``, so the figure can be edited in a vector editor.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw

from workbench.errors import UserError
from workbench.export.grid import font, labelled_grid
from workbench.export.plots import to_rgb8
from workbench.runs import atomic_path

FORMATS = ("png", "svg", "pdf")


@dataclass
class FigureGrid:
    rows: list[list[np.ndarray | None]]          # tiles (H, W, C) in [0, 1] or uint8
    row_labels: list[str] = field(default_factory=list)
    col_labels: list[str] = field(default_factory=list)
    title: str = ""

    def render(self, tile: int = 128, font_size: int | None = None) -> np.ndarray:
        """The figure as an (H, W, 3) uint8 array, each tile ``tile`` pixels high."""
        size = font_size or max(12, tile // 8)
        return labelled_grid(self.rows, col_labels=self.col_labels or None, row_labels=self.row_labels or None,
                             title=self.title or None, tile=tile, pad=max(4, tile // 20), font_size=size)

    def svg(self, tile: int = 128, font_size: int | None = None) -> str:
        size = font_size or max(12, tile // 8)
        pad = max(4, tile // 20)
        f = font(size)
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        first = next(t for row in self.rows for t in row if t is not None)
        tw = int(round(first.shape[1] * tile / first.shape[0]))
        line = size + 6
        left = max((int(probe.textlength(s, font=f)) for s in self.row_labels), default=0)
        left = left + 2 * pad if self.row_labels else 0
        top = (line if self.col_labels else 0) + (line + pad if self.title else 0)
        n_cols = max(len(r) for r in self.rows)
        width = left + n_cols * (tw + pad) + pad
        height = top + len(self.rows) * (tile + pad) + pad
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
               f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
               f'<rect width="{width}" height="{height}" fill="white"/>',
               f'<g font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="{size}" fill="#282828">']
        if self.title:
            out.append(f'<text x="{pad}" y="{pad + size}" font-size="{size + 2}" fill="black">{escape(self.title)}</text>')
        y_labels = pad + (line + pad if self.title else 0) + size
        for j, label in enumerate(self.col_labels[:n_cols]):
            x = left + pad + j * (tw + pad) + tw / 2
            out.append(f'<text x="{x:.1f}" y="{y_labels}" text-anchor="middle">{escape(label)}</text>')
        for i, row in enumerate(self.rows):
            y = top + pad + i * (tile + pad)
            if i < len(self.row_labels):
                out.append(f'<text x="{pad}" y="{y + tile / 2 + size / 3:.1f}">{escape(self.row_labels[i])}</text>')
            for j, t in enumerate(row):
                if t is None:
                    continue
                buf = io.BytesIO()
                Image.fromarray(to_rgb8(t)).save(buf, format="PNG")
                data = base64.b64encode(buf.getvalue()).decode("ascii")
                x = left + pad + j * (tw + pad)
                out.append(f'<image x="{x}" y="{y}" width="{tw}" height="{tile}" preserveAspectRatio="none" '
                           f'style="image-rendering:pixelated" xlink:href="data:image/png;base64,{data}"/>')
        out.append("</g></svg>")
        return "\n".join(out) + "\n"


def check_target(path: str | Path, overwrite: bool = False) -> tuple[Path, str]:
    """The path and its format; a UserError for an unknown suffix or an existing file."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS + ("gif",):
        raise UserError(f"cannot export to '{path.suffix or path.name}': use a .png, .svg or .pdf file name")
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists: choose another name or allow overwriting")
    if not path.parent.is_dir():
        raise UserError(f"folder {path.parent} does not exist: choose an existing folder")
    return path, fmt


def save_figure(figure: FigureGrid, path: str | Path, *, tile: int = 128, dpi: int = 300,
                overwrite: bool = False) -> Path:
    """Write ``figure`` as PNG, SVG or PDF (by the file's suffix), atomically.

    ``tile`` is the resolution (pixels per tile row); ``dpi`` is written into PNG and PDF
    so the figure has a physical size (``tile / dpi`` inches per tile).
    """
    path, fmt = check_target(path, overwrite)
    if fmt == "gif":
        raise UserError("a GIF is an animation: export the optimisation with Export animation")
    with atomic_path(path) as tmp:
        if fmt == "svg":
            tmp.write_text(figure.svg(tile))
        else:
            image = Image.fromarray(figure.render(tile))
            if fmt == "png":
                image.save(tmp, format="PNG", dpi=(dpi, dpi))
            else:
                image.save(tmp, format="PDF", resolution=float(dpi))
    return path


def result_figure(images: np.ndarray, reference: np.ndarray | None, *, layer: str, C: float | None,
                  title: str = "") -> FigureGrid:
    """The pre-image grid of one run: reference, then restart 1..K, labelled (layer, C, restart)."""
    tiles = ([reference] if reference is not None else []) + list(images)
    labels = (["reference"] if reference is not None else []) + [f"restart {k + 1}" for k in range(len(images))]
    row = layer if C is None else f"{layer}  C={C:g}"
    return FigureGrid([tiles], row_labels=[row], col_labels=labels, title=title)


#: What a figure made from weights that were never trained says after the model's name.
UNTRAINED_MARK = "UNTRAINED weights"


def model_caption(name: str, trained: bool | None) -> str:
    """``name``, followed by the untrained mark when ``trained`` is False: every figure of an
    untrained model says so (a random network's pre-images look like a trained one's noise)."""
    return name if trained is not False else f"{name} · {UNTRAINED_MARK}"
