"""Energies dock: the energy of eq. 7 and its terms (loss, R_α, R_TV^β) per iteration, live."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QGraphicsItem, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from workbench.ui.docks import BaseDock
from workbench.ui.widgets.plot_export import choose_plot_file, export_plot

REDRAW_HZ = 2

TERMS = (("energy", "energy E(x)", "#2c7fb8"), ("loss", "data term ℓ", "#d95f0e"),
         ("R_alpha", "R_α (range)", "#31a354"), ("R_tv", "R_TV^β", "#756bb1"))


class EnergiesDock(BaseDock):
    title = "Energies"
    area = Qt.DockWidgetArea.BottomDockWidgetArea
    configuration = False

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        self.plot = pg.PlotWidget()
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "iteration")
        self.plot.setLabel("left", "value")
        self.legend = self.plot.addLegend(offset=(-10, 10), brush=pg.mkBrush(128, 128, 128, 40), colCount=2,
                                          labelTextSize="10pt", verSpacing=-4, horSpacing=16)
        # Long runs have thousands of points: draw at most ~one per pixel column, and only
        # what is in view (a full antialiased path per redraw cost the job 40 % of its speed).
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.setClipToView(True)
        self.curves = {key: self.plot.plot([], [], name=label, pen=pg.mkPen(color, width=2))
                       for key, label, color in TERMS}
        # The axes draw the grid, so their bounding boxes cover the curves and every curve
        # update repainted them (tick text: ~5 ms each). Cached as pixmaps, they are redrawn
        # only when their range changes, which during a job is rarely (see _follow_data).
        for item in (*(self.plot.getPlotItem().getAxis(n) for n in ("left", "bottom")), self.legend):
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.plot.getViewBox().sigRangeChangedManually.connect(self._on_user_range)
        layout.addWidget(self.plot, 1)
        row = QHBoxLayout()
        self.log_scale = QCheckBox("log scale")
        self.log_scale.setToolTip("the prior terms are orders of magnitude below the energy at first")
        self.log_scale.toggled.connect(self._on_log_scale_toggled)
        self.export_button = QPushButton("Export plot…")
        self.export_button.clicked.connect(self.choose_export)
        row.addWidget(self.log_scale)
        row.addStretch(1)
        row.addWidget(self.export_button)
        layout.addLayout(row)
        self.setWidget(body)
        self.history: dict[str, list[float]] = {key: [] for key, *_ in TERMS}
        self.iterations: list[int] = []
        self._total = 0
        self._following = False   # the view tracks the data in coarse steps while a job runs
        self._view_range: tuple | None = None
        # Redrawing a plot (axes, grid, text) costs milliseconds of GUI time: the curves are
        # redrawn at most REDRAW_HZ times a second, and once more when the job ends.
        self._dirty = False
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setInterval(int(1000 / REDRAW_HZ))
        self._redraw_timer.timeout.connect(self._redraw)
        session.job_started.connect(self._on_job_started)
        session.job_progressed.connect(self._on_job_progressed)
        session.job_stopped.connect(self._on_job_stopped)
        self.log_scale.setChecked(True)

    def _on_log_scale_toggled(self, on: bool) -> None:
        self.plot.setLogMode(x=False, y=on)
        self._dirty, self._view_range = True, None
        self._redraw()

    def _on_job_started(self, _config) -> None:
        self.iterations = []
        self.history = {key: [] for key in self.history}
        for curve in self.curves.values():
            curve.setData([], [])
        self._total, self._view_range, self._following = 0, None, True
        self.plot.disableAutoRange()
        self._redraw_timer.start()

    def _on_user_range(self, *_args) -> None:
        self._following = False

    def _on_job_progressed(self, progress) -> None:
        self._total = progress.total
        for iteration, values in progress.values:
            self.iterations.append(iteration)
            for key in self.history:
                self.history[key].append(float(values.get(key, np.nan)))
        self._dirty = self._dirty or bool(progress.values)

    def _on_job_stopped(self) -> None:
        self._redraw_timer.stop()
        self._redraw()
        if self._following:
            self._following = False
            self.plot.enableAutoRange()

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        x = np.asarray(self.iterations, dtype=np.float64)
        for key, curve in self.curves.items():
            y = np.asarray(self.history[key], dtype=np.float64)
            if self.log_scale.isChecked():
                y = np.where(y > 0, y, np.nan)
            curve.setData(x, y, connect="finite")
        if self._following:
            self._follow_data()

    def _follow_data(self) -> None:
        """While a job runs: x spans all its iterations, y the data rounded out to half decades
        (log scale) or half steps of its order of magnitude, so the axes change a few times per
        run instead of at every redraw (pyqtgraph's auto-range moved them every time)."""
        ys = np.concatenate([np.asarray(v, dtype=np.float64) for v in self.history.values()])
        log = self.log_scale.isChecked()
        ys = ys[np.isfinite(ys) & (ys > 0)] if log else ys[np.isfinite(ys)]
        if ys.size == 0:
            return
        lo, hi = (np.log10(ys.min()), np.log10(ys.max())) if log else (ys.min(), ys.max())
        step = 0.5 if log else 0.5 * 10 ** math.floor(math.log10(max(hi - lo, abs(hi), 1e-12)))
        lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
        if hi <= lo:
            hi = lo + step
        view = (max(self._total, self.iterations[-1] if self.iterations else 1), lo, hi, log)
        if view != self._view_range:
            self._view_range = view
            self.plot.setRange(xRange=(0, view[0]), yRange=(lo, hi), padding=0.02)

    def choose_export(self) -> None:
        path = choose_plot_file(self, "energies.png")
        if path:
            self.export(path, overwrite=True)  # the file dialog has asked already

    def export(self, path: str, width: int = 1600, overwrite: bool = False) -> str | None:
        """Save the plot as PNG (``width`` pixels) or SVG; asks before overwriting a file."""
        return export_plot(self, self.plot, self.session, path, width, overwrite)
