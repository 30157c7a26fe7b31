"""Labelled image grids for papers and talks (the pre-image result grid, the demo sheet, the
filter-GAN traversal, the studies' examples), drawn with matplotlib (no Qt).

A :class:`FigureGrid` is rows of image tiles with row labels (layer), column labels
(reference, restart k), captions under the tiles and a title (model · method). :meth:`FigureGrid.figure`
lays it out at a :class:`~workbench.export.style.FigureStyle`'s width (a paper column, a page,
a slide): every tile is its own embedded image, shown pixel for pixel (nearest neighbour, so
pixels stay square), and every label is text, so a PDF or SVG can be edited and searched.
:func:`save_figure` writes PNG, SVG or PDF; :meth:`FigureGrid.render` gives the pixels for
the window and for animations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import UserError
from workbench.export.plots import to_rgb8
from workbench.export.render import INK, MUTED, check_target, elide, print_context, text_width, wrap
from workbench.export.style import FigureStyle, style_or_default


@dataclass
class GridDrawing:
    """A drawn grid: the figure, its one axes (inch coordinates, y up), each cell's image and box."""
    fig: Any
    ax: Any
    images: dict[tuple[int, int], Any]
    boxes: dict[tuple[int, int], tuple[float, float, float, float]]   # x0, y0, width, height in inches
    title: Any
    tile_height: float                                                  # inches


@dataclass
class FigureGrid:
    rows: list[list[np.ndarray | None]]          # tiles (H, W, C) in [0, 1] or uint8
    row_labels: list[str] = field(default_factory=list)
    col_labels: list[str] = field(default_factory=list)
    title: str = ""
    captions: list[list[str]] = field(default_factory=list)

    def figure(self, style: FigureStyle | None = None):
        """The grid as a matplotlib Figure at ``style``'s width (and a slide's height)."""
        return self.draw(style).fig

    def draw(self, style: FigureStyle | None = None, *, tile: float | None = None) -> GridDrawing:
        """Lay the grid out; ``tile`` (inches) fixes the tile height instead of fitting the width.
        The style's ``title`` replaces the grid's ("" drops it) and ``no_captions`` drops the captions
        (the export dialog's and the CLI's ``--figure-title`` / ``--figure-no-captions``)."""
        style = style_or_default(style)
        grid = self
        if style.title is not None or style.no_captions:
            grid = FigureGrid(self.rows, self.row_labels, self.col_labels,
                              self.title if style.title is None else style.title,
                              [] if style.no_captions else self.captions)
        with print_context(style):
            return _draw_grid(grid, style, tile)

    def render(self, tile: int | None = None, font_size: int | None = None,
               style: FigureStyle | None = None) -> np.ndarray:
        """The figure as an (H, W, 3) uint8 array; with ``tile``, each tile is ``tile`` pixels high
        (else the style's PNG resolution). ``font_size`` is accepted for older callers and ignored."""
        from workbench.export.render import to_array

        drawing = self.draw(style)
        style = style_or_default(style)
        dpi = (tile + 0.5) / drawing.tile_height if tile is not None else style.png_dpi
        with print_context(style):
            return to_array(drawing.fig, dpi)


def _cells(rows) -> list[list[np.ndarray | None]]:
    return [[to_rgb8(t) if t is not None else None for t in row] for row in rows]


