"""Energies dock: the energy of eq. 7 and its terms per iteration, live, and a reopened run's.

E(x) = R_α(x) + R_TV^β(x) + C·ℓ(x): the data term is drawn as C·ℓ (the Step value ``data``), so
the three terms visibly sum to E. Activation maximisation and caricature minimise −⟨Φ, Φ0⟩/Z:
their ℓ and E go negative, which a log axis cannot show. The "log scale" is therefore a
**symmetric log** (symlog): y ↦ sign(y)·log10(1 + |y|/τ), logarithmic for |y| ≫ τ, linear
through 0, defined for every finite value, so no curve leaves the plot whatever its sign. τ is
a power of ten, :data:`SYMLOG_DECADES` decades under the largest |value| shown (the prior terms
start 5–7 decades under the energy). The axis labels the real values (…, −10, −1, 0, 1, 10, …).

The legend sits beside the plot, outside the data area, in the theme's text colour; clicking
a legend entry hides or shows its curve. Restarts: the mean of the restarts (the default),
one restart's four terms, or every restart's E (the Steps carry ``<term>@<k>`` per restart).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker, Qt, QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGraphicsItem, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from workbench.ui.docks import BaseDock
from workbench.ui.widgets.plot_export import choose_plot_file, export_plot

REDRAW_HZ = 2

#: The curves of one set of values (the restarts' mean, or one restart's with ``@k``).
TERMS = (("energy", "E(x)", "#2c7fb8"), ("data", "C·ℓ (data)", "#d95f0e"),
         ("R_alpha", "R_α (range)", "#31a354"), ("R_tv", "R_TV^β (variation)", "#756bb1"))

#: Decades of logarithmic resolution under the largest |value| on the symlog axis, at most.
SYMLOG_DECADES = 5

#: Colours of the restarts' curves (matplotlib's tab10, readable on light and dark plots).
RESTART_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf")


def symlog(y: np.ndarray, tau: float) -> np.ndarray:
    """sign(y)·log10(1 + |y|/τ): monotone, odd, finite for finite y (NaN stays NaN)."""
    y = np.asarray(y, dtype=np.float64)
    return np.sign(y) * np.log10(1.0 + np.abs(y) / tau)


def symexp(t: np.ndarray | float, tau: float) -> np.ndarray:
    """The inverse of :func:`symlog`."""
    t = np.asarray(t, dtype=np.float64)
    return np.sign(t) * tau * (10.0 ** np.abs(t) - 1.0)


def symlog_threshold(values: np.ndarray) -> float:
    """τ for ``values``: the power of ten at or under the smallest nonzero |value|, but at most
    :data:`SYMLOG_DECADES` decades under the largest (the rest is drawn linearly through 0)."""
    values = np.abs(np.asarray(values, dtype=np.float64))
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        return 1.0
    top = math.floor(math.log10(float(values.max())))
    return 10.0 ** max(top - SYMLOG_DECADES, math.floor(math.log10(float(values.min()))))


def _number(y: float) -> str:
    text = f"{y:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return "0" if text in ("-0", "0") else text


class SymlogAxis(pg.AxisItem):
    """A value axis that labels real values while the view holds :func:`symlog` of them
    (``tau`` set), or a plain linear axis (``tau`` None)."""

    def __init__(self, orientation: str = "left", **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.tau: float | None = None
        self.log10 = False  # the view holds log10 of positive values: decades, no 0
        self._labelled: set[float] = set()
        self.enableAutoSIPrefix(False)

    def set_tau(self, tau: float | None) -> None:
        if tau != self.tau:
            self.tau = tau
            self.picture = None
            self.update()

    def set_log10(self, on: bool) -> None:
        if on != self.log10:
            self.log10 = on
            self.picture = None
            self.update()

    def _decade_ticks(self, minVal: float, maxVal: float, size: float):
        """Every decade inside the view is a tick; labelled ones at least 22 px apart, the others
        unlabelled, so the labels never jump over a decade without a mark."""
        per_unit = size / (maxVal - minVal)
        step = max(1, math.ceil(22.0 / max(per_unit, 1e-9)))
        decades = list(range(math.ceil(minVal - 1e-9), math.floor(maxVal + 1e-9) + 1))
        if len(decades) < 2:  # zoomed in under a decade: linear ticks of the real values
            levels = pg.AxisItem.tickValues(self, 10.0 ** minVal, 10.0 ** maxVal, size)
            values = [(spacing, [math.log10(v) for v in vals if v > 0]) for spacing, vals in levels]
            self._labelled = {round(v, 9) for _spacing, vals in values for v in vals}
            return values
        majors = [float(k) for k in decades if k % step == 0]
        minors = [float(k) for k in decades if k % step]
        if per_unit >= 60:
            minors += [k + math.log10(m) for k in range(decades[0] - 1, decades[-1] + 1) for m in (2.0, 5.0)
                       if minVal <= k + math.log10(m) <= maxVal]
        self._labelled = {round(v, 9) for v in majors}
        return [(1.0, majors), (0.5, sorted(minors))]

    def tickValues(self, minVal: float, maxVal: float, size: float):
        if self.log10 and math.isfinite(minVal) and math.isfinite(maxVal) and maxVal > minVal:
            return self._decade_ticks(minVal, maxVal, size)
        tau = self.tau
        if tau is None or not (math.isfinite(minVal) and math.isfinite(maxVal)) or maxVal <= minVal:
            return super().tickValues(minVal, maxVal, size)
        lo, hi = float(symexp(minVal, tau)), float(symexp(maxVal, tau))
        top = max(abs(lo), abs(hi))
        decades = [tau * 10.0 ** k for k in range(0, max(1, math.ceil(math.log10(max(top, tau) / tau)) + 1))]
        per_unit = size / (maxVal - minVal)  # pixels per decade, far from 0
        step = max(1, math.ceil(22.0 / max(per_unit, 1e-9)))  # a label every 22 px at least
        majors = [0.0] if minVal <= 0.0 <= maxVal else []
        for k, d in enumerate(decades):
            if k % step or (k == 0 and majors and math.log10(2.0) * per_unit < 22.0):
                continue  # thinned out, or τ itself too close to the 0 tick
            majors += [t for t in (float(symlog(s * d, tau)) for s in (1.0, -1.0)) if minVal <= t <= maxVal]
        majors.sort()
        if len(majors) < 3:
            # zoomed in under a decade: linear ticks of the real values, placed on the symlog scale
            levels = pg.AxisItem.tickValues(self, lo, hi, size)
            return [(spacing, [float(symlog(y, tau)) for y in values]) for spacing, values in levels]
        minors = []
        if per_unit >= 60:
            for d in decades:
                for m in (2.0, 5.0):
                    for s in (1.0, -1.0):
                        t = float(symlog(s * m * d, tau))
                        if minVal <= t <= maxVal:
                            minors.append(t)
        return [(1.0, majors), (0.5, sorted(minors))]

    def tickStrings(self, values, scale, spacing):
        if self.log10:
            return [_number(10.0 ** v) if round(v, 9) in self._labelled else "" for v in values]
        if self.tau is None:
            return super().tickStrings(values, scale, spacing)
        return [_number(float(symexp(v, self.tau))) for v in values]


class SideLegend(pg.LegendItem):
    """A legend laid out beside the plot's data area (a cell of the PlotItem's grid), never
    over the curves: it takes the size of its entries instead of placing itself."""

    def updateSize(self) -> None:
        height = width = 0.0
        for row in range(self.layout.rowCount()):
            row_height = col_width = 0.0
            for col in range(self.layout.columnCount()):
                item = self.layout.itemAt(row, col)
                if item:
                    col_width += item.width() + 3
                    row_height = max(row_height, item.height())
            width, height = max(width, col_width), height + row_height
        width += 8  # a label's measured width is a little short of its painted text
        self.setMinimumSize(width, height)
        self.setMaximumSize(width, height)
        self.updateGeometry()


class EnergiesDock(BaseDock):
    title = "Energies"
    area = Qt.DockWidgetArea.BottomDockWidgetArea
    configuration = False

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        self.axis = SymlogAxis("left")
        self.plot = pg.PlotWidget(axisItems={"left": self.axis})
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "iteration")
        self.plot.setLabel("left", "value")
        item = self.plot.getPlotItem()
        self.legend = SideLegend(labelTextSize="10pt", frame=False, verSpacing=-4, horSpacing=6)
        item.layout.addItem(self.legend, 2, 3)
        item.layout.setAlignment(self.legend, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        item.legend = self.legend  # named curves join it; theme.style_plots recolours its text
        # Long runs have thousands of points: draw at most ~one per pixel column, and only
        # what is in view (a full antialiased path per redraw cost the job 40 % of its speed).
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.setClipToView(True)
        self.curves: dict[str, pg.PlotDataItem] = {}  # history key → its curve, for the chosen view
        # The axes draw the grid, so their bounding boxes cover the curves and every curve
        # update repainted them (tick text: ~5 ms each). Cached as pixmaps, they are redrawn
        # only when their range changes, which during a job is rarely (see _follow_data).
        for cached in (*(item.getAxis(n) for n in ("left", "bottom")), self.legend):
            cached.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.plot.getViewBox().sigRangeChangedManually.connect(self._on_user_range)
        layout.addWidget(self.plot, 1)
        row = QHBoxLayout()
        self.log_scale = QCheckBox("log scale")
        self.log_scale.setToolTip("symmetric log: sign(y)·log10(1 + |y|/τ), so negative energies (maximisation,\n"
                                  "caricature) stay on the plot; the prior terms start decades under the energy")
        self.log_scale.toggled.connect(self._on_log_scale_toggled)
        self.restart_view = QComboBox()
        self.restart_view.setToolTip("the mean of the restarts, one restart's terms, or every restart's energy")
        self.restart_view.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.restart_view.setMinimumContentsLength(16)  # "mean of restarts" whole
        self.restart_view.currentIndexChanged.connect(self._on_view_changed)
        self.note = QLabel("")
        self.note.setStyleSheet("color: gray")
        self.note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.export_button = QPushButton("Export plot…")
        self.export_button.clicked.connect(self.choose_export)
        row.addWidget(self.log_scale)
        row.addWidget(self.restart_view)
        row.addWidget(self.note, 1)
        row.addWidget(self.export_button)
        layout.addLayout(row)
        self.setWidget(body)
        #: every value the job reported, per key ("energy", "data", "R_tv@2", ...), one per iteration
        self.history: dict[str, list[float]] = {}
        self.iterations: list[int] = []
        self.restarts = 0           # restarts with their own values in the history
        self.tau: float | None = None  # the symlog threshold in use (None: linear, or log10)
        self.log10 = False             # the log scale of positive values: the view holds log10(y)
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
        reopened = getattr(session, "run_reopened", None)
        if reopened is not None:
            reopened.connect(self._on_run_reopened)
        self._set_restarts(0)
        self.log_scale.setChecked(True)
        self._show_tick_values(False)  # no run yet

    # --- what is shown ---------------------------------------------------------------------
    def _set_restarts(self, count: int) -> None:
        """Offer the mean, each of ``count`` restarts and all of them in the restart box."""
        self.restarts = count
        current = self.restart_view.currentData()
        with QSignalBlocker(self.restart_view):
            self.restart_view.clear()
            self.restart_view.addItem("mean of restarts" if count else "energies", "mean")
            for k in range(1, count + 1):
                self.restart_view.addItem(f"restart {k}", f"restart@{k}")
            if count:
                self.restart_view.addItem("every restart: E", "every")
            index = self.restart_view.findData(current) if current is not None else 0
            self.restart_view.setCurrentIndex(max(index, 0))
            self.restart_view.setEnabled(count > 0)
        self._rebuild_curves()

    def show_restart(self, k: int | None) -> None:
        """Show restart ``k``'s terms (from 1), every restart's E (``k`` 0) or the mean (None)."""
        data = "mean" if k is None else "every" if k == 0 else f"restart@{int(k)}"
        index = self.restart_view.findData(data)
        if index < 0:
            raise ValueError(f"no such restart view: {k} ({self.restarts} restart(s) recorded one by one)")
        self.restart_view.setCurrentIndex(index)

    def _curve_specs(self) -> list[tuple[str, str, object]]:
        """(history key, legend label, pen) of each curve of the chosen view."""
        mode = self.restart_view.currentData() or "mean"
        if mode == "every":
            specs = [(f"energy@{j}", f"E, restart {j}", pg.mkPen(RESTART_COLORS[(j - 1) % len(RESTART_COLORS)], width=1.5))
                     for j in range(1, self.restarts + 1)]
            return specs + [("energy", "E, mean", pg.mkPen("#808080", width=2.5, style=Qt.PenStyle.DashLine))]
        suffix = "@" + mode.split("@")[1] if mode.startswith("restart@") else ""
        specs = []
        for key, label, color in TERMS:
            if key == "data" and "data" not in self.history and "loss" in self.history and not suffix:
                key, label = "loss", "ℓ (data)"  # values from before C·ℓ was reported
            specs.append((key + suffix, label, pg.mkPen(color, width=2)))
        return specs

    def _rebuild_curves(self) -> None:
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.curves = {key: self.plot.plot([], [], name=label, pen=pen) for key, label, pen in self._curve_specs()}
        self._dirty, self._view_range = True, None
        self._redraw()

    def _on_view_changed(self, _index: int) -> None:
        self._rebuild_curves()
        if not self._following:
            self.plot.enableAutoRange()

    def _on_log_scale_toggled(self, _on: bool) -> None:
        self._dirty, self._view_range = True, None
        self._redraw()
        if not self._following:
            self.plot.enableAutoRange()

    # --- a job's values ----------------------------------------------------------------------
    def _show_tick_values(self, on: bool) -> None:
        """Tick numbers only with curves to read them on: an empty plot's made-up range (0.2 … 0.8
        iterations, 2 … 8 on a log axis) reads as data."""
        item = self.plot.getPlotItem()
        for name in ("left", "bottom"):
            axis = item.getAxis(name)
            if axis.style.get("showValues", True) != on:
                axis.setStyle(showValues=on)

    def _clear(self) -> None:
        self.iterations = []
        self.history = {}
        self._total, self._view_range = 0, None
        self.note.setText("")

    def _on_job_started(self, _config) -> None:
        self._clear()
        self._following = True
        self._set_restarts(0)
        self.plot.disableAutoRange()
        self._redraw_timer.start()

    def _on_user_range(self, *_args) -> None:
        self._following = False

    def _on_job_progressed(self, progress) -> None:
        self._total = progress.total
        self._append(progress.values)
        self._dirty = self._dirty or bool(progress.values)

    def _append(self, steps) -> None:
        history, iterations = self.history, self.iterations
        for iteration, values in steps:
            iterations.append(iteration)
            n = len(iterations)
            for key, value in values.items():
                column = history.get(key)
                if column is None:
                    column = history[key] = [math.nan] * (n - 1)
                column.append(float(value))
            for column in history.values():
                if len(column) < n:
                    column.append(math.nan)
        count = _restart_count(history)
        if count != self.restarts:
            self._set_restarts(count)

    def _on_job_stopped(self) -> None:
        self._redraw_timer.stop()
        self._redraw()
        if self._following:
            self._following = False
            self.plot.enableAutoRange()

    def _on_run_reopened(self, reopened) -> None:
        """A reopened run's energy curves (its energies.json), or a note that it has none."""
        if self.session.busy:
            return
        self._redraw_timer.stop()
        self._clear()
        self._following = False
        history = getattr(reopened, "history", None)
        if history:
            iterations = [int(t) for t in history.get("iterations", [])]
            values = {k: [float(v) if v is not None else math.nan for v in column]
                      for k, column in history.get("values", {}).items() if len(column) == len(iterations)}
            self.iterations = iterations
            self.history = values
            self._total = iterations[-1] if iterations else 0
        else:
            self.note.setText("this run recorded no energies")
        self._set_restarts(_restart_count(self.history))
        self.plot.enableAutoRange()

    # --- drawing -------------------------------------------------------------------------------
    def plotted(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each curve's (x, y) as drawn: y on the symlog scale while the log scale is on."""
        return {key: (np.asarray(c.xData if c.xData is not None else []), np.asarray(c.yData if c.yData is not None else []))
                for key, c in self.curves.items()}

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        x = np.asarray(self.iterations, dtype=np.float64)
        raw = {key: np.asarray(self.history.get(key, ()), dtype=np.float64) for key in self.curves}
        log10 = False
        if self.log_scale.isChecked():
            shown = [v for v in raw.values() if v.size]
            values = np.concatenate(shown) if shown else np.zeros(0)
            values = values[np.isfinite(values)]
            # energies that are never negative (inversion) on a true log axis (decades, no 0 tick;
            # a term at exactly 0, R_α before any pixel leaves its range, is left out until it
            # rises); values of both signs (maximisation's −⟨Φ, e⟩) on the symmetric log
            log10 = bool((values > 0).any()) and bool((values >= 0).all())
            tau = None if log10 else (symlog_threshold(values) if values.size else 1.0)
        else:
            tau = None
        self.tau, self.log10 = tau, log10
        self.axis.set_tau(tau)
        self.axis.set_log10(log10)
        self._show_tick_values(x.size > 0)
        for key, curve in self.curves.items():
            y = raw[key]
            if y.size != x.size:
                curve.setData([], [])
                continue
            curve.setData(x, self.to_axis(y), connect="finite")
        if self._following:
            self._follow_data()

    def to_axis(self, y: np.ndarray) -> np.ndarray:
        """Values as the view holds them: log10 (log scale, positive values), symlog, or as they are."""
        y = np.asarray(y, dtype=np.float64)
        if self.log10:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(y > 0, np.log10(np.where(y > 0, y, 1.0)), np.nan)
        return symlog(y, self.tau) if self.tau is not None else y

    def from_axis(self, t) -> np.ndarray:
        """The inverse of :meth:`to_axis`: the real values of view coordinates."""
        t = np.asarray(t, dtype=np.float64)
        if self.log10:
            return 10.0 ** t
        return symexp(t, self.tau) if self.tau is not None else t

    @property
    def scale(self) -> str:
        """"log", "symlog" or "linear": what the value axis shows."""
        return "log" if self.log10 else "symlog" if self.tau is not None else "linear"

    def _follow_data(self) -> None:
        """While a job runs: x spans all its iterations, y the data rounded out to half decades
        (symlog scale) or half steps of its order of magnitude, so the axes change a few times per
        run instead of at every redraw (pyqtgraph's auto-range moved them every time)."""
        arrays = [y for _x, y in self.plotted().values() if y.size]
        if not arrays:
            return
        ys = np.concatenate(arrays)
        ys = ys[np.isfinite(ys)]
        if ys.size == 0:
            return
        log = self.scale != "linear"
        lo, hi = float(ys.min()), float(ys.max())
        step = 0.5 if log else 0.5 * 10 ** math.floor(math.log10(max(hi - lo, abs(hi), abs(lo), 1e-12)))
        lo, hi = math.floor(lo / step) * step, math.ceil(hi / step) * step
        if hi <= lo:
            hi = lo + step
        view = (max(self._total, self.iterations[-1] if self.iterations else 1), lo, hi, self.tau, self.log10)
        if view != self._view_range:
            self._view_range = view
            self.plot.setRange(xRange=(0, view[0]), yRange=(lo, hi), padding=0.02)

    def choose_export(self) -> None:
        path = choose_plot_file(self, "energies.png")
        if path:
            self.export(path, overwrite=True, runner=self.session.plot_exporter)  # the file dialog has asked already

    def export(self, path: str, width: int = 1600, overwrite: bool = False, runner=None) -> str | None:
        """Save the plot as PNG (``width`` pixels), PDF or SVG; asks before overwriting a file.

        The figure code reads the curves' data as values: while the symlog scale is on, the
        curves hold the real values (and the view their range) for the export, so the figure
        shows real energies on a linear axis, and the plot is drawn as before afterwards. With
        ``runner`` the figure is drawn and written on its worker (the curves are read before)."""
        if self.scale == "linear":
            return export_plot(self, self.plot, self.session, path, width, overwrite, runner=runner)
        view = self.plot.getViewBox()
        state = view.getState(copy=True)
        manual = not view.autoRangeEnabled()[1]
        (_x0, _x1), (y0, y1) = view.viewRange()
        x = np.asarray(self.iterations, dtype=np.float64)
        for key, curve in self.curves.items():
            y = np.asarray(self.history.get(key, ()), dtype=np.float64)
            if y.size == x.size:
                curve.setData(x, y, connect="finite")
        if manual:
            view.setYRange(float(self.from_axis(y0)), float(self.from_axis(y1)), padding=0)
        try:
            return export_plot(self, self.plot, self.session, path, width, overwrite, runner=runner)
        finally:
            view.setState(state)
            self._dirty = True
            self._redraw()


def _restart_count(history: dict) -> int:
    """How many restarts have their own values ("energy@k") in ``history``."""
    ks = [int(key.rsplit("@", 1)[1]) for key in history if key.startswith("energy@") and key.rsplit("@", 1)[1].isdigit()]
    return max(ks, default=0)
