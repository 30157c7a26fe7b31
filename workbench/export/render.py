"""The matplotlib side of every figure: print colours, vector text, saving, rasterising.

Figures are :class:`matplotlib.figure.Figure` objects on an Agg canvas, never pyplot (no
global figure registry, no GUI backend, safe on a worker thread). Building and saving happen
inside :func:`print_context`, which starts from matplotlib's defaults (a user's matplotlibrc or
a dark style cannot leak in) and sets light print colours, DejaVu Sans, and text that stays text:
``svg.fonttype = 'none'`` (``<text>`` elements) and ``pdf.fonttype = 42`` (embedded TrueType,
selectable and searchable). matplotlib's rcParams are process-wide, so the context holds a
lock while it is active; a figure takes a fraction of a second, so the wait is short.

Why rcParams and not a style given to the figure itself (issue 21 asks for no global state):
matplotlib has no per-figure or per-call setting for what makes a vector export text. Its PDF
backend reads ``pdf.fonttype`` and ``pdf.compression``, its SVG backend ``svg.fonttype`` and
``svg.hashsalt``, from the global ``matplotlib.rcParams`` while it saves (matplotlib 3.11:
backend_pdf ``RendererPdf.draw_text``, backend_svg ``RendererSVG.draw_text`` and ``_make_id``),
and tick labels read ``axes.unicode_minus`` while they are drawn; ``savefig`` takes none of them
as arguments. A figure styled artist by artist and saved outside the context therefore comes out
with matplotlib's defaults: glyphs as paths in the SVG, Type 3 fonts in the PDF
(tests/test_figures_vector.py, ``test_vector_text_needs_the_print_context_to_save``). So the
dict is swapped for the block (``rc_context`` restores it) and the lock is the one guard of that
process-wide dict that every thread drawing through the workbench shares: a lock held by each
caller would not keep two callers apart. What stays global is matplotlib's, for the block only.

Output is deterministic: the same figure gives the same bytes (no dates in PDF or PNG, a fixed
SVG id salt), so a figure from the command line and one from the window can be compared.
"""

from __future__ import annotations

import math
import textwrap
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from workbench.errors import UserError
from workbench.export.style import FigureStyle, style_or_default

#: matplotlib's rcParams are one dict per process: one figure is built or saved at a time.
_RC_LOCK = threading.RLock()

#: Colours readable on white and by colour-blind readers (Okabe & Ito), black first for a single curve.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
INK = "#1a1a1a"
MUTED = "#555555"

FORMATS = ("png", "svg", "pdf")


def rc(style: FigureStyle) -> dict:
    f, lw = style.font, style.line
    return {
        "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"], "font.size": f,
        "axes.titlesize": f * 1.1, "axes.labelsize": f, "xtick.labelsize": f * 0.9, "ytick.labelsize": f * 0.9,
        "legend.fontsize": f * 0.9, "figure.titlesize": f * 1.15, "legend.frameon": False,
        "text.color": INK, "axes.labelcolor": INK, "xtick.color": INK, "ytick.color": INK, "axes.edgecolor": INK,
        "figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white",
        "savefig.edgecolor": "white", "savefig.transparent": False,
        "axes.prop_cycle": __import__("cycler").cycler(color=list(PALETTE)),
        "axes.spines.top": False, "axes.spines.right": False, "axes.linewidth": 0.6 * lw,
        "axes.grid": False, "grid.color": "#dddddd", "grid.linewidth": 0.5 * lw,
        "xtick.major.width": 0.6 * lw, "ytick.major.width": 0.6 * lw, "xtick.minor.width": 0.4 * lw,
        "xtick.major.size": 0.35 * f, "ytick.major.size": 0.35 * f, "xtick.minor.size": 0.2 * f,
        "lines.linewidth": lw, "lines.markersize": 2.6 * lw + 0.6, "patch.linewidth": 0.5 * lw,
        "figure.dpi": 100, "savefig.dpi": style.png_dpi, "image.interpolation": "none",
        "image.resample": False, "figure.constrained_layout.use": False,
        "svg.fonttype": "none", "svg.hashsalt": "workbench", "pdf.fonttype": 42, "ps.fonttype": 42,
        "pdf.compression": 9, "axes.unicode_minus": True,
    }


@contextmanager
def print_context(style: FigureStyle | None = None) -> Iterator[FigureStyle]:
    """matplotlib's defaults plus the print settings of ``style``, for the block (one thread at a time)."""
    import matplotlib

    style = style_or_default(style)
    with _RC_LOCK, matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(rc(style))
        yield style


def new_figure(width: float, height: float, *, layout: str | None = None):
    """An empty figure of ``width`` × ``height`` inches on an Agg canvas (call inside :func:`print_context`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def text_width(text: str, size: float) -> float:
    """Width in inches of one line of ``text`` at ``size`` points in the figures' font."""
    if not text:
        return 0.0
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    w, _, _ = TextToPath().get_text_width_height_descent(text, FontProperties(family="DejaVu Sans", size=size),
                                                         ismath=False)
    return w / 72.0


def wrap(text: str, width: float, size: float) -> str:
    """``text`` broken into lines no wider than ``width`` inches at ``size`` points."""
    if not text or text_width(text, size) <= width:
        return text
    chars = max(8, int(len(text) * width / text_width(text, size)))
    lines = textwrap.wrap(text, chars, break_on_hyphens=False, break_long_words=False)
    while chars > 8 and any(text_width(line, size) > width for line in lines):
        chars -= 1
        lines = textwrap.wrap(text, chars, break_on_hyphens=False, break_long_words=False)
    return "\n".join(lines)


def elide(text: str, most: int) -> str:
    """``text`` cut in the middle to at most ``most`` characters (a layer name keeps its start and end)."""
    if len(text) <= most:
        return text
    tail = (most - 1) * 3 // 5
    return text[:most - 1 - tail] + "…" + text[-tail:]


