"""The per-layer plot the Deformation and Smoothness docks share (Ruderman et al. 2018, Figs. 2-4):
one curve per measured model over the layers' names, optionally with a ±2 std band, and optionally
a dotted reference level (a fresh initialization's)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from workbench.ui import theme

#: One colour per measured model or setting, in the order they were added.
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def layer_ticks(names: list[str], most: int = 14) -> list[list[tuple[int, str]]]:
    """Axis ticks: every layer as a tick, at most ``most`` of them labelled (the rest unlabelled)."""
    step = max(1, -(-len(names) // most))
    major = [(i, n) for i, n in enumerate(names) if i % step == 0]
    minor = [(i, "") for i in range(len(names)) if i % step]
    return [major, minor]


class LayerPlot(pg.PlotWidget):
    """Curves over a model's layers: :meth:`draw` replaces what is shown; ``drawn`` are the items
    it drew (a curve, and for a curve with a spread its band and the band's two edges)."""

    def __init__(self, x_label: str, y_label: str, symbol_size: int = 5, parent=None) -> None:
        super().__init__(parent)
        self.symbol_size = symbol_size
        self.showGrid(x=False, y=True, alpha=0.25)
        self.setLabel("bottom", x_label)
        self.setLabel("left", y_label)
        self.getAxis("left").enableAutoSIPrefix(False)
        self.legend = self.addLegend(offset=(10, 10))
        self.drawn: list[object] = []

    def draw(self, names: Sequence[str], curves: Sequence[tuple[str, np.ndarray, np.ndarray | None]],
             level: tuple[float, str] | None = None) -> None:
        """Show ``curves`` — (label, y, std or None) each, y[i] at layer ``names[i]`` (NaN: not
        measured) — in :data:`COLORS` order, a curve with a ``std`` inside its ±2 std band, and
        ``level`` (value, label) as a dotted horizontal line; no curves clear the plot."""
        for item in self.drawn:
            self.removeItem(item)
        self.drawn = []
        self.legend.clear()
        if not curves:
            return
        self.getAxis("bottom").setTicks(layer_ticks(list(names)))
        self.setXRange(-0.5, len(names) - 0.5, padding=0)  # room for the first and last names
        for k, (label, y, std) in enumerate(curves):
            x = np.arange(len(y), dtype=float)
            color = pg.mkColor(COLORS[k % len(COLORS)])
            if std is not None:
                upper = pg.PlotDataItem(x, y + 2 * std, pen=pg.mkPen(None))
                lower = pg.PlotDataItem(x, y - 2 * std, pen=pg.mkPen(None))
                fill_color = pg.mkColor(color)
                fill_color.setAlpha(60)
                band = pg.FillBetweenItem(upper, lower, brush=pg.mkBrush(fill_color))
            line = self.plot(x, y, pen=pg.mkPen(color, width=2), symbol="o", symbolSize=self.symbol_size,
                             symbolBrush=color, name=label)
            if std is not None:
                for item in (upper, lower, band):
                    self.addItem(item)
                self.drawn += [upper, lower, band]
            self.drawn.append(line)
        if level is not None:
            value, text = level
            ink = pg.getConfigOption("foreground")  # black on a light theme, light grey on a dark one
            line = pg.InfiniteLine(pos=value, angle=0, pen=pg.mkPen(ink, width=2, style=Qt.PenStyle.DotLine),
                                   label=text,
                                   labelOpts={"position": 0.85, "color": ink, "anchors": [(1, 0), (1, 0)]})  # below: in view
            self.addItem(line)
            self.drawn.append(line)
        theme.scale_plot(self, theme.scale_of(self))  # the new lines at the window's scale