def _draw_grid(grid: FigureGrid, style: FigureStyle, tile_in: float | None) -> GridDrawing:
    from workbench.export.render import new_figure

    cells = _cells(grid.rows)
    first = next((t for row in cells for t in row if t is not None), None)
    if first is None:
        raise UserError("nothing to draw: every cell of the figure is empty")
    aspect = first.shape[1] / first.shape[0]                       # tile width / height
    n_rows, n_cols = len(cells), max(len(r) for r in cells)
    f = style.font
    small = f * 0.9
    margin = 0.35 if style.slide else 0.04
    pad = max(0.03, 0.012 * style.width)                           # between tiles
    width = style.width
    row_labels = grid.row_labels[:n_rows]
    left = (max(text_width(s, f) for s in row_labels) + 2 * pad) if row_labels else 0.0
    left = min(left, 0.35 * width)
    avail = width - 2 * margin - left
    # tile size: the width's share, at most a third of the width (two tiles never fill a page), and on
    # a slide what fits the height too
    tw = (avail - (n_cols - 1) * pad) / n_cols
    tw = min(tw, width / 3.0)
    title = wrap(grid.title, width - 2 * margin, f * 1.1) if grid.title else ""
    title_h = (title.count("\n") + 1) * f * 1.1 * 1.3 / 72.0 + pad if title else 0.0

    def label_block(t: float):
        """Column labels and captions fitted to tiles ``t`` inches wide, and the heights they take."""
        labels = [fit_label(s, t + 0.3 * pad, small) for s in grid.col_labels[:n_cols]]
        captions = [[fit_label(c, t + 0.3 * pad, small) for c in row] for row in grid.captions]
        col_lines = max((s.count("\n") + 1 for s, _ in labels), default=0)
        cap_h = [0.0] * n_rows                                     # each row's captions take what they need
        for i, row in enumerate(captions[:n_rows]):
            lines = max((c.count("\n") + 1 for c, _ in row if c), default=0)
            cap_h[i] = lines * small * 1.25 / 72.0 + 0.3 * pad if lines else 0.0
        return labels, col_lines * small * 1.3 / 72.0, captions, cap_h

    col_labels, col_h, captions, caption_h = label_block(tw)
    if tile_in is not None:
        th = tile_in
        tw = th * aspect
    else:
        th = tw / aspect
        if style.slide:  # fit the 16:9 page: tiles shrink until the rows fit its height too
            room = style.height - 2 * margin - title_h - col_h - sum(caption_h) - (n_rows - 1) * pad
            if n_rows * th > room:
                th = max(room / n_rows, 0.1)
                tw = th * aspect
                col_labels, col_h, captions, caption_h = label_block(tw)
    grid_w = left + n_cols * tw + (n_cols - 1) * pad
    if tile_in is None and not style.slide and grid_w < width - 2 * margin - 1e-6:
        # a grid narrower than the page (one tile, two): the figure as wide as it or its title, no margin
        tile_in = th
    if tile_in is not None:  # the figure fits its content: as wide as the grid or the title
        width = max(grid_w, min(text_width(grid.title, f * 1.1), style.width)) + 2 * margin
        title = wrap(grid.title, width - 2 * margin, f * 1.1) if grid.title else ""
        title_h = (title.count("\n") + 1) * f * 1.1 * 1.3 / 72.0 + pad if title else 0.0
    height = 2 * margin + title_h + col_h + n_rows * th + sum(caption_h) + (n_rows - 1) * pad
    if style.slide:
        height = max(height, style.height)
    fig = new_figure(width, height)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    content_h = title_h + col_h + n_rows * th + sum(caption_h) + (n_rows - 1) * pad
    top = height - margin - max(0.0, (height - 2 * margin - content_h) / 2)   # a slide centres the grid
    x0 = (width - grid_w) / 2 if (style.slide or grid_w < width - 2 * margin - 1e-6) else margin
    title_text = None
    if title:
        widest = max(text_width(line, f * 1.1) for line in title.split("\n"))
        tx = width / 2 if style.slide else max(margin, min(x0, width - margin - widest))
        title_text = ax.text(tx, top, title, ha="center" if style.slide else "left", va="top", fontsize=f * 1.1,
                             color=INK)
    y = top - title_h
    for j, (label, size) in enumerate(col_labels):
        ax.text(x0 + left + j * (tw + pad) + tw / 2, y - col_h, label, ha="center", va="bottom", fontsize=size,
                color=INK, linespacing=1.15)
    y -= col_h
    images, boxes = {}, {}
    for i, row in enumerate(cells):
        ty = y - i * (th + pad) - sum(caption_h[:i]) - th
        if i < len(row_labels) and row_labels[i]:
            ax.text(x0 + left - pad, ty + th / 2, row_labels[i], ha="right", va="center", fontsize=f, color=INK)
        for j, t in enumerate(row):
            if t is None:
                continue
            tx = x0 + left + j * (tw + pad)
            images[(i, j)] = ax.imshow(t, extent=(tx, tx + tw, ty, ty + th), interpolation="none", aspect="auto",
                                       resample=False, zorder=1)
            boxes[(i, j)] = (tx, ty, tw, th)
            caption, size = captions[i][j] if i < len(captions) and j < len(captions[i]) else ("", small)
            if caption:
                ax.text(tx + tw / 2, ty - 0.3 * pad, caption, ha="center", va="top", fontsize=size, color=MUTED,
                        linespacing=1.1)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    return GridDrawing(fig, ax, images, boxes, title_text, th)


def fit_label(text: str, width: float, size: float) -> tuple[str, float]:
    """``text`` wrapped to ``width`` inches at ``size`` points, or at a smaller size (down to two
    thirds) where a single word would not fit; returns the text and its size."""
    if not text:
        return "", size
    if "\n" in text:  # lines of their own (a metric, then a class): each fitted, all at the smallest size
        parts = [fit_label(line, width, size) for line in text.split("\n")]
        smallest = min(p[1] for p in parts)
        return "\n".join(fit_label(line, width, smallest)[0] for line in text.split("\n")), smallest
    for scale in (1.0, 0.9, 0.8, 0.7, 0.65):
        lines = wrap(text, width, size * scale)
        if all(text_width(line, size * scale) <= width for line in lines.split("\n")):
            return lines, size * scale
    size *= 0.65  # a word wider than the tile even so (a long layer name): cut in its middle
    fitted = []
    for line in wrap(text, width, size).split("\n"):
        most = len(line)
        while most > 4 and text_width(elide(line, most), size) > width:
            most -= 1
        fitted.append(elide(line, most))
    return "\n".join(fitted), size