def colour(c) -> str | tuple:
    """An (r, g, b) tuple of 0–255 ints, or any matplotlib colour, as a matplotlib colour."""
    if isinstance(c, (tuple, list)) and len(c) in (3, 4) and any(v > 1 for v in c):
        return tuple(v / 255.0 for v in c)
    return c


def _boxes_overlap(boxes, pad: float) -> bool:
    boxes = sorted(boxes, key=lambda b: b.x0)
    return any(a.x1 + pad > b.x0 for a, b in zip(boxes, boxes[1:]))


def tick_label_boxes(fig, axis) -> list:
    """Display-space bounding boxes of the visible, non-empty tick labels of ``axis`` (Agg renderer)."""
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in axis.get_ticklabels()
            if t.get_visible() and t.get_text()]


def fit_category_labels(fig, ax, labels: list[str], style: FigureStyle) -> None:
    """Categorical x tick labels that never overlap: horizontal if they fit, else vertical, and if
    even vertical labels are too close, every k-th one labelled (the others keep a minor tick).

    Decided on the drawn figure (the Agg renderer's text extents), so it holds for any font,
    size and number of layers."""
    names = [elide(s, style.label_chars) for s in labels]
    n = len(names)
    ax.set_xticks(range(n), names)
    pad = 0.15 * style.font * fig.dpi / 72.0
    fig.draw_without_rendering()
    if not _boxes_overlap(tick_label_boxes(fig, ax.xaxis), pad):
        return
    for t in ax.get_xticklabels():
        t.set_rotation(90)
        t.set_horizontalalignment("center")
        t.set_rotation_mode("default")
    fig.draw_without_rendering()
    step = 1
    while _boxes_overlap(tick_label_boxes(fig, ax.xaxis), pad) and step < n:
        boxes = tick_label_boxes(fig, ax.xaxis)
        thick = max(b.width for b in boxes) + pad
        spacing = (ax.transData.transform((1, 0))[0] - ax.transData.transform((0, 0))[0]) if n > 1 else thick
        step = max(step + 1, math.ceil(thick / max(spacing, 1e-6)))
        ax.set_xticks([i for i in range(n) if i % step == 0], [names[i] for i in range(n) if i % step == 0])
        ax.set_xticks([i for i in range(n) if i % step], minor=True)
        for t in ax.get_xticklabels():
            t.set_rotation(90)
            t.set_horizontalalignment("center")
        fig.draw_without_rendering()


def to_array(fig, dpi: float | None = None) -> np.ndarray:
    """The figure rasterised (Agg) as an (H, W, 3) uint8 array at ``dpi`` (default: the figure's)."""
    old = fig.dpi
    if dpi is not None:
        fig.set_dpi(dpi)
    try:
        fig.canvas.draw()
        return np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[:, :, :3])
    finally:
        if dpi is not None:
            fig.set_dpi(old)


def png_width_dpi(style: FigureStyle, width_px: int, width_in: float | None = None) -> float:
    """The dpi that makes a figure ``width_in`` (default: the style's width) exactly ``width_px`` pixels wide."""
    return (width_px + 0.25) / (width_in or style.width)


def write(fig, target: Path, fmt: str, style: FigureStyle, dpi: float | None = None) -> None:
    """Save ``fig`` to ``target`` (already a temporary path) as ``fmt``; deterministic bytes."""
    metadata = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None, "Producer": None},
                "svg": {"Date": None, "Creator": None}}[fmt]
    with print_context(style):
        fig.savefig(target, format=fmt, dpi=dpi if dpi is not None else style.png_dpi, metadata=metadata,
                    facecolor="white")


def check_target(path: str | Path, overwrite: bool = False) -> tuple[Path, str]:
    """The path and its format; a UserError for an unknown suffix or an existing file."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS + ("gif", "mp4"):
        raise UserError(f"cannot export to '{path.suffix or path.name}': use a .png, .svg or .pdf file name "
                        f"(.gif or .mp4 for an animation)")
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists: choose another name or allow overwriting")
    if not path.parent.is_dir():
        raise UserError(f"folder {path.parent} does not exist: choose an existing folder")
    return path, fmt


def save(fig, path: str | Path, style: FigureStyle | None = None, *, overwrite: bool = False,
         dpi: float | None = None) -> Path:
    """Write ``fig`` as PNG, SVG or PDF (by the suffix), atomically; a UserError for a bad target."""
    from workbench.runs import atomic_path

    style = style_or_default(style)
    path, fmt = check_target(path, overwrite)
    if fmt == "gif":
        raise UserError("a GIF is an animation: export the optimisation with Export animation")
    with atomic_path(path) as tmp:
        write(fig, tmp, fmt, style, dpi)
    return path


def save_run_figure(run, name: str, fig, style: FigureStyle | None = None) -> Path:
    """``images/<name>.png`` and ``images/<name>.pdf`` in ``run``'s folder; returns the PNG's path."""
    from workbench.runs import atomic_path

    style = style_or_default(style)
    folder = Path(run.path) / "images"
    for fmt in ("pdf", "png"):
        with atomic_path(folder / f"{name}.{fmt}") as tmp:
            write(fig, tmp, fmt, style)
    return folder / f"{name}.png"


def svg_bytes(fig, style: FigureStyle | None = None) -> bytes:
    import io

    buf = io.BytesIO()
    write(fig, buf, "svg", style_or_default(style))
    return buf.getvalue()


def png_bytes(fig, style: FigureStyle | None = None, dpi: float | None = None) -> bytes:
    import io

    buf = io.BytesIO()
    write(fig, buf, "png", style_or_default(style), dpi)
    return buf.getvalue()
