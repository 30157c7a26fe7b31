"""Exporting a dock's plot, the same way from every dock: through the figure code of the CLI.

A dock's plot is drawn for print by :mod:`workbench.export` (matplotlib), never grabbed from
the screen: a dock gives its own figure (``figure(plot, style)``): the Deformation and Smoothness
docks' results go through the very functions the ``deform`` and smoothness jobs use
(:func:`~workbench.deformation.job.sensitivity_plot`,
:func:`~workbench.deformation.job.smoothness_plot_of_runs`), the filter-GAN MDS through
:func:`~workbench.filtergan.plots.mds_figure`; any other plot (the energies, the losses) is
read from its pyqtgraph items — curves (in the colours shown, a light one darkened for paper),
bands, levels, axis labels, layer ticks, log scale, the zoomed range — and drawn by :func:`~workbench.export.plots.line_figure`. So a figure is
PDF/SVG with real text, or PNG at a chosen resolution, in print colours whatever the
window's theme, at a paper column, a page width or a slide (the size remembered in the
settings, chosen in the export dialogs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtWidgets import QComboBox, QFileDialog, QFormLayout, QLabel, QMessageBox, QWidget

from workbench.errors import UserError
from workbench.export.style import MAX_DPI, SIZE_LABELS, SIZES, FigureStyle
from workbench.ui.widgets.number_box import spin_box

PLOT_FILTER = "PNG (*.png);;PDF (*.pdf);;SVG (*.svg)"
_CHOSEN = "workbench_export_choice"  # the dynamic property: the path just chosen in the dialog


# --- the remembered style -------------------------------------------------------------------

def remembered_style(settings) -> FigureStyle:
    """The figure size and PNG resolution last chosen in an export dialog (a page at 300 dpi at first)."""
    size = str(settings.value("export/figure_size", "page")) if settings is not None else "page"
    try:
        dpi = int(settings.value("export/figure_dpi", 0) or 0) if settings is not None else 0
    except (TypeError, ValueError):
        dpi = 0
    try:
        return FigureStyle(size if size in SIZES else "page", dpi or None)
    except UserError:
        return FigureStyle(size if size in SIZES else "page")


def remember_style(settings, style: FigureStyle) -> None:
    if settings is not None:
        settings.setValue("export/figure_size", style.size)
        settings.setValue("export/figure_dpi", style.png_dpi)


class FigureOptions(QWidget):
    """The size (column, page, slide) and the PNG resolution of a figure: part of every export dialog."""

    def __init__(self, style: FigureStyle, parent=None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.size = QComboBox()
        for key in SIZES:
            self.size.addItem(SIZE_LABELS[key], key)
        self.size.setCurrentIndex(SIZES.index(style.size))
        self.size.setToolTip("the width the figure is made for; fonts and lines are sized to read at that width")
        self.dpi = spin_box(20, MAX_DPI, style.png_dpi, suffix=" dpi",
                            tip="resolution of a PNG (PDF and SVG are vector: text and lines scale without limit)")
        form.addRow("Figure size", self.size)
        form.addRow("PNG resolution", self.dpi)

    def style(self) -> FigureStyle:
        return FigureStyle(self.size.currentData(), self.dpi.value())


def choose_plot_file(parent: QWidget, default_name: str, title: str = "Export plot") -> str | None:
    """Ask for a PNG/PDF/SVG path and the figure's size and resolution (remembered); the dialog
    confirms overwriting. The next :func:`export_plot` of that path by ``parent`` uses the choice."""
    session = getattr(parent, "session", None)
    settings = getattr(session, "settings", None)
    workspace = getattr(session, "workspace", None)  # the dialog opens in the workspace, not the cwd or home
    start = str(Path(workspace) / default_name) if workspace is not None and not Path(default_name).is_absolute() \
        else default_name
    dialog = QFileDialog(parent, title, start, PLOT_FILTER)
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)  # a native dialog takes no extra fields
    options = FigureOptions(remembered_style(settings))
    layout = dialog.layout()
    if layout is not None and hasattr(layout, "rowCount"):
        layout.addWidget(QLabel("Figure:"), layout.rowCount(), 0)
        layout.addWidget(options, layout.rowCount() - 1, 1, 1, -1)
    if not dialog.exec() or not dialog.selectedFiles():
        return None
    path = dialog.selectedFiles()[0]
    if not Path(path).suffix:
        path += "." + dialog.selectedNameFilter().split("*.")[-1].rstrip(")")
    remember_style(settings, options.style())
    parent.setProperty(_CHOSEN, path)
    return path


# --- the figure of a plot -------------------------------------------------------------------

def plot_recipe(parent, plot) -> Callable[[FigureStyle | None], Any]:
    """How to draw ``plot`` (a PlotWidget of ``parent``) for print, read now on the GUI thread: the
    dock's own ``figure(plot)`` (a job's figure where the dock holds a job's results), else the plot
    read item by item (:func:`plot_contents`). The returned ``draw(style)`` touches no Qt object."""
    own = getattr(parent, "figure", None)
    return own(plot) if callable(own) else plot_contents(plot)


def plot_figure(parent, plot, style: FigureStyle | None = None):
    """The matplotlib Figure of ``plot`` (a PlotWidget of ``parent``) at ``style`` (:func:`plot_recipe`)."""
    return plot_recipe(parent, plot)(style)


def _qcolor(qcolor) -> tuple[float, float, float] | str:
    """A curve's colour for print: as drawn, unless it is a light colour meant for a dark background."""
    from workbench.export.render import INK

    r, g, b, _ = qcolor.getRgbF()
    if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.78:
        return INK
    return (r, g, b)


