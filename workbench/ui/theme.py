"""Light and dark themes (Fusion palettes), presentation fonts, and pyqtgraph colours."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication, QWidget

THEMES = ("light", "dark")

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


def set_font_scale(app: QApplication, scale: float, base: QFont) -> None:
    font = QFont(base)
    font.setPointSizeF(base.pointSizeF() * scale)
    app.setFont(font)
