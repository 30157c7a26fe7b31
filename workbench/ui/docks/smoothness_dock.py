"""Smoothness dock (Ruderman et al. 2018, sect. 4.1): normalized total variation TV(W)/‖W‖₁ of
every conv layer, one line per model ("Add current model", or each loaded model when ticked), with
the level of a fresh truncated-normal initialization as a dotted line."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QProgressBar, QPushButton, QVBoxLayout, QWidget

from workbench.ui.docks.layer_plot_dock import LayerPlotDock
from workbench.ui.widgets.elided_label import ElidedLabel
from workbench.ui.widgets.scroll_column import ScrollColumn
from workbench.ui.widgets.layer_plot import LayerPlot
from workbench.ui.worker import JobRunner


class SmoothnessDock(LayerPlotDock):
    title = "Smoothness"
    export_name = "smoothness.png"
    replaces = True  # a model measured again replaces its line

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        body = QWidget()
        outer = QHBoxLayout(body)
        outer.setContentsMargins(4, 4, 4, 4)
        self.plot = LayerPlot("conv layer (lower TV: smoother filters)", "normalized TV", symbol_size=6)
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

        self.runner = JobRunner(self, rate=10)
        self.runner.bind_progress(self.progress)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(lambda m: session.log(m, "error"))
        self.runner.bind_buttons(self.add_button, self.cancel_button)
        self.add_button.clicked.connect(self.measure)
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
            from workbench.deformation.job import smoothness_job

            metrics = yield from smoothness_job(model, runs_root=root, cancel=cancel)
            return model.name, metrics

        self.runner.start(factory)
        return True

    def _on_finished(self, result) -> None:
        label, metrics = result
        self.add_result(label, metrics)
        self.session.runs_changed.emit()

    def _redraw(self) -> None:
        """Each model's NTV per conv layer (the longest model's layers on the axis), and the mean
        level of the fresh initializations measured with them."""
        longest = max((m["layers"] for _, m in self.results), key=len, default=[])
        levels = [m["init_ntv"] for _, m in self.results if m.get("init_ntv") is not None]
        level = float(np.mean(levels)) if levels else None
        self.plot.draw([r["layer"] for r in longest],
                       [(label, np.array([r["ntv"] for r in m["layers"]], dtype=float), None) for label, m in self.results],
                       level=(level, f"initialization {level:.3f}") if level is not None else None)
        self.status.setText(f"fresh truncated-normal init: {level:.3f}" if level is not None else "")

    @staticmethod
    def results_figure(results, style=None):
        """The measured models as the smoothness job draws them."""
        from workbench.deformation.job import smoothness_plot_of_runs

        return smoothness_plot_of_runs(results, style)

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        return self.runner.shutdown(timeout_ms)