def _pen(item):
    import pyqtgraph as pg

    pen = item.opts.get("pen") if hasattr(item, "opts") else getattr(item, "pen", None)
    if callable(pen):
        pen = pen()
    return pg.mkPen(pen) if pen is not None else None


def figure_from_plot(plot, style: FigureStyle | None = None, title: str | None = None):
    """A pyqtgraph PlotWidget drawn for print by :func:`~workbench.export.plots.line_figure` (see
    :func:`plot_contents`)."""
    return plot_contents(plot, title)(style)


def plot_contents(plot, title: str | None = None) -> Callable[[FigureStyle | None], Any]:
    """What a pyqtgraph PlotWidget shows, read now (on the GUI thread): its visible curves (with
    their names, colours, dashes and markers), bands, horizontal and vertical levels and scatters;
    its axis labels, named ticks and log scale; the range the user zoomed to. Returns the function
    that draws it for print at a style (:func:`~workbench.export.plots.line_figure`), which touches
    no Qt object: a worker may call it."""
    import pyqtgraph as pg
    from PySide6.QtCore import Qt

    from workbench.export.plots import Fill, HLine, Points, Series, line_figure

    item = plot.getPlotItem()
    view = item.getViewBox()
    series, fills, lines, points = [], [], [], []
    band_curves = set()
    for child in item.items:
        if isinstance(child, pg.FillBetweenItem) and child.isVisible() and child.curves:
            a, b = child.curves
            xa, ya = _curve_data(a)
            xb, yb = _curve_data(b)
            if xa is not None and xb is not None and len(xa) == len(xb):
                fills.append(Fill(xa, np.minimum(ya, yb), np.maximum(ya, yb), _qcolor(child.brush().color()),
                                  alpha=max(0.12, child.brush().color().alphaF() * 0.8)))
            band_curves.update({id(a), id(b), id(getattr(a, "curve", None)), id(getattr(b, "curve", None))})
    log_y = bool(item.getAxis("left").logMode)
    # an axis that labels real values of a transformed view (the Energies dock's log scale): the
    # figure draws the real values on the same kind of axis (the caller hands it the real values)
    axis = item.getAxis("left")
    real_log = bool(getattr(axis, "log10", False))
    symlog_y = getattr(axis, "tau", None) if not real_log else None
    for child in item.items:
        if not child.isVisible() or id(child) in band_curves:
            continue
        if isinstance(child, pg.PlotDataItem):
            x, y = _curve_data(child)
            pen = _pen(child)
            if x is None or len(x) == 0:
                continue
            if pen is None or pen.style() == Qt.PenStyle.NoPen:
                if child.opts.get("symbol") is not None:
                    points.append(Points(x, y, child.name() or ""))
                continue
            series.append(Series(child.name() or "", y, color=_qcolor(pen.color()), x=x,
                                 dashed=pen.style() in (Qt.PenStyle.DashLine, Qt.PenStyle.DotLine,
                                                        Qt.PenStyle.DashDotLine),
                                 markers=child.opts.get("symbol") is not None))
        elif isinstance(child, pg.InfiniteLine):
            label = child.label.format if getattr(child, "label", None) is not None else ""
            value = float(child.value())
            vertical = abs(child.angle % 180 - 90) < 1e-6
            lines.append(HLine(10 ** value if log_y and not vertical else value, str(label or ""),
                               _qcolor(child.pen.color()), vertical=vertical))
        elif isinstance(child, pg.ScatterPlotItem):
            data = child.data
            if len(data):
                colors = [_qcolor(pg.mkBrush(b).color()) for b in data["brush"]]
                points.append(Points(data["x"], data["y"], colors=colors, sizes=(np.asarray(data["size"], float) * 0.55) ** 2,
                                     edge=True))
    bottom = item.getAxis("bottom")
    x_labels = None
    levels = getattr(bottom, "_tickLevels", None)
    if levels:
        named = {int(round(v)): s for level in levels for v, s in level if s}
        if named:
            n = max(max(named) + 1, max((len(s.y) for s in series), default=0))
            x_labels = [named.get(i, "") for i in range(n)]
    auto = view.state.get("autoRange", [True, True])
    (x0, x1), (y0, y1) = view.viewRange()
    x_range = None if auto[0] else (x0, x1)
    y_range = None if auto[1] else ((10 ** y0, 10 ** y1) if log_y else (y0, y1))
    options = dict(x_labels=x_labels, title=title if title is not None else _text(item.titleLabel.text),
                   xlabel=_text(bottom.labelText), ylabel=_text(item.getAxis("left").labelText),
                   hlines=lines, fills=fills, points=points, log_y=log_y or real_log,
                   x_range=x_range, y_range=y_range, symlog_y=symlog_y)

    def draw(style: FigureStyle | None = None):
        return line_figure(series, style=style, **options)

    return draw


