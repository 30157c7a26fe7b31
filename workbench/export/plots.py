"""Line plots for papers and slides (matplotlib, no Qt): the deformation, smoothness, studies'
and filter-GAN loss plots, and the window's dock plots, all drawn by :func:`line_figure`.

One line per :class:`Series`, with an optional shaded band (the papers' mean ± 2 std), dotted
reference levels (:class:`HLine`), categorical x labels (layer names: horizontal when they fit,
else vertical, else thinned — they never overlap) or a numeric x, and the legend above the
axes, where it cannot cover a curve. Sizes, fonts and line widths come from a
:class:`~workbench.export.style.FigureStyle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from workbench.export.style import FigureStyle, style_or_default


@dataclass
class Series:
    label: str
    y: Sequence[float]
    band: Sequence[float] | None = None   # half-width of the shaded band around y
    color: tuple[int, int, int] | str | None = None
    dashed: bool = False
    x: Sequence[float] | None = None      # this series' own x (numeric plots); default the plot's
    markers: bool | None = None           # default: markers on categorical plots with few points


@dataclass
class HLine:
    y: float
    label: str = ""
    color: tuple[int, int, int] | str = (0, 0, 0)
    vertical: bool = False                # a vertical line at x = y instead


@dataclass
class Fill:
    """A shaded region between two curves (a band that is not centred on a series)."""
    x: Sequence[float]
    low: Sequence[float]
    high: Sequence[float]
    color: tuple[int, int, int] | str = (128, 128, 128)
    alpha: float = 0.18


@dataclass
class Points:
    """Markers without a line (a scatter): one colour and size (points²) per point or for all."""
    x: Sequence[float]
    y: Sequence[float]
    label: str = ""
    colors: Sequence | None = None
    sizes: Sequence[float] | float | None = None
    edge: bool = False


def line_figure(series: Sequence[Series], *, x_labels: Sequence[str] | None = None, x: Sequence[float] | None = None,
                title: str = "", xlabel: str = "", ylabel: str = "", hlines: Sequence[HLine] = (),
                style: FigureStyle | None = None, y_range: tuple[float, float] | None = None,
                log_y: bool = False, height: float | None = None, fills: Sequence[Fill] = (),
                points: Sequence[Points] = (), x_range: tuple[float, float] | None = None,
                symlog_y: float | None = None):
    """A line plot as a matplotlib Figure. x is categorical (``x_labels``) or numeric (``x``).

    ``fills`` shade regions, ``points`` add scatters; ``x_range``/``y_range`` fix the view.
    ``log_y`` draws y on a log axis (values ≤ 0 left out), ``symlog_y`` (the linear threshold τ)
    on a symmetric log axis, as the Energies dock shows values of both signs."""
    from workbench.export.render import INK, colour, fit_category_labels, new_figure, print_context, wrap

    style = style_or_default(style)
    with print_context(style):
        fig = new_figure(style.width, height or style.plot_height, layout="constrained")
        pad = 0.005 * style.font
        fig.get_layout_engine().set(w_pad=pad, h_pad=pad)
        ax = fig.add_subplot()
        n = max((len(s.y) for s in series), default=0)
        xs_default = np.asarray(x if x is not None else np.arange(n), dtype=float)
        handles = []
        for s in series:
            y = np.asarray(s.y, dtype=float)
            xs = np.asarray(s.x, dtype=float) if s.x is not None else xs_default[:len(y)]
            if log_y:
                y = np.where(y > 0, y, np.nan)
            c = colour(s.color) if s.color is not None else None
            marker = s.markers if s.markers is not None else (x_labels is not None and len(y) <= 40)
            (h,) = ax.plot(xs, y, color=c, linestyle="--" if s.dashed else "-", marker="o" if marker else None,
                           label=s.label or None, zorder=3)
            if s.band is not None:
                band = np.nan_to_num(np.asarray(s.band, dtype=float))
                lo, hi = y - band, y + band
                if log_y:
                    lo = np.where(lo > 0, lo, np.nan)
                ax.fill_between(xs, lo, hi, color=h.get_color(), alpha=0.18, linewidth=0, zorder=2)
            if s.label:
                handles.append(h)
        for fill in fills:
            ax.fill_between(np.asarray(fill.x, float), np.asarray(fill.low, float), np.asarray(fill.high, float),
                            color=colour(fill.color), alpha=fill.alpha, linewidth=0, zorder=2)
        for p in points:
            colors = [colour(c) for c in p.colors] if p.colors is not None else None
            sizes = p.sizes if p.sizes is not None else (style.line * 2.5) ** 2
            h = ax.scatter(np.asarray(p.x, float), np.asarray(p.y, float), s=sizes, c=colors, zorder=3,
                           edgecolors=INK if p.edge else "none", linewidths=style.line * 0.6, label=p.label or None)
            if p.label:
                handles.append(h)
        for line in hlines:
            draw = ax.axvline if line.vertical else ax.axhline
            h = draw(line.y, color=colour(line.color), linestyle=":", linewidth=style.line * 1.1, zorder=2.5,
                     label=line.label or None)
            if line.label:
                handles.append(h)
        if log_y:
            ax.set_yscale("log")
        elif symlog_y is not None:
            ax.set_yscale("symlog", linthresh=float(symlog_y))
        ax.grid(True, axis="y")
        ax.set_axisbelow(True)
        if y_range is not None:
            ax.set_ylim(*y_range)
        if x_range is not None:
            ax.set_xlim(*x_range)
        if xlabel:
            ax.set_xlabel(xlabel)
        if len(handles) > 1:  # one curve: the title names it
            ncols = _legend_columns([h.get_label() for h in handles], style)
            ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=ncols, handlelength=2.2,
                      columnspacing=1.2, borderaxespad=0.3)
        if title:
            fig.suptitle(wrap(title, style.width * 0.96, style.font * 1.15))
        if x_labels is not None:
            if x_range is None:
                ax.set_xlim(-0.5, max(len(x_labels), 1) - 0.5)
            fit_category_labels(fig, ax, list(x_labels), style)
        _keep_axes_height(fig, ax, style, fixed=height is not None or style.slide)
        if ylabel:
            ax.set_ylabel(wrap(ylabel, ax.get_position().height * fig.get_figheight(), style.font))
        return fig


#: The least height in inches of a plot's axes on a column and a page: the figure grows instead
#: (vertical layer names, a legend of many curves and a long title take room).
_MIN_AXES = {"column": 1.45, "page": 2.1, "slide": 3.0}


def _keep_axes_height(fig, ax, style: FigureStyle, fixed: bool) -> None:
    if fixed:
        return
    fig.draw_without_rendering()
    for _ in range(3):
        have = ax.get_position().height * fig.get_figheight()
        want = _MIN_AXES[style.size]
        if have >= want - 0.01:
            return
        fig.set_figheight(fig.get_figheight() + (want - have))
        fig.draw_without_rendering()


def _legend_columns(labels: list[str], style: FigureStyle) -> int:
    from workbench.export.render import text_width

    width = max(text_width(s, style.font * 0.9) for s in labels) + 3.6 * style.font / 72.0
    return max(1, min(len(labels), int(style.width * 0.95 // width)))


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) float in [0, 1] or uint8 → (H, W, 3) uint8."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def draw_displacement(ax, box: tuple[float, float, float, float], shape: tuple[int, int], field: np.ndarray, *,
                      every: int | None = None, control: np.ndarray | None = None, style: FigureStyle | None = None) -> None:
    """Arrows of a dense field (H, W, 2, pixels x/y) over the tile at ``box`` (inches, as
    :class:`~workbench.export.figures.GridDrawing` gives them), as vector paths.

    Arrows go from the sampled source p + u(p) (tail) to p (tip), as in Ruderman et al. Fig. 2c;
    ``control`` (K, 2) marks the control points."""
    style = style_or_default(style)
    x0, y0, w, h = box
    rows, cols = shape
    sx, sy = w / cols, h / rows
    every = every or max(1, min(rows, cols) // 8)
    ys, xs = np.mgrid[every // 2:rows:every, every // 2:cols:every]
    u = np.asarray(field)[ys, xs]
    tip_x, tip_y = x0 + (xs + 0.5) * sx, y0 + h - (ys + 0.5) * sy
    tail_x, tail_y = x0 + (xs + u[..., 0] + 0.5) * sx, y0 + h - (ys + u[..., 1] + 0.5) * sy
    ax.quiver(tail_x, tail_y, tip_x - tail_x, tip_y - tail_y, angles="xy", scale_units="xy", scale=1,
              color="#E8222A", width=0.008 * style.line / ax.get_figure().get_figwidth(),
              headwidth=4, headlength=4, headaxislength=3.5, zorder=3)
    if control is not None:
        c = np.asarray(control, dtype=float)
        ax.scatter(x0 + (c[:, 0] + 0.5) * sx, y0 + h - (c[:, 1] + 0.5) * sy, s=(style.line * 4) ** 2,
                   facecolors="none", edgecolors="#2F7FE0", linewidths=style.line * 0.8, zorder=4)
