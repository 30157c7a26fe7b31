"""Filter-GAN dock (ICLR 2018 submission): train with live losses and generated filters, the
sect. 5.2 accuracy beside its controls (re-trained and frozen), the MDS of real and generated filters
(hover or click a point to see that filter), and latent traversal grids recomputed on the worker.
Every figure can be exported. The dock opens run folders and runs the jobs; its tabs are laid out
and drawn in :mod:`workbench.ui.widgets.filtergan_views`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton, QTabWidget,
                               QVBoxLayout, QWidget)

from workbench.resources import shipped_filtergan_run
from workbench.ui.docks import BaseDock
from workbench.ui.widgets.failure_banner import FailureBanner, window_words
from workbench.ui.widgets.filtergan_views import LOSS_COLORS, MdsView, TrainView, TraversalView
from workbench.ui.widgets.plot_export import export_plot
from workbench.ui.worker import JobRunner, LatestJobSlot

#: Hovering waits this long for the pointer to rest on a point before its filter is computed.
POINT_DEBOUNCE_MS = 40

#: The dock's field names for FilterGanConfig's options (messages name them, not CLI flags).
FIELDS = {"layer": "conv layer", "steps": "steps", "latent_dim": "latent dim", "seed": "seed"}


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

        self.train_view, self.mds_view, self.traversal_view = TrainView(), MdsView(), TraversalView()
        for view, name in ((self.train_view, "Train"), (self.mds_view, "MDS"), (self.traversal_view, "Traversal")):
            self.tabs.addTab(view, name)

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
        self.runner.bind_progress(self.progress, "{stage} %v/%m")
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
        self.train_view.train_button.clicked.connect(self.train)
        self.mds_view.eval_button.clicked.connect(self.evaluate)
        self.mds_view.point_requested.connect(self.show_point)
        self.traversal_view.traverse_button.clicked.connect(self.request_traversal)
        for b in (self.train_view.cancel_button, self.mds_view.cancel_button):
            b.clicked.connect(self.runner.cancel)
        for button, what in ((self.train_view.export_losses, "losses"), (self.train_view.export_filters, "filters"),
                             (self.mds_view.export_button, "mds"), (self.traversal_view.export_button, "traversal")):
            button.clicked.connect(lambda _checked=False, what=what: self._choose_export(what))
        self.run_edit.returnPressed.connect(self._on_run_entered)
        if self.run_path and self.session.model is not None:
            self.set_run(self.run_path)
        elif self.run_path:  # opened once the model is in: reading a run imports torch, never before the window shows
            self.session.model_changed.connect(self._on_first_model)

    def _on_first_model(self, _model) -> None:
        self.session.model_changed.disconnect(self._on_first_model)
        if self.mds is None and self.run_path:
            self.set_run(self.run_path)

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
        self.mds_view.clear()
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
        fields = dict(model=model.name, **self.train_view.fields(), device=str(model.device), **self.train_overrides)
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
        for b in (self.train_view.train_button, self.mds_view.eval_button):
            b.setEnabled(False)
        self.train_view.cancel_button.setEnabled(kind == "train")
        self.mds_view.cancel_button.setEnabled(kind == "eval")
        self.runner.start(factory)
        return True

    def _on_progressed(self, progress) -> None:
        if self._pending_kind == "train":
            for it, values in progress.values:
                if "loss_D" in values:
                    self.history["step"].append(it)
                    for k in LOSS_COLORS:
                        self.history[k].append(values[k])
            self.train_view.show_losses(self.history)
            if progress.images is not None:
                self.train_view.filter_view.show_image(progress.images[0])

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
        """Sect. 5.2 (i) beside its controls, re-trained and frozen (see MdsView.show_table)."""
        self.mds_view.show_table(metrics)
        self.evaluation = metrics

    def _say(self, message: str) -> None:
        """A plain message in place of the evaluation table."""
        self.evaluation = None
        self.mds_view.say(message)

    def _on_stopped(self) -> None:
        for b in (self.train_view.train_button, self.mds_view.eval_button):
            b.setEnabled(True)
        for b in (self.train_view.cancel_button, self.mds_view.cancel_button):
            b.setEnabled(False)

    # --- MDS ---------------------------------------------------------------------------------
    def _load_mds(self, path: str) -> None:
        """Read the run's MDS table on a worker; the scatter is drawn when it is in."""
        from workbench.preview.compute import mds_job

        self._mds_slot.request(lambda cancel: mds_job(path, cancel))

    def _on_mds_ready(self, result) -> None:
        path, data, colours, title, evaluation = result
        if path != self.run_path:
            return  # another run was opened meanwhile
        if data is None:
            self._say("this run has no MDS yet: press Evaluate")
            return
        self.mds = data
        self.mds_title = title
        self.mds_view.show_points(data, colours)
        if evaluation is not None:  # read with the table, on the worker
            self.show_evaluation(evaluation)
        self.mds_shown.emit(path)

    def _on_mds_failed(self, message: str) -> None:
        self._say(message)
        self.session.log(message, "error")

    def show_point(self, index: int) -> None:
        """Show the filter behind MDS point ``index`` (real, or regenerated from its stored z).

        The generator is loaded and run on a worker; hovering across points starts one job
        once the pointer rests (the slot debounces), and only the latest point is shown."""
        if self.mds is None or not 0 <= index < len(self.mds["coords"]):
            return
        from workbench.preview.compute import filter_point_job

        loaded, run, mds, model = self._fgan, self.run_path, self.mds, self._model()
        self.mds_view.point_label.setText("…")
        self._point_slot.request(lambda cancel: filter_point_job(loaded, run, mds, index, model, cancel))

    def _on_point_ready(self, result) -> None:
        index, loaded, image, text = result
        self._fgan = loaded  # the loaded generator is reused by the next point of this run
        if loaded[0] != self.run_path:
            return
        self.mds_view.show_filter(image, text)
        self.point_shown.emit(index)

    def _on_point_failed(self, message: str) -> None:
        self.mds_view.point_label.setText(message)
        self.session.log(message, "error")

    # --- traversal ---------------------------------------------------------------------------
    def request_traversal(self) -> bool:
        if not self.run_path:
            self.session.log("open or train a filter-GAN run first", "error")
            return False
        model = self._model()
        fields = dict(run=self.run_path, **self.traversal_view.fields(),
                      device=str(model.device) if model is not None else "auto")
        store = self.session.store

        def factory(cancel):
            from workbench.filtergan import TraversalConfig, traverse

            config = TraversalConfig(**fields)
            return (yield from traverse(config, cancel=cancel, runs=store, model=model))

        self.traversal_view.label.setText("computing…")
        self._traversal_slot.request(factory)
        return True

    def _on_traversal_ready(self, result) -> None:
        self.traversal_view.show_result(result)
        self.session.runs_changed.emit()

    # --- export ------------------------------------------------------------------------------
    def _choose_export(self, what: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export {what}", f"filtergan-{what}.png", "PNG (*.png);;SVG (*.svg)")
        if path:
            self.export(what, path, runner=self.session.plot_exporter)

    def figure(self, plot):
        """The MDS and the losses as the evaluation and training jobs draw them (else the plot as shown)."""
        if plot is self.mds_view.plot and self.mds is not None:
            data, title = self.mds, self.mds_title  # a new table replaces this one, never changes it

            def draw_mds(style=None):
                from workbench.filtergan.plots import mds_figure

                return mds_figure(data["coords"], data["real_index"], np.asarray(data["is_real"], dtype=bool),
                                  title=title, style=style)

            return draw_mds
        if plot is self.train_view.loss_plot and self.history.get("step"):
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
            plot = self.train_view.loss_plot if what == "losses" else self.mds_view.plot
            return export_plot(self, plot, self.session, target, overwrite=True, what=what, runner=runner)
        else:
            view = self.train_view.filter_view if what == "filters" else self.traversal_view.grid_view
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
