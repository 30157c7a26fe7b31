"""Light and dark themes (Fusion palettes), presentation fonts, and pyqtgraph colours."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QWidget

THEMES = ("light", "dark")

#: The window's dynamic property holding the presentation scale (1.0 outside presentation mode).
SCALE_PROPERTY = "presentationScale"

_COLORS = {
    "light": {"window": "#f3f4f6", "base": "#ffffff", "alt": "#f0f2f5", "text": "#1f2933", "button": "#e9ecef",
              "highlight": "#2c7fb8", "plot_bg": "#ffffff", "plot_fg": "#333333", "mid": "#c7ccd1"},
    "dark": {"window": "#23272e", "base": "#1b1e23", "alt": "#262a31", "text": "#e6e6e6", "button": "#2f343c",
             "highlight": "#4aa3df", "plot_bg": "#1b1e23", "plot_fg": "#d0d0d0", "mid": "#3a3f47"},
}


def colors(name: str) -> dict[str, str]:
    return _COLORS[name if name in _COLORS else "light"]


def apply_theme(app: QApplication, name: str) -> None:
    c = colors(name)
    app.setStyle("Fusion")
    pal = QPalette()
    role = QPalette.ColorRole
    for r, key in ((role.Window, "window"), (role.Base, "base"), (role.AlternateBase, "alt"), (role.Button, "button"),
                   (role.Highlight, "highlight"), (role.Mid, "mid")):
        pal.setColor(r, QColor(c[key]))
    for r in (role.WindowText, role.Text, role.ButtonText, role.ToolTipText):
        pal.setColor(r, QColor(c["text"]))
    pal.setColor(role.ToolTipBase, QColor(c["base"]))
    pal.setColor(role.HighlightedText, QColor("#ffffff"))
    pal.setColor(role.PlaceholderText, QColor("#8a939c"))
    pal.setColor(QPalette.ColorGroup.Disabled, role.Text, QColor("#8a939c"))
    pal.setColor(QPalette.ColorGroup.Disabled, role.ButtonText, QColor("#8a939c"))
    app.setPalette(pal)
    pg.setConfigOptions(background=c["plot_bg"], foreground=c["plot_fg"])
    app.setStyleSheet(
        f"QDockWidget::title {{ padding: 5px 8px; background: {c['button']}; font-weight: 600; }}"
        f"QMainWindow::separator {{ width: 4px; height: 4px; background: {c['mid']}; }}"
        "QStatusBar QLabel { padding: 0 6px; }"
    )


def style_plots(root: QWidget, name: str) -> None:
    """Recolour the pyqtgraph views already built under ``root``."""
    c = colors(name)
    for view in root.findChildren(pg.GraphicsView):
        view.setBackground(c["plot_bg"])
    for plot in root.findChildren(pg.PlotWidget):
        for axis in ("left", "bottom"):
            ax = plot.getAxis(axis)
            ax.setPen(c["plot_fg"])
            ax.setTextPen(c["plot_fg"])
        legend = plot.getPlotItem().legend
        if legend is not None:
            legend.setLabelTextColor(c["plot_fg"])
            for _sample, label in legend.items:  # setLabelTextColor alone repaints no label
                label.setText(label.text, color=c["plot_fg"])


def set_font_scale(app: QApplication, scale: float, base: QFont) -> None:
    font = QFont(base)
    font.setPointSizeF(base.pointSizeF() * scale)
    app.setFont(font)
    # with a style sheet set, widgets that exist keep their font: polishing them again hands it on
    sheet = app.styleSheet()
    if sheet:
        app.setStyleSheet("")
        app.setStyleSheet(sheet)


def scale_of(widget: QWidget) -> float:
    """The presentation scale of ``widget``'s window (1.0 outside presentation mode)."""
    value = widget.window().property(SCALE_PROPERTY) if widget is not None else None
    try:
        return float(value) if value else 1.0
    except (TypeError, ValueError):
        return 1.0


def _base(item, name: str, current: float) -> float:
    """The unscaled value of ``name`` on ``item``: recorded the first time the item is seen
    (items are made at scale 1: pens and sizes are literal numbers in the docks)."""
    key = f"_workbench_base_{name}"
    if not hasattr(item, key):
        setattr(item, key, current)
    return getattr(item, key)


def _scaled_pen(pen, base_width: float, scale: float):
    pen = pg.mkPen(pen)
    pen.setWidthF(base_width * scale)
    return pen


def scale_plot(plot: pg.PlotWidget, scale: float) -> None:
    """Plot text (ticks, axis labels, legend) and lines (curves, symbols, reference lines) at
    ``scale`` times their size; call again after adding items (presentation mode)."""
    app = QApplication.instance()
    item = plot.getPlotItem()
    for name in ("left", "bottom", "right", "top"):
        axis = item.getAxis(name) if name in item.axes else None
        if axis is None:
            continue
        font = QFont(app.font())
        axis.setStyle(tickFont=font, tickLength=int(round(_base(axis, "tick", axis.style["tickLength"]) * scale)))
        axis.setPen(_scaled_pen(axis.pen(), _base(axis, "pen", max(axis.pen().widthF(), 1.0)), scale))
        if axis.labelText:
            axis.setLabel(axis.labelText, axis.labelUnits, **{**axis.labelStyle, "font-size": f"{font.pointSizeF():g}pt"})
    legend = item.legend
    if legend is not None:
        size = _base(legend, "text", legend.opts.get("labelTextSize") or "9pt")
        if size.endswith("pt"):
            legend.setLabelTextSize(f"{float(size[:-2]) * scale:g}pt")
            for _sample, label in legend.items:
                label.setText(label.text)  # setLabelTextSize alone redraws nothing
            # a legend laid out beside the plot takes its entries' new size, once they have it
            legend.layout.activate()
            legend.updateSize()
            QTimer.singleShot(0, legend.updateSize)
    for data in item.listDataItems():
        if isinstance(data, pg.PlotDataItem):
            pen = data.opts.get("pen")
            if pen is not None:
                qpen = pg.mkPen(pen)
                if qpen.style() != Qt.PenStyle.NoPen:
                    data.setPen(_scaled_pen(qpen, _base(data, "width", max(qpen.widthF(), 1.0)), scale))
            if data.opts.get("symbol") is not None:
                data.setSymbolSize(_base(data, "symbol", data.opts.get("symbolSize") or 7) * scale)
    for child in item.vb.addedItems:
        if isinstance(child, pg.InfiniteLine):
            child.setPen(_scaled_pen(child.pen, _base(child, "width", max(child.pen.widthF(), 1.0)), scale))
            if getattr(child, "label", None) is not None:
                child.label.setFont(QFont(app.font()))


def scale_plots(root: QWidget, scale: float) -> None:
    """Every plot under ``root`` at ``scale`` (:func:`scale_plot`), and every caption drawn in a
    graphics view (the live view's and feature maps' tile labels) in the application's font."""
    for plot in root.findChildren(pg.PlotWidget):
        scale_plot(plot, scale)
    app = QApplication.instance()
    for view in root.findChildren(pg.GraphicsView):
        scene = view.scene()
        if scene is None:
            continue
        for child in scene.items():
            if isinstance(child, pg.TextItem):
                font = QFont(app.font())
                font.setPointSizeF(max(8.0, font.pointSizeF()))
                child.setFont(font)