def save_figure(figure, path: str | Path, *, style: FigureStyle | None = None, tile: int | None = None,
                dpi: int | None = None, overwrite: bool = False) -> Path:
    """Write ``figure`` (a :class:`FigureGrid` or a matplotlib Figure) as PNG, SVG or PDF (by the
    file's suffix), atomically, at ``style``'s size.

    A PNG is ``dpi`` dots per inch (default: the style's); ``tile`` instead asks for tiles at least
    that many pixels high. PDF and SVG keep text as text and the tiles as images.
    """
    from workbench.export.render import save

    style = style_or_default(style)
    check_target(path, overwrite)
    if isinstance(figure, FigureGrid):
        drawing = figure.draw(style)
        fig = drawing.fig
        if tile is not None:
            dpi = max(dpi or 0, (tile + 0.5) / drawing.tile_height)
    else:
        fig = figure
    return save(fig, path, style, overwrite=overwrite, dpi=dpi)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def human_number(x: float | int | None, digits: int = 2) -> str:
    """A number for people: 300, 0.05, 1.1 × 10⁶ (never 1.08785e+06; the spaces do not break); "" for None."""
    if x is None:
        return ""
    x = float(x)
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.{max(digits, 3)}g}"
    exponent = int(np.floor(np.log10(abs(x))))
    mantissa = x / 10.0 ** exponent
    if round(mantissa, digits - 1) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    head = f"{mantissa:.{digits - 1}f}".rstrip("0").rstrip(".")
    power = f"10{str(exponent).translate(_SUPERSCRIPT)}"
    return power if head == "1" else f"{head}\u00a0×\u00a0{power}"  # no-break spaces: never wrapped apart


def model_name(name: str) -> str:
    """A model's name for a title: a file's name without its folder, a callable's object without its
    module (``efficientnet_lite_pytorch:EfficientNet.from_name`` → ``EfficientNet``), ``timm:NAME`` →
    ``NAME``, an in-memory module as ``Net (in memory)``."""
    name = str(name or "")
    if name.startswith("<in-memory ") and name.endswith(">"):
        return f"{name[len('<in-memory '):-1]} (in memory)"
    if name.startswith("timm:"):
        return name[len("timm:"):]
    if ":" in name and "/" not in name and "\\" not in name:
        target = name.split(":", 1)[1]
        parts = target.split(".")
        while len(parts) > 1 and (parts[-1].startswith("from_") or parts[-1] in ("build", "create", "make")):
            parts.pop()
        return ".".join(parts)
    return Path(name).name or name


def result_figure(images: np.ndarray, reference: np.ndarray | None, *, layer: str, C: float | None,
                  title: str = "") -> FigureGrid:
    """The pre-image grid of one run: reference, then restart 1..K; the row says C (the title
    names the layer), the columns which image."""
    tiles = ([reference] if reference is not None else []) + list(images)
    labels = (["reference"] if reference is not None else []) + [f"restart {k + 1}" for k in range(len(images))]
    row = "" if C is None else f"C = {human_number(C)}"
    return FigureGrid([tiles], row_labels=[row] if row else [], col_labels=labels, title=title)


def preimage_what(metrics: dict[str, Any]) -> str:
    """What a pre-image run computed, for titles: inversion, caricature, or what a maximisation maximized
    (a neuron, with its position, or a channel's mean)."""
    method = metrics.get("method", "")
    if method == "invert":
        return "inversion"
    if method != "maximize":
        return method
    channel = metrics.get("channel")
    if metrics.get("component") == "channel mean":
        return f"maximize channel {channel} (mean over positions)"
    if metrics.get("target_name"):
        p = [float(v) for v in metrics.get("target_probability") or []]
        odds = "" if not p else f", p = {min(p):.3g}" if min(p) == max(p) else f", p = {min(p):.3g}–{max(p):.3g}"
        return f"maximize class {channel} “{metrics['target_name']}”{odds}"
    neuron = metrics.get("neuron")
    return f"maximize channel {channel}" + (f", neuron ({neuron[0]}, {neuron[1]})" if neuron else "")


