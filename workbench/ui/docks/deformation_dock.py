"""Deformation dock (Ruderman et al. 2018): per-layer normalized cosine distance under random
thin-plate-spline deformations, one line and ±2 std band per measured model, overlaid; a
preview of an image, its deformation and the displacement arrows; grid, displacement, N and
repeats. Measurements run as jobs on the dock's own slot and write run folders."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGridLayout, QHBoxLayout, QProgressBar, QPushButton,
                               QSizePolicy, QVBoxLayout, QWidget)

from workbench.config.deformation import DeformConfig
from workbench.preview.deformation import measured_layers, memory_limit, representation_bytes
from workbench.ui.docks.layer_plot_dock import LayerPlotDock
from workbench.ui.widgets.failure_banner import FailureBanner, window_words
from workbench.ui.widgets.image_label import ImageLabel
from workbench.ui.widgets.layer_plot import LayerPlot
from workbench.ui.widgets.number_box import double_spin_box, spin_box
from workbench.ui.widgets.scroll_column import ScrollColumn
from workbench.ui.worker import JobRunner, LatestJobSlot

PRESETS = {"CIFAR (3×3, ±2 px)": (3, 2.0), "ImageNet (5×5, ±10 px)": (5, 10.0)}
#: The dock's field names for DeformConfig's options (a job's message names them, not CLI flags).
FIELDS = {"n": "images N", "grid": "control grid", "max_disp": "max displacement", "seeds": "repeats (seeds)",
          "layers": "layers"}
#: Layer strides the "layers" box offers: every layer, every 2nd, ...
STRIDES = (1, 2, 4, 8, 16)


class DeformationDock(LayerPlotDock):
    title = "Deformation"
    export_name = "deformation.png"

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        body = QWidget()
        outer = QHBoxLayout(body)
        outer.setContentsMargins(4, 4, 4, 4)

        column = QWidget()  # the controls scroll when the dock is short (they are 350 px tall)
        left = QVBoxLayout(column)
        left.setContentsMargins(0, 0, 4, 0)
        form = QFormLayout()
        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS) + ["custom"])
        self.grid = spin_box(2, 12, DeformConfig.grid)
        self.max_disp = double_spin_box(0.0, 64.0, DeformConfig.max_disp, step=0.5, suffix=" px")
        self.n_images = spin_box(2, 1024, DeformConfig.n)
        self.seeds = spin_box(1, 20, DeformConfig.seeds)
        self.layer_stride = QComboBox()
        self.layer_stride.setToolTip("which layers to measure: every one, or every k-th (less memory)")
        for k in STRIDES:
            self.layer_stride.addItem("every layer" if k == 1 else f"every {k}th layer" if k > 3 else "every 2nd layer", k)
        self.with_init = QCheckBox("also at initialization")
        self.with_init.setToolTip("measure a fresh truncated-normal initialization of the same architecture too")
        form.addRow("preset", self.preset)
        form.addRow("control grid", self.grid)
        form.addRow("max displacement", self.max_disp)
        form.addRow("images N", self.n_images)
        form.addRow("repeats (seeds)", self.seeds)
        form.addRow("layers", self.layer_stride)
        form.addRow("", self.with_init)
        # the image is scaled to the label: it never sets the dock's width
        self.preview = ImageLabel("load a model to see a deformation", max_height=220,
                                  vertical=QSizePolicy.Policy.Preferred)
        self.preview.setMinimumHeight(110)
        self.preview.setToolTip("original | deformed | displacement arrows (tail: where the value is read)")
        left.addWidget(self.preview, 1)
        buttons = QGridLayout()
        self.run_button = QPushButton("Measure")
        self.cancel_button = QPushButton("Cancel")
        self.clear_button = QPushButton("Clear")
        self.export_button = QPushButton("Export plot…")
        for k, b in enumerate((self.run_button, self.cancel_button, self.clear_button, self.export_button)):
            buttons.addWidget(b, k // 2, k % 2)
        # the primary buttons first: in view however short the dock is (the settings scroll under them)
        left.insertLayout(0, buttons)
        left.insertLayout(1, form)
        self.failure = FailureBanner()
        self.failure.dismissed.connect(lambda: session.dismiss_failure(self.title))
        session.failure_dismissed.connect(lambda where: self.failure.clear() if where == self.title else None)
        left.addWidget(self.failure)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        left.addWidget(self.progress)
        outer.addWidget(ScrollColumn(column), 0)

        self.plot = LayerPlot("layer", "normalized cosine distance")
        outer.addWidget(self.plot, 1)
        self.setWidget(body)

        self.runner = JobRunner(self, rate=10)
        self.runner.bind_progress(self.progress, "{stage} · step %v of %m")
        self.runner.logged.connect(lambda level, m: session.log(m, level))
        self.runner.artifact_written.connect(self._on_artifact)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(lambda: session.log("deformation measurement cancelled", "warning"))
        self.runner.bind_buttons(self.run_button, self.cancel_button)
        self._preview_slot = LatestJobSlot(self)
        self._preview_slot.finished.connect(self._on_preview_ready)
        self._preview_slot.failed.connect(lambda m: session.log(m, "error"))

        self.preset.currentTextChanged.connect(self._on_preset_changed)
        self.grid.valueChanged.connect(self._on_control_changed)
        self.max_disp.valueChanged.connect(self._on_control_changed)
        self.run_button.clicked.connect(self.measure)
        self.clear_button.clicked.connect(self.clear)
        self.export_button.clicked.connect(self.choose_export)
        session.model_changed.connect(lambda _m: self.request_preview())
        session.reference_changed.connect(lambda _s: self.request_preview())

    # --- controls ----------------------------------------------------------------------------
    def _on_preset_changed(self, name: str) -> None:
        if name in PRESETS:
            grid, disp = PRESETS[name]
            for w, v in ((self.grid, grid), (self.max_disp, disp)):
                with QSignalBlocker(w):
                    w.setValue(v)
            self.request_preview()

    def _on_control_changed(self, _value) -> None:
        match = [k for k, v in PRESETS.items() if v == (self.grid.value(), self.max_disp.value())]
        with QSignalBlocker(self.preset):
            self.preset.setCurrentText(match[0] if match else "custom")
        self.request_preview()

    def settings(self) -> dict:
        model = self.session.model
        layers = measured_layers(model, int(self.layer_stride.currentData() or 1)) if model is not None else None
        return {"grid": self.grid.value(), "max_disp": self.max_disp.value(), "n": self.n_images.value(),
                "seeds": self.seeds.value(), "layers": tuple(layers) if layers else None}

    def memory_check(self) -> tuple[str, tuple | None] | None:
        """None if the measurement fits in memory, else (the refusal with the estimate, the fix):
        the fewer images that fit, else the fewer layers."""
        from workbench.limits import gib

        model = self.session.model
        n, stride = self.n_images.value(), int(self.layer_stride.currentData() or 1)
        need, limit = representation_bytes(model, n, measured_layers(model, stride)), memory_limit()
        if need <= limit:
            return None
        what = "every layer" if stride == 1 else self.layer_stride.currentText()
        message = (f"{n} images at {what} would hold ~{gib(need)} GiB of representations "
                   f"(limit {gib(limit)} GiB): lower images N or measure fewer layers")
        per_image = representation_bytes(model, 1, measured_layers(model, stride))
        fits = int(limit // max(per_image, 1))
        if fits >= max(8, self.n_images.minimum()):
            return message, (f"Use N = {fits}", lambda: self.n_images.setValue(fits))
        for k in STRIDES:
            if k > stride and representation_bytes(model, n, measured_layers(model, k)) <= limit:
                index = self.layer_stride.findData(k)
                return message, (f"Measure {self.layer_stride.itemText(index)}", lambda: self.layer_stride.setCurrentIndex(index))
        return message, None

    def show_failure(self, message: str, fix=None) -> None:
        """The reason in this dock (and the status bar, until dismissed), in the dock's words."""
        message = window_words(message, FIELDS)
        self.failure.show_failure(message, fix)
        self.session.report_failure(self.title, message)

    # --- preview -----------------------------------------------------------------------------
    def request_preview(self) -> None:
        model, spec = self.session.model, self.session.reference
        if model is None:
            return
        grid, disp = self.grid.value(), self.max_disp.value()

        def job(cancel):
            from workbench.preview.compute import reference_job

            reference = reference_job(spec or "digits:0", model, cancel)
            import torch

            from workbench.deformation.job import example_pairs

            x = torch.from_numpy(np.ascontiguousarray(reference)).permute(2, 0, 1)[None]
            return example_pairs(x, grid, disp, seed=0, count=1)[0]

        self._preview_slot.request(job)

    def _on_preview_ready(self, rgb) -> None:
        self.preview.show_image(rgb)

    # --- measuring ---------------------------------------------------------------------------
    def measure(self) -> bool:
        """Measure the session's model with the current settings; False if none is loaded or one runs."""
        model = self.session.model
        if model is None or self.runner.running:
            return False
        self.failure.clear()
        self.session.dismiss_failure(self.title)
        refused = self.memory_check()
        if refused is not None:
            self.show_failure(*refused)
            return False
        settings = self.settings()
        with_init = self.with_init.isChecked()
        root = self.session.store.root

        def factory(cancel):
            from workbench.deformation.job import deform_job

            out = []
            for init in (None, "truncnormal") if with_init else (None,):  # the job re-initialises a copy
                config = DeformConfig(model=model.name, images="auto", device=str(model.device), init=init, **settings)
                metrics = yield from deform_job(config, model=model, runs_root=root, cancel=cancel)
                out.append((metrics["model"], metrics))
                if not metrics["complete"]:
                    break
            return out

        self.runner.start(factory)
        return True

    def _on_artifact(self, name: str, path: str) -> None:
        if name == "run":
            self.session.runs_changed.emit()

    def _on_finished(self, results) -> None:
        for label, metrics in results:
            if not metrics["complete"]:
                self.session.log(f"{label}: cancelled, showing the repeats finished", "warning")
            if any(row["mean"] is not None for row in metrics["layers"]):
                self.add_result(label, metrics)
        self.session.runs_changed.emit()

    def _on_failed(self, message: str) -> None:
        self.show_failure(message)

    # --- plot --------------------------------------------------------------------------------
    def _redraw(self) -> None:
        """Each model's mean per layer inside its ±2 std band (the first model's layers on the axis)."""
        def column(rows, key, missing):
            return np.array([missing if r[key] is None else r[key] for r in rows], dtype=float)

        names = [row["layer"] for row in self.results[0][1]["layers"]] if self.results else []
        self.plot.draw(names, [(label, column(m["layers"], "mean", np.nan), column(m["layers"], "std", 0.0))
                               for label, m in self.results])

    # --- export ------------------------------------------------------------------------------
    @staticmethod
    def results_figure(results, style=None):
        """The measured models as the ``deform`` job draws them."""
        from workbench.deformation.job import sensitivity_plot, sensitivity_title

        return sensitivity_plot(results, sensitivity_title(results), style=style)

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        return self.runner.shutdown(timeout_ms) & self._preview_slot.shutdown(timeout_ms)
