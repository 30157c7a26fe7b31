"""The main window: arranges the docks and the actions; no computation happens here.

Docks are listed in :data:`DOCKS` (see :mod:`workbench.ui.docks` for the pattern); the
live view is the central widget. Layout, geometry, theme and recent files are kept in
QSettings and restored on the next start.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QInputDialog, QMainWindow, QMessageBox, QProgressBar, QPushButton

from workbench.ui import theme
from workbench.ui.docks.atlas_dock import AtlasDock
from workbench.ui.docks.deformation_dock import DeformationDock
from workbench.ui.docks.energies_dock import EnergiesDock
from workbench.ui.docks.filtergan_dock import FilterGanDock
from workbench.ui.docks.filters_dock import FiltersDock
from workbench.ui.docks.layers_dock import LayersDock
from workbench.ui.docks.live_view import LiveView
from workbench.ui.docks.log_dock import LogDock
from workbench.ui.docks.method_dock import MethodDock
from workbench.ui.docks.model_dock import ModelDock
from workbench.ui.docks.runs_dock import RunsDock
from workbench.ui.docks.smoothness_dock import SmoothnessDock
from workbench.ui.docks.sweeps_dock import SweepsDock
from workbench.ui.export_actions import ExportActions
from workbench.ui.widgets.elided_label import ElidedLabel
from workbench.ui.widgets.failure_banner import ERROR_COLOR
from workbench.ui.widgets.fixed_label import FixedLabel
from workbench.ui.window_layout import WindowLayout
from workbench.ui.worker import JobRunner, LatestJobSlot

#: Every dock of the window, in creation order (the first of an area is on top).
DOCKS = [ModelDock, LayersDock, MethodDock, FiltersDock, RunsDock, EnergiesDock, LogDock, DeformationDock,
         SmoothnessDock, FilterGanDock, SweepsDock, AtlasDock]

MODEL_SUFFIXES = {".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".tar", ".onnx"}
class MainWindow(WindowLayout, ExportActions, QMainWindow):
    exported = Signal(str)  # a figure or animation written by export_grid / export_gif

    def __init__(self, session, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = session.settings
        self.setWindowTitle("CNN Workbench")
        self.setObjectName("MainWindow")
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks
                            | QMainWindow.DockOption.AllowNestedDocks)
        self.live_view = LiveView(session)
        self.setCentralWidget(self.live_view)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.docks: dict[str, object] = {}
        for cls in DOCKS:
            self.add_dock(cls)
        self._arrange_default()
        self._build_actions()
        self._build_status_bar()
        self.theme = str(self.settings.value("theme", "light"))
        self.presentation = False
        self._saved_state: QByteArray | None = None
        self._saved_geometry: QRect | None = None
        self._settle_pending = True   # the first show puts the whole frame on the screen
        self._job_started_at = 0.0
        self._status_shown_at = 0.0
        self.errors_shown = 0
        self._error_box: QMessageBox | None = None
        self.log_path: Path | None = None
        session.model_loading.connect(self._on_model_loading)
        session.model_changed.connect(self._on_model_changed)
        session.model_failed.connect(self._on_model_failed)
        session.job_started.connect(self._on_job_started)
        session.job_progressed.connect(self._on_job_progressed)
        session.job_finished.connect(self._on_job_finished)
        session.job_cancelled.connect(self._on_job_cancelled)
        session.job_failed.connect(self._on_job_failed)
        session.job_stopped.connect(self._on_job_stopped)
        session.failure_reported.connect(self.show_failure)
        session.load_declined.connect(lambda: self.status_label.setText(
            f"Kept {self.session.model.name}" if self.session.model is not None else "No model loaded"))
        session.failure_dismissed.connect(lambda where: self.dismiss_failure(where, from_session=True))
        self.docks["MethodDock"].run_requested.connect(self.run)
        self.exporter = JobRunner(self, rate=0)
        self.exporter.finished.connect(self._on_exported)
        self.exporter.failed.connect(lambda message: self._report(message, "error"))
        self.clipboard_slot = LatestJobSlot(self)  # the figure copied to the clipboard, rendered on a worker
        self.clipboard_slot.finished.connect(self._on_copy_rendered)
        self.clipboard_slot.failed.connect(lambda message: self._report(message, "error"))
        self._copying = ""
        self._restore_settings()

    # --- docks -----------------------------------------------------------------------------
    def add_dock(self, cls):
        """Create ``cls`` and place it: tabbed with the group of its area (see :data:`TAB_WITH`)."""
        dock = cls(self.session, self)
        self._place(dock)
        self.docks[type(dock).__name__] = dock
        return dock

    # --- fitting the screen ----------------------------------------------------------------

    # --- actions ---------------------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.open_action = self._action("&Open model…", self.docks["ModelDock"].open_dialog, QKeySequence.StandardKey.Open,
                                        "open any model: a zoo name, a file, package.module:callable or timm:NAME")
        self.open_file_action = self._action("Open model &file…", self.docks["ModelDock"].choose_file, "Ctrl+Shift+O",
                                             "open a model file")
        self.open_image_action = self._action("Open reference &image…", self.docks["MethodDock"].choose_image, None)
        self.run_action = self._action("&Run", self.run, "Ctrl+R", "run the pre-image job")
        self.cancel_action = self._action("&Cancel", self.cancel, "Esc",
                                          "cancel the running job (Esc; Ctrl+. in presentation mode too)")
        self.cancel_action.setShortcuts([QKeySequence("Esc"), QKeySequence("Ctrl+.")])
        self.cancel_action.setEnabled(False)
        self.leave_presentation_action = self._action("Leave presentation mode", lambda: self.toggle_presentation(False))
        self.export_action = self._action("&Export figure…", self.export_dialog, "Ctrl+E",
                                          "export the result grid (PNG, SVG, PDF) or the optimization (GIF, MP4)")
        self.copy_figure_action = self._action("&Copy figure", self.copy_figure, "Ctrl+Shift+C",
                                               "copy the focused plot, else the result grid, to the clipboard")
        self.presentation_action = self._action("&Presentation mode", lambda: self.toggle_presentation(), "F11",
                                                "the live view and the plot in front, large; Esc leaves")
        self.presentation_action.setCheckable(True)
        self.presentation_plot_action = self._action("Presentation &shows the plot", self.toggle_presentation_plot, None,
                                                     "in presentation mode, the plot in front under the result (off: the result alone)")
        self.presentation_plot_action.setCheckable(True)
        self.presentation_with_plot = str(self.settings.value("presentation/plot", "true")).lower() != "false"
        self.presentation_plot_action.setChecked(self.presentation_with_plot)
        self.workspace_action = self._action("&Workspace…", self.choose_workspace, None,
                                             "choose the folder new runs are written to")
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.about_action = self._action("&About CNN Workbench", self.about)
        bar = self.menuBar()
        m = bar.addMenu("&File")
        for a in (self.open_action, self.open_file_action, self.open_image_action, self.export_action,
                  self.copy_figure_action, self.workspace_action):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.quit_action)
        m = bar.addMenu("&Run")
        m.addAction(self.run_action)
        m.addAction(self.cancel_action)
        m = bar.addMenu("&View")
        m.addAction(self.presentation_action)
        m.addAction(self.presentation_plot_action)
        themes = m.addMenu("Theme")
        self.theme_actions = {}
        for name in theme.THEMES:
            a = QAction(name.capitalize(), self, checkable=True)
            a.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            themes.addAction(a)
            self.theme_actions[name] = a
        m.addSeparator()
        for dock in self.docks.values():
            m.addAction(dock.toggleViewAction())
        m.addSeparator()
        m.addAction(self._action("Reset layout", self.reset_layout))
        m = bar.addMenu("&Help")
        m.addAction(self.about_action)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_label = ElidedLabel("Starting…")  # a long path or message never widens the window
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setRange(0, 0)
        self.timing = FixedLabel("00000 / 00000 + 000   0000.0 s   ETA 0000.0 s")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        # a failure stays in view until dismissed: other messages go to status_label beside it
        self.failure_label = ElidedLabel("")
        self.failure_label.setStyleSheet(f"color: {ERROR_COLOR}; font-weight: 600")
        self.failure_label.hide()
        self.dismiss_failure_button = QPushButton("Dismiss")
        self.dismiss_failure_button.setToolTip("hide the failure message")
        self.dismiss_failure_button.hide()
        self.dismiss_failure_button.clicked.connect(self.dismiss_failure)
        self._failure_from = ""
        bar.addWidget(self.failure_label, 2)
        bar.addWidget(self.dismiss_failure_button)
        bar.addWidget(self.status_label, 1)
        bar.addPermanentWidget(self.timing)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    # --- commands --------------------------------------------------------------------------
    def run(self) -> None:
        if self.session.model is None:
            self.status_label.setText("The model is still loading: the job starts when it is ready")
        started = self.session.start_job()
        if not started and self.session.busy:
            self.status_label.setText("A job is running: the new one is queued (Esc cancels both)")

    def cancel(self) -> None:
        if self.session.busy:
            self.status_label.setText("Cancelling…")
            self.session.cancel_job()

    def about(self) -> None:
        facts = self.session.model_facts  # the devices were probed by the loader, not here
        QMessageBox.about(self, "About CNN Workbench", about_text(facts.devices if facts is not None else None))

    # --- export ----------------------------------------------------------------------------

    def show_internal_error(self, summary: str, log_path: str = "") -> None:
        """An uncaught exception (a bug): say so, name the log file, keep the window usable."""
        where = f" The details are in {log_path}." if log_path else ""
        self.errors_shown += 1
        self._report(f"Internal error: {summary}.{where}", "error")
        box = self._error_box
        if box is None:
            box = self._error_box = QMessageBox(QMessageBox.Icon.Critical, "Internal error", "", QMessageBox.StandardButton.Ok, self)
            box.setModal(False)
        count = f" ({self.errors_shown} so far)" if self.errors_shown > 1 else ""
        box.setText(f"Something went wrong inside the workbench{count}:\n\n{summary}\n\n"
                    f"The window keeps working; what you were doing may not have finished.{where} "
                    "Please include that file when you report the problem.")
        box.show()

    def show_failure(self, where: str, message: str) -> None:
        """A job started from ``where`` failed: its reason stays in the status bar until dismissed."""
        self._failure_from = where
        self.failure_label.setText(f"{where} failed: {message}")
        self.failure_label.setToolTip(f"{where} failed: {message}")
        self.failure_label.show()
        self.dismiss_failure_button.show()

    @property
    def failure_text(self) -> str:
        return self.failure_label.text() if not self.failure_label.isHidden() else ""

    def dismiss_failure(self, where: str | None = None, from_session: bool = False) -> None:
        """Hide the failure (only ``where``'s, when given); the dock that reported it hides its own."""
        if where and where != self._failure_from:
            return
        self.failure_label.hide()
        self.dismiss_failure_button.hide()
        if not from_session and self._failure_from:
            gone, self._failure_from = self._failure_from, ""
            self.session.dismiss_failure(gone)

    def _report(self, message: str, level: str = "info") -> None:
        self.status_label.setText(message)
        self.session.log(message, level)

    # --- session events --------------------------------------------------------------------
    def _on_model_loading(self, spec: str) -> None:
        self.status_label.setText(f"Loading {Path(spec).name}…")
        self.progress.setRange(0, 0)
        self.progress.show()

    def _end_busy_indicator(self) -> None:
        """Fusion keeps animating a bar that was once indeterminate (60 repaints a second of the
        status bar, through every later job) until it is hidden or complete: hide it until a job."""
        self.progress.hide()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)

    def _on_model_changed(self, model) -> None:
        from workbench.ui.docks.model_dock import display_name

        self._end_busy_indicator()
        # Qt adds the application's display name ("— CNN Workbench") to a window's title itself
        self.setWindowTitle(display_name(model.name))
        self.status_label.setText(f"Ready: {display_name(model.name)} loaded. Pick a layer and press Run (Ctrl+R).")

    def _on_model_failed(self, message: str) -> None:
        self._end_busy_indicator()
        if self.session.trust_kind:
            self.status_label.setText("The model asks for your permission before it loads")
        else:
            self.status_label.setText(f"Could not load the model: {message}")
        spec = self.session.loading_spec
        kind = self.session.trust_kind
        if spec and kind:
            QTimer.singleShot(0, lambda: self._ask_trust(spec, kind))
        elif spec and self.session.needs_architecture:
            QTimer.singleShot(0, lambda: self._ask_architecture(spec))

    def choose_workspace(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self, "Workspace: where new runs are written", str(self.session.workspace))
        if path:
            self.session.set_workspace(path)
            self.status_label.setText(f"New runs go to {path}")

    def _ask_trust(self, spec, kind: str = "pickle") -> None:
        """A full pickle or a TorchScript archive runs code from the file when loaded, and a
        ``package.module:callable`` runs its module's code when imported: only on the user's word.
        ``spec`` is the ModelSpec (or string) whose load was refused; the same spec is loaded
        again with that one permission added."""
        from workbench.preview.models import as_spec

        spec = as_spec(spec)
        if kind == "callable":
            title, verb = "Import this code?", "Import"
            what = f"This model is the Python callable {spec.model}; importing it runs its code"
            permission = dict(trust=self.session.loading_trust, imports=True)
        else:
            title, verb = "Trust this file?", "Load"
            stored = "a TorchScript archive" if kind == "TorchScript" else "a full Python pickle"
            name = Path(spec.weights).name if spec.weights and spec.kind != "name_or_file" else Path(spec.model).name
            what = f"{name} is {stored}. Loading it runs code stored in the file"
            permission = dict(trust=True, imports=self.session.loading_imports)
        yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
        answer = QMessageBox.warning(
            self, title, f"{what}, which can do anything your account can.\n\n"
            f"{verb} it only if you trust where it came from. {verb} it?", yes | no, no)
        if answer == yes:
            self.session.load_model(spec, **permission)
        else:
            self.session.decline_load()

    def _ask_architecture(self, spec) -> None:
        from workbench.models.zoo import architecture_names
        from workbench.preview.models import as_spec

        spec = as_spec(spec)
        names = architecture_names()
        name, ok = QInputDialog.getItem(self, "Architecture", f"{Path(spec.model).name} holds only weights.\n"
                                        "Which architecture are they for?", names, 0, False)
        if ok and name:
            self.session.load_model(spec, arch=name, trust=self.session.loading_trust,
                                    imports=self.session.loading_imports)
        else:
            self.session.decline_load()

    def _on_job_started(self, config: dict) -> None:
        self._job_started_at = time.monotonic()
        self._last_progress = None
        self.session.last_config = dict(config)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.show()
        self.timing.setText("")  # not the last job's counter
        self.dismiss_failure("Method")
        self.cancel_button.setEnabled(True)
        self.cancel_action.setEnabled(True)
        self.status_label.setText(f"Running {config['method']} on {config['layer']}…")

    def _on_job_progressed(self, progress) -> None:
        self._last_progress = progress
        now = time.monotonic()
        if now - self._status_shown_at < 0.25 and progress.iteration < progress.total:
            return  # the counter and ETA need not change faster than people read them
        self._status_shown_at = now
        self.progress.setRange(0, progress.total)
        self.progress.setValue(progress.iteration)
        elapsed = time.monotonic() - self._job_started_at
        eta = elapsed / max(progress.iteration, 1) * (progress.total - progress.iteration)
        self.timing.setText(f"{progress.iteration} / {self.total_text(progress.total)}   {elapsed:.1f} s   ETA {eta:.1f} s")

    def total_text(self, total: int) -> str:
        """A job's iteration count as the Method dock's fields make it: "300 + 50" for 300
        iterations and 50 of fine-tuning (the counter runs to 350), else the total."""
        config = self.session.last_config or {}
        iters = config.get("iters")
        if isinstance(iters, int) and 0 < iters < total:
            return f"{iters} + {total - iters}"
        return str(total)

    def _on_job_finished(self, result) -> None:
        m = result.metrics
        summary = ""
        if "reconstruction_error_mean" in m:
            summary = f" — reconstruction error {m['reconstruction_error_mean']:.3g}"
        if "classification_consistency" in m:
            summary += f", classification consistency {100 * m['classification_consistency']:.0f} %"
        self.status_label.setText(f"Done in {time.monotonic() - self._job_started_at:.1f} s{summary}")

    def _stopped_at(self, how: str) -> str:
        """The counter once a job stopped early: where it stopped, not a running count."""
        p = getattr(self, "_last_progress", None)
        elapsed = time.monotonic() - self._job_started_at
        if p is not None:
            self.progress.setRange(0, max(p.total, 1))
            self.progress.setValue(p.iteration)
            self.timing.setText(f"{p.iteration} / {self.total_text(p.total)}   {elapsed:.1f} s   {how}")
            return f" at iteration {p.iteration} / {p.total}"
        self.timing.setText(f"{elapsed:.1f} s   {how}")
        return ""

    def _on_job_cancelled(self) -> None:
        where = self._stopped_at("cancelled")
        self.status_label.setText(f"Cancelled{where}; the run folder is kept and marked cancelled")

    def _on_job_failed(self, message: str) -> None:
        self._stopped_at("failed")
        self.status_label.setText(f"Failed: {message}")

    def _on_job_stopped(self) -> None:
        busy = self.session.busy
        self.cancel_button.setEnabled(busy)
        self.cancel_action.setEnabled(busy)

    # --- drag and drop ---------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        from workbench.data.images import IMAGE_SUFFIXES  # one list of image suffixes (workbench.data brings torch)

        if any(Path(u.toLocalFile()).suffix.lower() in MODEL_SUFFIXES.union(IMAGE_SUFFIXES)
               for u in event.mimeData().urls() if u.isLocalFile()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_path(url.toLocalFile())
        event.acceptProposedAction()

    def open_path(self, path: str) -> None:
        """A dropped or opened file: a model file loads the model, an image becomes the reference."""
        from workbench.data.images import IMAGE_SUFFIXES

        suffix = Path(path).suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            self.session.set_reference(path)
        elif suffix in MODEL_SUFFIXES:
            self.session.load_model(path)
        else:
            self._report(f"cannot open {Path(path).name}: drop a model file (.safetensors, .pt, ...) or an image", "error")

    # --- settings and closing --------------------------------------------------------------

    def job_runners(self) -> list[JobRunner]:
        """Every job slot of the session, the live view and the docks."""
        return self.session.findChildren(JobRunner) + self.findChildren(JobRunner)

    def running_threads(self) -> list:
        """Job threads still running (tests assert none is left behind)."""
        return [t for runner in self.job_runners() for t in runner.threads()]

    def shutdown(self) -> bool:
        """Close every job slot, cancel its job and join its thread (idempotent). A model being
        loaded finishes its current step first: a torch call cannot be interrupted."""
        for runner in self.job_runners():
            runner.close()  # every job stops at once; then they are joined one by one
        ok = self.session.shutdown()
        ok &= self.live_view.shutdown()
        for dock in self.docks.values():
            ok &= dock.shutdown()
        for runner in self.job_runners():
            ok &= runner.shutdown()
        return ok

    def closeEvent(self, event) -> None:
        self.save_settings()
        self.hide()  # nothing to look at while the threads are joined
        self.shutdown()
        super().closeEvent(event)


def about_text(devices=None) -> str:
    import platform
    import sys

    import PySide6
    import pyqtgraph

    from workbench.version import __version__

    rows = [("CNN Workbench", __version__), ("Python", platform.python_version()),
            ("Qt / PySide6", f"{PySide6.QtCore.qVersion()} / {PySide6.__version__}"), ("pyqtgraph", pyqtgraph.__version__)]
    if "torch" in sys.modules:
        import torch

        if devices is None:
            from workbench.device import available_devices

            devices = available_devices()
        rows.append(("torch", torch.__version__))
        rows.append(("Devices", ", ".join(devices)))
    else:
        rows.append(("torch", "not loaded yet"))
    table = "".join(f"<tr><td style='padding-right:12px'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
    return ("<p>A desktop workbench for looking inside convolutional networks: natural pre-images "
            "(Mahendran &amp; Vedaldi), deformation stability, filter-GANs.</p>" f"<table>{table}</table>")