def preimage_figure(images: np.ndarray, reference: np.ndarray | None, metrics: dict[str, Any]) -> FigureGrid:
    """The result grid of a pre-image run from its metrics: the run folder's ``grid.png``/``grid.pdf``
    and the window's export are this one figure."""
    grid = result_figure(images, reference, layer=metrics.get("layer", ""), C=metrics.get("C"),
                         title=preimage_title(metrics))
    classes = prediction_captions(metrics, len(images), reference is not None)
    values = metric_captions(metrics, len(images), reference is not None)
    captions = ["\n".join(part for part in (v, c) if part) for v, c in zip(values, classes)]
    if any(captions):
        grid.captions = [captions]
    return grid


def preimage_title(metrics: dict[str, Any]) -> str:
    """A pre-image figure's title: the model's short name, the layer, what was computed
    ("EfficientNet-Lite0 · _blocks.9.add · inversion"); untrained weights and a stretched view say so."""
    parts = [model_caption(model_name(metrics.get("model", "")), metrics.get("trained"))]
    if metrics.get("layer"):
        parts.append(str(metrics["layer"]))
    parts.append(preimage_what(metrics))
    title = " · ".join(p for p in parts if p)
    if metrics.get("view") == "stretched":
        title += " · each image stretched to its range"
    return title


def metric_captions(metrics: dict[str, Any], n_images: int, with_reference: bool) -> list[str]:
    """Each restart's number under its tile: its reconstruction error (eq. 3) or the activation it
    reached; "" for the reference and where the run has none."""
    def at(key, k):
        values = metrics.get(key)
        return values[k] if isinstance(values, list) and k < len(values) else None

    out = [""] if with_reference else []
    for k in range(n_images):
        error, activation = at("reconstruction_error", k), at("activation", k)
        if isinstance(error, (int, float)):
            out.append(f"error {human_number(error)}")
        elif isinstance(activation, (int, float)):
            out.append(f"activation {human_number(activation, 3)}" + quality_caption(metrics, k))
        else:
            out.append("")
    return out


def quality_checks(metrics: dict[str, Any], k: int) -> dict[str, Any]:
    """Restart k's quality checks (workbench.preimage.quality, issue 19) read from ``metrics``: ``what`` is
    "p" with the target's probability after the blur and at half resolution (a class), or "kept" with the
    fraction of the activation kept (a hidden unit); then the judge's p and the slope (None where absent).
    The one reading of these fields: the exported grid, the window's tiles and the atlas sheet word them."""
    def at(key):
        values = metrics.get(key)
        v = values[k] if isinstance(values, list) and k < len(values) else None
        return v if isinstance(v, (int, float)) else None

    blur, half, what = at("p_blur"), at("p_half"), "p"
    if blur is None:
        blur, half, what = at("blur_retention"), at("half_retention"), "kept"
    return {"what": what, "blur": blur, "half": half, "judge": at("p_judge"), "slope": at("spectral_slope")}


def quality_caption(metrics: dict[str, Any], k: int) -> str:
    """Restart k's quality checks as caption lines (:func:`quality_checks`): blurred and half-resolution p
    (or the activation kept), the judge's p, the slope."""
    q = quality_checks(metrics, k)
    parts = [] if q["blur"] is None else [f"{q['what']} blurred {q['blur']:.2f}",
                                          f"half-res {q['half']:.2f}" if q["half"] is not None else ""]
    if q["judge"] is not None:
        parts.append(f"judge {q['judge']:.2f}")
    if q["slope"] is not None:
        parts.append(f"slope {q['slope']:.1f}")
    parts = [p for p in parts if p]
    return "\n" + " · ".join(parts) if parts else ""


def prediction_captions(metrics: dict[str, Any], n_images: int, with_reference: bool) -> list[str]:
    """Each tile's most probable class with its probability (metrics' ``top5``, named where the model
    names its classes): the reference first when it is shown; "" where the run has no predictions."""
    def top1(entries) -> str:
        if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
            return ""
        best = entries[0]
        name = best.get("name") or f"class {best.get('class')}"
        return f"{name} ({100 * float(best.get('probability', 0.0)):.0f} %)"

    top5 = metrics.get("top5") if isinstance(metrics.get("top5"), list) else []
    out = [top1(metrics.get("reference_top5"))] if with_reference else []
    return out + [top1(top5[k]) if k < len(top5) else "" for k in range(n_images)]


#: What a figure made from weights that were never trained says after the model's name.
UNTRAINED_MARK = "UNTRAINED weights"


def model_caption(name: str, trained: bool | None) -> str:
    """``name``, followed by the untrained mark when ``trained`` is False: every figure of an
    untrained model says so (a random network's pre-images look like a trained one's noise)."""
    return name if trained is not False else f"{name} · {UNTRAINED_MARK}"
