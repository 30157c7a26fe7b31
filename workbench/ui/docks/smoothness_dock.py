"""Smoothness dock (Ruderman et al. 2018, sect. 4.1): normalized total variation TV(W)/‖W‖₁ of
every conv layer, one line per model ("Add current model", or each loaded model when ticked), with
the level of a fresh truncated-normal initialization as a dotted line."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QProgressBar, QPushButton, QVBoxLayout, QWidget

from workbench.ui import theme
from workbench.ui.docks import BaseDock
from workbench.ui.widgets.elided_label import ElidedLabel
from workbench.ui.widgets.scroll_column import ScrollColumn
from workbench.ui.widgets.layer_plot import COLORS, layer_ticks
from workbench.ui.widgets.plot_export import choose_plot_file, export_plot
from workbench.ui.worker import JobRunner


class SmoothnessDock(BaseDock):
    title = "Smoothness"
    area = Qt.DockWidgetArea.BottomDockWidgetArea
    configuration = False

    measured = Signal(str, object)  # label, metrics

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        body = QWidget()
        outer = QHBoxLayout(body)
        outer.setContentsMargins(4, 4, 4, 4)
        self.plot = pg.PlotWidget()
        self.plot.showGrid(x=False, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "conv layer (lower TV: smoother filters)")
        self.plot.setLabel("left", "normalized TV")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.legend = self.plot.addLegend(offset=(10, 10))
        # the controls are a narrow column beside the plot (a row of them made the dock, and so
        # the window, 690 px wide at least); it scrolls when the dock is short
        controls = QWidget()
        layout = QVBoxLayout(controls)
        layout.setContentsMargins(0, 0, 4, 0)
        self.auto_add = QCheckBox("add each loaded model")
        self.auto_add.setToolTip("measure every model loaded from now on (each measurement writes a run folder)")
        self.auto_add.setChecked(False)  # each measurement writes a run folder: only on request
        self.add_button = QPushButton("Add current model")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.clear_button = QPushButton("Clear")
        self.export_button = QPushButton("Export plot…")
        self.progress = QProgressBar()
        self.status = ElidedLabel("")
        self.status.setStyleSheet("color: gray")
        row = QHBoxLayout()
        row.addWidget(self.cancel_button)
        row.addWidget(self.clear_button)
        for w in (self.add_button, self.auto_add):
            layout.addWidget(w)
        layout.addLayout(row)
        for w in (self.export_button, self.progress, self.status):
            layout.addWidget(w)
        layout.addStretch(1)
        outer.addWidget(ScrollColumn(controls), 0)
        outer.addWidget(self.plot, 1)
        self.setWidget(body)

        self.results: list[tuple[str, dict]] = []
        self._items: list[object] = []
        self.runner = JobRunner(self, rate=10)
        self.runner.progressed.connect(self._on_progressed)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(lambda m: session.log(m, "error"))
        self.runner.stopped.connect(self._on_stopped)
        self.add_button.clicked.connect(self.measure)
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.clear_button.clicked.connect(self.clear)
        self.export_button.clicked.connect(self.choose_export)
        session.model_changed.connect(self._on_model_changed)

    def _on_model_changed(self, _model) -> None:
        if self.auto_add.isChecked():
            self.measure()

    def measure(self) -> bool:
        model = self.session.model
        if model is None or self.runner.running:
            return False
        root = self.session.store.root

        def factory(cancel):
            from workbench.deformation.job import handle_from_loaded, smoothness_job

            metrics = yield from smoothness_job(handle_from_loaded(model), runs_root=root, cancel=cancel)
            return model.name, metrics

        self.add_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)  # this measurement's progress, not the last one's
        self.runner.start(factory)
        return True

    def _on_progressed(self, progress) -> None:
        self.progress.setMaximum(max(progress.total, 1))
        self.progress.setValue(progress.iteration)

    def _on_finished(self, result) -> None:
        label, metrics = result
        self.add_result(label, metrics)
        self.session.runs_changed.emit()

    def _on_stopped(self) -> None:
        self.add_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def add_result(self, label: str, metrics: dict) -> None:
        self.results = [(l, m) for l, m in self.results if l != label] + [(label, metrics)]
        self._redraw()
        self.measured.emit(label, metrics)

    def clear(self) -> None:
        self.results = []
        self._redraw()

    def _redraw(self) -> None:
        for item in self._items:
            self.plot.removeItem(item)
        self._items = []
        self.legend.clear()
        if not self.results:
            self.status.setText("")
            return
        longest = max((m["layers"] for _, m in self.results), key=len)
        self.plot.getAxis("bottom").setTicks(layer_ticks([r["layer"] for r in longest]))
        self.plot.setXRange(-0.5, len(longest) - 0.5, padding=0)  # room for the first and last names
        for k, (label, metrics) in enumerate(self.results):
            y = np.array([r["ntv"] for r in metrics["layers"]])
            color = pg.mkColor(COLORS[k % len(COLORS)])
            self._items.append(self.plot.plot(np.arange(len(y), dtype=float), y, pen=pg.mkPen(color, width=2),
                                              symbol="o", symbolSize=6, symbolBrush=color, name=label))
        levels = [m["init_ntv"] for _, m in self.results if m.get("init_ntv") is not None]
        if levels:
            level = float(np.mean(levels))
            ink = pg.getConfigOption("foreground")  # black on a light theme, light grey on a dark one
            line = pg.InfiniteLine(pos=level, angle=0, pen=pg.mkPen(ink, width=2, style=Qt.PenStyle.DotLine),
                                   label=f"initialization {level:.3f}",
                                   labelOpts={"position": 0.85, "color": ink, "anchors": [(1, 0), (1, 0)]})  # below: in view
            self.plot.addItem(line)
            self._items.append(line)
            self.status.setText(f"fresh truncated-normal init: {level:.3f}")
        theme.scale_plot(self.plot, theme.scale_of(self))  # the new lines at the window's scale

    def figure(self, plot):
        """The measured models as the smoothness job draws them (else the plot as shown)."""
        if not self.results:
            return super().figure(plot)
        results = list(self.results)

        def draw(style=None):
            from workbench.deformation.job import smoothness_plot_of_runs

            return smoothness_plot_of_runs(results, style)

        return draw

    def choose_export(self) -> None:
        path = choose_plot_file(self, "smoothness.png")
        if path:
            export_plot(self, self.plot, self.session, path, overwrite=True,  # the file dialog has asked already
                        runner=self.session.plot_exporter)

    def export(self, path: str, width: int = 1600, overwrite: bool = False) -> str | None:
        """Save the plot as PNG (``width`` pixels) or SVG; asks before overwriting a file."""
        return export_plot(self, self.plot, self.session, path, width, overwrite)

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        return self.runner.shutdown(timeout_ms)
