"""Filter-GAN dock (ICLR 2018 submission): train with live losses and generated filters, the
sect. 5.2 accuracy beside its controls (re-trained and frozen), the MDS of real and generated filters
(hover or click a point to see that filter), and latent
traversal grids recomputed on the worker. Every figure can be exported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QSpinBox, QTabWidget, QVBoxLayout, QWidget)

from workbench.resources import shipped_filtergan_run
from workbench.config.filtergan import FilterGanConfig, TraversalConfig
from workbench.ui.widgets.failure_banner import FailureBanner, window_words
from workbench.ui.docks import BaseDock
from workbench.ui.widgets.plot_export import export_plot
from workbench.ui.worker import JobRunner, LatestJobSlot

#: Hovering waits this long for the pointer to rest on a point before its filter is computed.
POINT_DEBOUNCE_MS = 40
LOSS_COLORS = {"loss_D": "#1f77b4", "loss_G": "#d62728", "loss_Q": "#2ca02c"}


#: Rows of the evaluation table: metrics key (re-trained), key (frozen), label.
EVAL_ROWS = (("accuracy_real_retrained", "accuracy_real", "real filters"),
             ("accuracy_generated", "accuracy_generated_frozen", "generated (sect. 5.2)"),
             ("accuracy_noise", "accuracy_noise_frozen", "control: real + noise of equal norm"),
             ("accuracy_permuted", "accuracy_permuted_frozen", "control: entries permuted"))


#: The dock's field names for FilterGanConfig's options (messages name them, not CLI flags).
FIELDS = {"layer": "conv layer", "steps": "steps", "latent_dim": "latent dim", "seed": "seed"}

def evaluation_text(m: dict) -> str:
    """Sect. 5.2 (i) as a small rich-text table: test accuracy with the following layers re-trained
    (the paper's metric) and frozen, for the real filters, the generated ones and each control,
    then how far the generated filters lead or trail each control, and the MDS numbers."""
    import html

    def cell(key: str) -> str:
        v = m.get(key)
        return f"{v:.4f}" if isinstance(v, (int, float)) else "–"

    rows = "".join(f"<tr><td>{html.escape(label)}</td><td align='right'>{cell(rt)}</td>"
                   f"<td align='right'>{cell(fz)}</td></tr>" for rt, fz, label in EVAL_ROWS)
    text = (f"<table cellspacing='0' cellpadding='4'><tr><th align='left'>test accuracy</th><th>re-trained</th>"
            f"<th>frozen</th></tr>{rows}</table>")
    margins = m.get("margins")
    if isinstance(margins, dict) and margins:
        one = 100.0 / m["test_images"] if m.get("test_images") else None
        parts = [f"{kind} {v['retrained_points']:+.2f} re-trained, {v['frozen_points']:+.2f} frozen"
                 for kind, v in margins.items() if isinstance(v, dict)]
        text += ("<p>generated minus control, points: " + html.escape("; ".join(parts))
                 + (f" (one test image = {one:.2f})" if one else "") + "</p>")
    else:
        text += "<p>no controls in this evaluation: press Evaluate to compute them</p>"
    if isinstance(m.get("spread_relative"), (int, float)) and isinstance(m.get("nearest_real_fraction"), (int, float)):
        text += (f"<p>spread {m['spread_relative']:.3f} of the filter norm; "
                 f"{100 * m['nearest_real_fraction']:.0f} % nearest to their own real filter</p>")
    return text


class _ImageView(pg.GraphicsLayoutWidget):
    """One float image in [0, 1] (H, W[, 3]), aspect locked, levels fixed."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.view = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.item)
        self.image: np.ndarray | None = None

    def show_image(self, image: np.ndarray) -> None:
        arr = np.asarray(image)
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        self.image = arr.copy()
        self.item.setImage(self.image, autoLevels=False, levels=(0.0, 1.0))
        self.view.autoRange(padding=0.02)


class FilterGanDock(BaseDock):
    title = "Filter-GAN"
    area = Qt.DockWidgetArea.BottomDockWidgetArea
    configuration = False

    run_changed = Signal(str)
    mds_shown = Signal(str)    # the run whose MDS scatter is drawn
    point_shown = Signal(int)  # the MDS point whose filter is shown

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        body = QWidget()
        outer = QVBoxLayout(body)
        outer.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        shipped = shipped_filtergan_run()  # so that traversals work before any training
        self.run_edit = QLineEdit(str(shipped) if (shipped / "run.json").is_file() else "")
        self.run_edit.setPlaceholderText("a filter-GAN run folder (train one, or open one)")
        self.open_button = QPushButton("Open run…")
        top.addWidget(QLabel("run"))
        top.addWidget(self.run_edit, 1)
        top.addWidget(self.open_button)
        outer.addLayout(top)
        self.tabs = QTabWidget()
        outer.addWidget(self.tabs, 1)
        self.failure = FailureBanner()
        self.failure.dismissed.connect(lambda: session.dismiss_failure(self.title))
        session.failure_dismissed.connect(lambda where: self.failure.clear() if where == self.title else None)
        outer.addWidget(self.failure)
        self.progress = QProgressBar()
        outer.addWidget(self.progress)
        self.setWidget(body)

        self._build_train_tab()
        self._build_mds_tab()
        self._build_traversal_tab()

        #: Overrides for tiny runs (tests): passed into the job configs.
        self.train_overrides: dict = {}
        self.eval_overrides: dict = {}
        self.history: dict[str, list[float]] = {k: [] for k in ("step", *LOSS_COLORS)}
        self.mds: dict | None = None
        self.mds_title = ""                    # the MDS figure's title, read with the table
        self.evaluation: dict | None = None  # the metrics shown in the MDS tab's table
        self._fgan = None
        self._fgan_path: str | None = None

        self.runner = JobRunner(self, rate=8)
        self.runner.progressed.connect(self._on_progressed)
        self.runner.logged.connect(lambda level, m: session.log(m, level))
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self.show_failure)
        self.runner.cancelled.connect(lambda: session.log("filter-GAN job cancelled", "warning"))
        self.runner.stopped.connect(self._on_stopped)
        self._mds_slot = LatestJobSlot(self)
        self._mds_slot.finished.connect(self._on_mds_ready)
        self._mds_slot.failed.connect(self._on_mds_failed)
        self._point_slot = LatestJobSlot(self, debounce_ms=POINT_DEBOUNCE_MS)
        self._point_slot.finished.connect(self._on_point_ready)
        self._point_slot.failed.connect(self._on_point_failed)
        self._traversal_slot = LatestJobSlot(self)
        self._traversal_slot.finished.connect(self._on_traversal_ready)
        self._traversal_slot.failed.connect(lambda m: session.log(m, "error"))
        self._pending_kind = ""

        self.open_button.clicked.connect(self.choose_run)
        self.train_button.clicked.connect(self.train)
        self.eval_button.clicked.connect(self.evaluate)
        self.traverse_button.clicked.connect(self.request_traversal)
        for b in (self.cancel_train, self.cancel_eval):
            b.clicked.connect(self.runner.cancel)
        self.export_losses.clicked.connect(lambda: self._choose_export("losses"))
        self.export_filters.clicked.connect(lambda: self._choose_export("filters"))
        self.export_mds.clicked.connect(lambda: self._choose_export("mds"))
        self.export_grid.clicked.connect(lambda: self._choose_export("traversal"))
        self.run_edit.returnPressed.connect(self._on_run_entered)
        if self.run_path and self.session.model is not None:
            self.set_run(self.run_path)
        elif self.run_path:  # opened once the model is in: reading a run imports torch, never before the window shows
            self.session.model_changed.connect(self._on_first_model)

    def _on_first_model(self, _model) -> None:
        self.session.model_changed.disconnect(self._on_first_model)
        if self.mds is None and self.run_path:
            self.set_run(self.run_path)

    # --- layout ------------------------------------------------------------------------------
    def _build_train_tab(self) -> None:
        tab = QWidget()
        row = QHBoxLayout(tab)
        form = QFormLayout()
        self.layer_edit = QLineEdit(FilterGanConfig.layer)
        self.steps = QSpinBox()
        self.steps.setRange(1, 100_000)
        self.steps.setValue(FilterGanConfig.steps)
        self.latent = QSpinBox()
        self.latent.setRange(2, 256)
        self.latent.setValue(FilterGanConfig.latent_dim)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        form.addRow("conv layer", self.layer_edit)
        form.addRow("steps", self.steps)
        form.addRow("latent dim", self.latent)
        form.addRow("seed", self.seed)
        left = QVBoxLayout()
        left.addLayout(form)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.cancel_train = QPushButton("Cancel")
        self.cancel_train.setEnabled(False)
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_train)
        left.addLayout(buttons)
        exports = QHBoxLayout()
        self.export_losses = QPushButton("Export losses…")
        self.export_filters = QPushButton("Export filters…")
        exports.addWidget(self.export_losses)
        exports.addWidget(self.export_filters)
        left.addLayout(exports)
        left.addStretch(1)
        row.addLayout(left, 0)
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.setLabel("left", "loss")
        self.loss_plot.addLegend(offset=(10, 10))
        self.loss_curves = {k: self.loss_plot.plot([], [], pen=pg.mkPen(c, width=2), name=k.replace("_", " "))
                            for k, c in LOSS_COLORS.items()}
        row.addWidget(self.loss_plot, 1)
        self.filter_view = _ImageView()
        self.filter_view.setToolTip("generated filters of the first 16 output channels for 4 fixed z "
                                    "(input channels summed in thirds as RGB, as in the paper's Fig. 2)")
        row.addWidget(self.filter_view, 1)
        self.tabs.addTab(tab, "Train")

    def _build_mds_tab(self) -> None:
        tab = QWidget()
        row = QHBoxLayout(tab)
        left = QVBoxLayout()
        self.eval_button = QPushButton("Evaluate (sect. 5.2)")
        self.cancel_eval = QPushButton("Cancel")
        self.cancel_eval.setEnabled(False)
        self.export_mds = QPushButton("Export MDS…")
        self.eval_label = QLabel("accuracy and MDS appear here after evaluation")
        self.eval_label.setWordWrap(True)
        for w in (self.eval_button, self.cancel_eval, self.export_mds, self.eval_label):
            left.addWidget(w)
        self.point_view = _ImageView()
        self.point_view.setMinimumSize(120, 120)
        self.point_label = QLabel("hover or click a point")
        self.point_label.setWordWrap(True)
        left.addWidget(self.point_view, 1)
        left.addWidget(self.point_label)
        row.addLayout(left, 0)
        self.mds_plot = pg.PlotWidget()
        self.mds_plot.setAspectLocked(True)
        # the wheel scrolls the dock, not the scatter (which zoomed under a passing wheel): the
        # view fits its points, and they are hovered and clicked
        self.mds_plot.setMouseEnabled(x=False, y=False)
        self.mds_plot.setLabel("bottom", "MDS 1")
        self.mds_plot.setLabel("left", "MDS 2")
        self.scatter = pg.ScatterPlotItem(hoverable=True, hoverSize=12, tip=None)
        self.mds_plot.addItem(self.scatter)
        self.scatter.sigHovered.connect(self._on_points_hovered)
        self.scatter.sigClicked.connect(self._on_points_clicked)
        row.addWidget(self.mds_plot, 1)
        self.tabs.addTab(tab, "MDS")

    def _build_traversal_tab(self) -> None:
        tab = QWidget()
        row = QHBoxLayout(tab)
        form = QFormLayout()
        self.sample_edit = QLineEdit(TraversalConfig.sample)
        self.dim_i = QSpinBox()
        self.dim_j = QSpinBox()
        for s, v in ((self.dim_i, 0), (self.dim_j, 1)):
            s.setRange(0, 255)
            s.setValue(v)
        self.xi = QDoubleSpinBox()
        self.xi.setRange(0.1, 20.0)
        self.xi.setSingleStep(0.5)
        self.xi.setValue(TraversalConfig.xi)
        self.grid_k = QSpinBox()
        self.grid_k.setRange(3, 15)
        self.grid_k.setSingleStep(2)
        self.grid_k.setValue(TraversalConfig.grid)
        self.iters = QSpinBox()
        self.iters.setRange(1, 5000)
        self.iters.setValue(TraversalConfig.iters)
        form.addRow("sample", self.sample_edit)
        form.addRow("dimension i", self.dim_i)
        form.addRow("dimension j", self.dim_j)
        form.addRow("ξ", self.xi)
        form.addRow("grid k", self.grid_k)
        form.addRow("iterations", self.iters)
        left = QVBoxLayout()
        left.addLayout(form)
        self.traverse_button = QPushButton("Compute traversal")
        self.export_grid = QPushButton("Export grid…")
        self.traversal_label = QLabel("")
        self.traversal_label.setWordWrap(True)
        for w in (self.traverse_button, self.export_grid, self.traversal_label):
            left.addWidget(w)
        left.addStretch(1)
        row.addLayout(left, 0)
        self.grid_view = _ImageView()
        self.grid_view.setToolTip("rows move z_i, columns z_j over ±ξ; the centre is the sample")
        row.addWidget(self.grid_view, 1)
        self.tabs.addTab(tab, "Traversal")

    # --- run folder --------------------------------------------------------------------------
    @property
    def run_path(self) -> str:
        return self.run_edit.text().strip()

    def _on_run_entered(self) -> None:
        self.set_run(self.run_edit.text())

    def choose_run(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a filter-GAN run folder", self.run_path or str(self.session.store.root))
        if path:
            self.set_run(path)

    def set_run(self, path: str) -> None:
        """Open a filter-GAN run folder: its MDS table (if evaluated) is read on a worker."""
        self.run_edit.setText(str(path))
        self._fgan = None
        self.mds = None
        self._say("accuracy and MDS appear here after evaluation")
        self.scatter.setData([])
        self.point_view.item.clear()
        self.point_label.setText("hover or click a point")
        self._load_mds(self.run_path)
        self.run_changed.emit(self.run_path)

    def _model(self):
        model = self.session.model
        return model if model is not None and getattr(model, "dataset", None) == "digits" else None

    def show_failure(self, message: str) -> None:
        """The reason in this dock (and the status bar, until dismissed), in the dock's words."""
        message = window_words(message, FIELDS)
        self.failure.show_failure(message)
        self.session.report_failure(self.title, message)

    def refusal(self) -> str | None:
        """Why Train cannot start with the session's model (None if it can). The dock trains on the
        model loaded, never on another one: a filter-GAN learns the filters of a digits net (sect. 5)."""
        from workbench.ui.docks.model_dock import display_name

        model = self.session.model
        if model is None:
            return "no model is loaded: open a digits model (digits-vgg or digits-lenet5) in the Model dock first"
        if self._model() is None:
            return (f"{display_name(model.name)} is not a digits model: a filter-GAN learns the filters of a net "
                    "trained on the digits (sect. 5); open digits-vgg or digits-lenet5 in the Model dock")
        return None

    # --- training ----------------------------------------------------------------------------
    def train(self) -> bool:
        if self.runner.running:
            return False
        self.failure.clear()
        self.session.dismiss_failure(self.title)
        refused = self.refusal()
        if refused is not None:
            self.show_failure(refused)
            return False
        model = self._model()
        fields = dict(model=model.name, layer=self.layer_edit.text().strip(),
                      steps=self.steps.value(), latent_dim=self.latent.value(), seed=self.seed.value(),
                      device=str(model.device), **self.train_overrides)
        store = self.session.store
        self.history = {k: [] for k in self.history}

        def factory(cancel):
            from workbench.filtergan import FilterGanConfig, train_filter_gan

            config = FilterGanConfig(**fields)  # on the worker: a bad value fails the job, not the window
            return (yield from train_filter_gan(config, cancel=cancel, runs=store, model=model))

        return self._start("train", factory)

    def evaluate(self) -> bool:
        if self.runner.running or not self.run_path:
            return False
        self.failure.clear()
        self.session.dismiss_failure(self.title)
        model = self._model()
        fields = dict(device=str(model.device) if model is not None else "auto", **self.eval_overrides)
        path = self.run_path
        store = self.session.store  # where an evaluation of a read-only run is written

        def factory(cancel):
            from workbench.filtergan import FilterGanEvalConfig, evaluate_filter_gan

            config = FilterGanEvalConfig(**fields)
            return (yield from evaluate_filter_gan(path, config, cancel=cancel, model=model, runs=store))

        return self._start("eval", factory)

    def _start(self, kind: str, factory) -> bool:
        self._pending_kind = kind
        self.progress.setValue(0)
        for b in (self.train_button, self.eval_button):
            b.setEnabled(False)
        self.cancel_train.setEnabled(kind == "train")
        self.cancel_eval.setEnabled(kind == "eval")
        self.runner.start(factory)
        return True

    def _on_progressed(self, progress) -> None:
        self.progress.setMaximum(max(progress.total, 1))
        self.progress.setValue(progress.iteration)
        self.progress.setFormat(f"{progress.stage} %v/%m")
        if self._pending_kind == "train":
            for it, values in progress.values:
                if "loss_D" in values:
                    self.history["step"].append(it)
                    for k in LOSS_COLORS:
                        self.history[k].append(values[k])
            for k, curve in self.loss_curves.items():
                curve.setData(self.history["step"], self.history[k])
            if progress.images is not None:
                self.filter_view.show_image(progress.images[0])

    def _on_finished(self, result) -> None:
        if self._pending_kind == "train":
            self.set_run(str(result.path))
            self.session.log(f"filter-GAN trained: {result.path}")
        else:
            self.show_evaluation(result)
            written = result.get("run")  # an evaluation of a read-only run writes a new folder
            if written and str(written) != self.run_path:
                self.set_run(str(written))
            else:
                self._load_mds(self.run_path)
        self.session.runs_changed.emit()

    def show_evaluation(self, metrics: dict) -> None:
        """Sect. 5.2 (i) beside its controls, re-trained and frozen (see evaluation_text)."""
        self.eval_label.setTextFormat(Qt.TextFormat.RichText)
        self.eval_label.setText(evaluation_text(metrics))
        self.evaluation = metrics

    def _say(self, message: str) -> None:
        """A plain message in place of the evaluation table."""
        self.evaluation = None
        self.eval_label.setTextFormat(Qt.TextFormat.PlainText)
        self.eval_label.setText(message)

    def _show_stored_evaluation(self, path: str) -> None:
        """The evaluation a run folder already holds (its metrics.json), if any."""
        from workbench.errors import UserError
        from workbench.runs import read_json

        try:
            metrics = read_json(Path(path) / "metrics.json", "metrics.json")
        except UserError:
            return
        if isinstance(metrics, dict) and "accuracy_generated" in metrics:
            self.show_evaluation(metrics)

    def _on_stopped(self) -> None:
        for b in (self.train_button, self.eval_button):
            b.setEnabled(True)
        self.cancel_train.setEnabled(False)
        self.cancel_eval.setEnabled(False)

    # --- MDS ---------------------------------------------------------------------------------
    def _load_mds(self, path: str) -> None:
        """Read the run's MDS table on a worker; the scatter is drawn when it is in."""
        from workbench.preview.compute import mds_job

        self._mds_slot.request(lambda cancel: mds_job(path, cancel))

    def _on_mds_ready(self, result) -> None:
        path, data, colours, title = result
        if path != self.run_path:
            return  # another run was opened meanwhile
        if data is None:
            self._say("this run has no MDS yet: press Evaluate")
            return
        self.mds = data
        self.mds_title = title
        brushes = [pg.mkBrush(*colours[j]) for j in data["real_index"]]
        sizes = np.where(data["is_real"], 13, 6)
        pens = [pg.mkPen("k", width=1.5) if r else pg.mkPen(None) for r in data["is_real"]]
        self.scatter.setData(pos=data["coords"], brush=brushes, size=sizes, pen=pens, data=np.arange(len(sizes)))
        self._show_stored_evaluation(path)
        self.mds_shown.emit(path)

    def _on_mds_failed(self, message: str) -> None:
        self._say(message)
        self.session.log(message, "error")

    def _on_points_hovered(self, _item, points, _ev=None) -> None:
        if len(points):
            self.show_point(int(points[0].data()))

    def _on_points_clicked(self, _item, points, _ev=None) -> None:
        if len(points):
            self.show_point(int(points[0].data()))

    def show_point(self, index: int) -> None:
        """Show the filter behind MDS point ``index`` (real, or regenerated from its stored z).

        The generator is loaded and run on a worker; hovering across points starts one job
        once the pointer rests (the slot debounces), and only the latest point is shown."""
        if self.mds is None or not 0 <= index < len(self.mds["coords"]):
            return
        from workbench.preview.compute import filter_point_job

        loaded, run, mds, model = self._fgan, self.run_path, self.mds, self._model()
        self.point_label.setText("…")
        self._point_slot.request(lambda cancel: filter_point_job(loaded, run, mds, index, model, cancel))

    def _on_point_ready(self, result) -> None:
        index, loaded, image, text = result
        self._fgan = loaded  # the loaded generator is reused by the next point of this run
        if loaded[0] != self.run_path:
            return
        self.point_view.show_image(image)
        self.point_label.setText(text)
        self.point_shown.emit(index)

    def _on_point_failed(self, message: str) -> None:
        self.point_label.setText(message)
        self.session.log(message, "error")

    # --- traversal ---------------------------------------------------------------------------
    def request_traversal(self) -> bool:
        if not self.run_path:
            self.session.log("open or train a filter-GAN run first", "error")
            return False
        model = self._model()
        fields = dict(run=self.run_path, sample=self.sample_edit.text().strip() or "digits:0",
                      dims=(self.dim_i.value(), self.dim_j.value()), xi=self.xi.value(),
                      grid=self.grid_k.value() | 1, iters=self.iters.value(),
                      device=str(model.device) if model is not None else "auto")
        store = self.session.store

        def factory(cancel):
            from workbench.filtergan import TraversalConfig, traverse

            config = TraversalConfig(**fields)
            return (yield from traverse(config, cancel=cancel, runs=store, model=model))

        self.traversal_label.setText("computing…")
        self._traversal_slot.request(factory)
        return True

    def _on_traversal_ready(self, result) -> None:
        from workbench.filtergan.traverse import grid_image

        m = result.metrics
        self.grid_view.show_image(grid_image(result.images, tuple(m["dims"]), m["xi"]))
        self.traversal_label.setText(f"centre error {m['centre_error']:.4f}; neighbour change {m['neighbour_rms']:.4f} "
                                     f"vs {m['all_pairs_rms']:.4f} between all cells")
        self.session.runs_changed.emit()

    # --- export ------------------------------------------------------------------------------
    def _choose_export(self, what: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export {what}", f"filtergan-{what}.png", "PNG (*.png);;SVG (*.svg)")
        if path:
            self.export(what, path, runner=self.session.plot_exporter)

    def figure(self, plot):
        """The MDS and the losses as the evaluation and training jobs draw them (else the plot as shown)."""
        if plot is self.mds_plot and self.mds is not None:
            data, title = self.mds, self.mds_title  # a new table replaces this one, never changes it

            def draw_mds(style=None):
                from workbench.filtergan.plots import mds_figure

                return mds_figure(data["coords"], data["real_index"], np.asarray(data["is_real"], dtype=bool),
                                  title=title, style=style)

            return draw_mds
        if plot is self.loss_plot and self.history.get("step"):
            history = {k: list(v) for k, v in self.history.items()}

            def draw_losses(style=None):
                from workbench.filtergan.plots import loss_figure

                return loss_figure(history, style=style)

            return draw_losses
        return super().figure(plot)

    def export(self, what: str, path: str, runner=None) -> str | None:
        """Write ``losses`` / ``mds`` (plots: PNG or SVG; drawn and written on ``runner`` if given,
        see :func:`~workbench.ui.widgets.plot_export.export_plot`) or ``filters`` / ``traversal``
        (images: PNG)."""
        target = Path(path)
        suffix = target.suffix.lower()
        if what in ("losses", "mds"):
            plot = self.loss_plot if what == "losses" else self.mds_plot
            return export_plot(self, plot, self.session, target, overwrite=True, what=what, runner=runner)
        else:
            view = self.filter_view if what == "filters" else self.grid_view
            if view.image is None:
                self.session.log(f"nothing to export yet: compute the {what} first", "error")
                return None
            if suffix != ".png":
                self.session.log(f"cannot export an image to '{suffix or target.name}': use .png", "error")
                return None
            from workbench.runs import save_png

            save_png(target, view.image)
        self.session.log(f"{what} exported to {target}")
        return str(target)

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        ok = self.runner.shutdown(timeout_ms)
        for slot in (self._mds_slot, self._point_slot, self._traversal_slot):
            ok &= slot.shutdown(timeout_ms)
        return ok