def _curve_data(curve):
    """The data of a curve as given (not log-transformed for display)."""
    x = getattr(curve, "xData", None)
    y = getattr(curve, "yData", None)
    if x is None or y is None:
        x, y = curve.getData() if hasattr(curve, "getData") else (None, None)
    if x is None or y is None:
        return None, None
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def _text(html: str | None) -> str:
    import re

    return re.sub(r"<[^>]+>", "", html or "").replace("&nbsp;", " ").strip()


# --- exporting and copying ------------------------------------------------------------------

def export_plot(parent: QWidget, plot, session, path: str | Path, width: int | None = 1600, overwrite: bool = False,
                what: str = "plot", style: FigureStyle | None = None, runner=None) -> str | None:
    """Save ``plot`` (a PlotWidget of the dock ``parent``) as PNG, PDF or SVG; asks before overwriting.

    The size is ``style``, else the one remembered from the export dialogs. A PNG is at that
    style's resolution when the path was just chosen in :func:`choose_plot_file`; otherwise
    (a call from code) it is ``width`` pixels wide. Returns the path written, or None (a bad
    suffix, an unwritable folder, or the user kept the existing file).

    With ``runner`` (a :class:`~workbench.ui.worker.JobRunner`; the window's buttons pass the
    session's ``plot_exporter``) only the plot's contents are read here: the figure is drawn and
    written on the runner's worker, the path is returned once it has started and the log says
    when it is written (the session's handler), so the GUI thread neither draws nor writes.
    """
    from workbench.export.render import png_width_dpi, save

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".png", ".svg", ".pdf"):
        session.log(f"cannot export a plot to '{suffix or target.name}': use .png, .pdf or .svg", "error")
        return None
    chosen = parent.property(_CHOSEN) == str(path)
    parent.setProperty(_CHOSEN, None)
    if target.exists() and not overwrite:
        answer = QMessageBox.question(parent, "Overwrite?", f"{target} exists. Overwrite it?")
        if answer != QMessageBox.StandardButton.Yes:
            return None
    style = style or remembered_style(getattr(session, "settings", None))
    try:
        draw = plot_recipe(parent, plot)
    except UserError as exc:
        session.log(str(exc), "error")
        return None

    def write(cancel=None) -> tuple[str, str]:
        fig = draw(style)
        dpi = None
        if suffix == ".png" and width and not chosen:
            dpi = png_width_dpi(style, width, fig.get_figwidth())
        save(fig, target, style, overwrite=True, dpi=dpi)
        return what, str(target)

    if runner is not None:
        if runner.running:
            session.log(f"another plot is being exported: export {what} again when it is written", "warning")
            return None
        runner.start(write)
        return str(target)
    try:
        write()
    except UserError as exc:
        session.log(str(exc), "error")
        return None
    session.log(f"{what} exported to {target}")
    return str(target)


def copy_figure(fig, style: FigureStyle | None = None) -> None:
    """Put ``fig`` on the clipboard as an image (PNG, for slides and documents) and as SVG (for
    vector editors: Inkscape, LibreOffice, Illustrator paste it with editable text)."""
    put_on_clipboard(*figure_bytes(fig, style))


def figure_bytes(fig, style: FigureStyle | None = None) -> tuple[bytes, bytes]:
    """``fig`` rendered as PNG and as SVG (matplotlib only: a worker may call it)."""
    from workbench.export.render import png_bytes, svg_bytes

    return png_bytes(fig, style), svg_bytes(fig, style)


def put_on_clipboard(png: bytes, svg: bytes) -> None:
    """A rendered figure onto the clipboard as an image, PNG and SVG (on the GUI thread)."""
    from PySide6.QtCore import QMimeData
    from PySide6.QtGui import QGuiApplication, QImage

    data = QMimeData()
    data.setImageData(QImage.fromData(png, "PNG"))
    data.setData("image/png", png)
    data.setData("image/svg+xml", svg)
    QGuiApplication.clipboard().setMimeData(data)
