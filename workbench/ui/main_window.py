"""The main window: arranges the docks and the actions; no computation happens here.

Docks are listed in :data:`DOCKS` (see :mod:`workbench.ui.docks` for the pattern); the
live view is the central widget. Layout, geometry, theme and recent files are kept in
QSettings and restored on the next start.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QInputDialog, QTabBar, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QLineEdit, QMainWindow, QMessageBox, QProgressBar, QPushButton,
                               QSpinBox)

from workbench.ui import theme
from workbench.ui.docks.energies_dock import EnergiesDock
from workbench.ui.docks.filters_dock import FiltersDock
from workbench.ui.docks.layers_dock import LayersDock
from workbench.ui.docks.live_view import LiveView
from workbench.ui.docks.log_dock import LogDock
from workbench.ui.docks.method_dock import MethodDock
from workbench.ui.docks.model_dock import ModelDock
from workbench.ui.docks.runs_dock import RunsDock
from workbench.ui.docks.deformation_dock import DeformationDock
from workbench.ui.docks.smoothness_dock import SmoothnessDock
from workbench.ui.docks.filtergan_dock import FilterGanDock
from workbench.ui.docks.sweeps_dock import SweepsDock
from workbench.ui.docks.atlas_dock import AtlasDock
from PySide6.QtCore import QDataStream, QEvent, QRect, QSize
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from workbench.ui.widgets.elided_label import ElidedLabel
from workbench.ui.widgets.failure_banner import ERROR_COLOR
from workbench.ui.widgets.fixed_label import FixedLabel
from workbench.ui.worker import JobRunner

#: Every dock of the window, in creation order (the first of an area is on top).
DOCKS = [ModelDock, LayersDock, MethodDock, FiltersDock, RunsDock, EnergiesDock, LogDock, DeformationDock,
         SmoothnessDock, FilterGanDock, SweepsDock, AtlasDock]

MODEL_SUFFIXES = {".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".tar", ".onnx"}
LAYOUT_VERSION = 3  # 3: Runs and Log beside Layers (a layout saved before is not restored)
#: Presentation mode (F11): fonts and plot lines this many times their size.
PRESENTATION_SCALE = 1.5
#: The least share of the window's height and width the live view keeps in a restored layout.
LIVE_VIEW_SHARE = 0.4
#: Presentation mode: the plot kept under the result takes this share of the screen's height.
PRESENTATION_PLOT = 0.28

#: Docks that open as a tab of another; a bottom-area dock not listed is tabbed with Energies.
#: Three short tab groups, each of whose titles fits its column whole at 1280 × 720: Layers | Runs |
#: Log on the left, Feature maps | Sweeps | Atlas on the right, the plots under the live view.
TAB_WITH = {"RunsDock": "LayersDock", "LogDock": "LayersDock", "SweepsDock": "FiltersDock",
            "AtlasDock": "FiltersDock"}


class MainWindow(QMainWindow):
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
        self._restore_settings()

    # --- docks -----------------------------------------------------------------------------
    def add_dock(self, cls):
        """Create ``cls`` and place it: tabbed with the group of its area (see :data:`TAB_WITH`)."""
        dock = cls(self.session, self)
        self._place(dock)
        self.docks[type(dock).__name__] = dock
        return dock

    def _place(self, dock) -> None:
        name = type(dock).__name__
        anchor = TAB_WITH.get(name)
        if anchor is None and type(dock).area == Qt.DockWidgetArea.BottomDockWidgetArea and name != "EnergiesDock":
            anchor = "EnergiesDock"
        if anchor in self.docks:
            # straight into the tab group: adding it beside first and re-tabbing leaves a stray tab bar
            self.tabifyDockWidget(self.docks[anchor], dock)
        else:
            self.addDockWidget(type(dock).area, dock)

    def _arrange_default(self) -> None:
        """Model and Layers on the left, Method over feature maps/runs/log on the right, the
        plots under the live view; the side columns run the full height."""
        d = self.docks
        for name in ("LayersDock", "FiltersDock", "EnergiesDock"):
            if name in d:
                d[name].raise_()
        self._sizes_pending = True
        if self.isVisible():
            self._apply_default_sizes()

    def _apply_default_sizes(self) -> None:
        """Dock sizes for the default layout, in proportion to the window (at 1280 × 720 the
        side columns take 560 px, at 1600 × 1000 710 px); they only take once it has its size."""
        self._sizes_pending = False
        d = self.docks
        w, h = self.width(), self.height()

        def share(total, fraction, lo, hi):
            return int(min(hi, max(lo, fraction * total)))

        self.resizeDocks([d["ModelDock"], d["MethodDock"]], [share(w, 0.21, 250, 330), share(w, 0.24, 290, 380)],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([d["ModelDock"], d["LayersDock"]], [share(h, 0.3, 200, 260), h], Qt.Orientation.Vertical)
        self.resizeDocks([d["MethodDock"], d["FiltersDock"]], [share(h, 0.55, 300, 520), share(h, 0.45, 200, 430)],
                         Qt.Orientation.Vertical)
        self.resizeDocks([d["EnergiesDock"]], [share(h, 0.36, 180, 320)], Qt.Orientation.Vertical)

    def _keep_live_view_room(self) -> None:
        """A restored layout whose plots took the live view's room (a state saved with the docks
        at other sizes came back with the live view ≈ 150 px tall) gets the default sizes."""
        if self.presentation or not self.isVisible():
            return
        if self.live_view.height() < LIVE_VIEW_SHARE * self.height() or self.live_view.width() < LIVE_VIEW_SHARE * self.width():
            self._apply_default_sizes()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._sizes_pending:
            QTimer.singleShot(0, self._apply_default_sizes)
        else:  # a restored layout: the result keeps its room
            for delay in (0, 300):
                QTimer.singleShot(delay, self._keep_live_view_room)
        QTimer.singleShot(0, self._hide_stray_tab_bars)
        if self._settle_pending:
            self._settle_pending = False
            # a window manager adds its frame after the window is mapped: look twice
            for delay in (0, 300):
                QTimer.singleShot(delay, self.keep_on_screen)

    # --- fitting the screen ----------------------------------------------------------------
    def available_geometry(self) -> QRect:
        """The part of the window's screen that windows may use (no panels, no taskbar)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        return screen.availableGeometry()

    def _frame_size(self) -> QSize:
        """What the window manager's frame adds to the window (0 × 0 without one)."""
        frame, inner = self.frameGeometry(), self.geometry()
        return QSize(max(0, frame.width() - inner.width()), max(0, frame.height() - inner.height()))

    def room(self) -> QSize:
        """The largest window (without its frame) that fits the available area."""
        area, frame = self.available_geometry(), self._frame_size()
        return QSize(area.width() - frame.width(), area.height() - frame.height())

    def fit_minimum(self) -> None:
        """The window's minimum is what its docks need, but never more than the screen: a
        layout that wants more squeezes the docks instead of pushing the window off the screen.
        (Qt's default grows a window to its layout's minimum; an explicit minimum stops that.)"""
        layout = self.layout()
        if layout is None:
            return
        floor = layout.totalMinimumSize().boundedTo(self.room())
        if floor != self.minimumSize():
            self.setMinimumSize(floor)

    def keep_on_screen(self) -> None:
        """Shrink and move the window so that its whole frame is on the available area."""
        if self.presentation or self.isFullScreen() or self.isMaximized():
            return
        area, room = self.available_geometry(), self.room()
        size = self.size().boundedTo(room)
        if size != self.size():
            self.resize(size)
        frame = self.frameGeometry()
        x = min(max(frame.left(), area.left()), area.right() + 1 - frame.width())
        y = min(max(frame.top(), area.top()), area.bottom() + 1 - frame.height())
        if (x, y) != (frame.left(), frame.top()):
            self.move(max(x, area.left()), max(y, area.top()))

    def event(self, event) -> bool:
        handled = super().event(event)
        if event.type() in (QEvent.Type.LayoutRequest, QEvent.Type.Show):
            self.fit_minimum()  # the layout has just computed its minimum
            self.tune_tab_bars()
        return handled

    def tune_tab_bars(self) -> None:
        """Dock tabs never abbreviate their titles: a tab is as wide as its title, and a group with
        more tabs than room scrolls them (arrows) instead of cutting them to "R…", "At…"."""
        for bar in self.findChildren(QTabBar, options=Qt.FindChildOption.FindDirectChildrenOnly):
            if bar.elideMode() != Qt.TextElideMode.ElideNone:
                bar.setElideMode(Qt.TextElideMode.ElideNone)
                bar.setUsesScrollButtons(True)
                bar.setExpanding(False)

    def _hide_stray_tab_bars(self) -> None:
        """Tabbing docks into the bottom area leaves an orphan QTabBar drawn over the window
        (seen with PySide6 6.10); a real one sits right under the dock of its current tab."""
        titles = {dock.windowTitle(): dock for dock in self.docks.values()}
        if self.presentation:  # one plot, no tabs
            for bar in self.findChildren(QTabBar, options=Qt.FindChildOption.FindDirectChildrenOnly):
                bar.hide()
            return
        for bar in self.findChildren(QTabBar):
            if bar.parent() is not self or not bar.isVisible() or bar.count() == 0:
                continue
            dock = titles.get(bar.tabText(bar.currentIndex()))
            if dock is None or dock.isFloating():
                continue
            below = abs(bar.geometry().top() - dock.geometry().bottom()) <= 4
            aligned = abs(bar.geometry().left() - dock.geometry().left()) <= 4
            if not (below and aligned):
                bar.hide()

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

    def presentation_plot(self):
        """The plot dock presentation mode shows: the one in front (its tab chosen), else Energies."""
        plots = [d for d in self.docks.values() if not d.configuration and not d.isFloating()]
        for dock in plots:
            if dock.isVisible() and not dock.visibleRegion().isEmpty():
                return dock
        return self.docks.get("EnergiesDock") or (plots[0] if plots else None)

    #: Whether presentation mode shows the plot in front under the result (View → Presentation plot).
    presentation_with_plot = True

    def presentation_controls(self, docks) -> list:
        """What presentation mode hides besides the configuration docks: the buttons, boxes and
        readouts of the live view and of the plot docks it keeps (a talk shows results, not controls)."""
        import pyqtgraph as pg
        from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox

        out = [self.live_view.fit_button, self.live_view.readout, self.live_view.stage]
        for dock in docks:
            for kind in (QAbstractButton, QComboBox, QAbstractSpinBox):
                out += dock.findChildren(kind)
            # and whatever sits beside the plot in the dock's body (a row of controls and notes, a column
            # of settings): hidden whole, so it leaves no strip of empty room under the plot
            body = dock.widget()
            if body is not None and body.layout() is not None:
                for k in range(body.layout().count()):
                    child = body.layout().itemAt(k).widget()
                    if child is not None and not isinstance(child, pg.GraphicsView) and not child.findChildren(pg.GraphicsView):
                        out.append(child)
                    row = body.layout().itemAt(k).layout()
                    for j in range(row.count() if row is not None else 0):
                        widget = row.itemAt(j).widget()
                        if widget is not None and not widget.findChildren(pg.GraphicsView) \
                                and not isinstance(widget, pg.GraphicsView):
                            out.append(widget)
        return out

    def toggle_presentation_plot(self, on: bool) -> None:
        """Show the plot in front under the result in presentation mode, or the result alone."""
        self.presentation_with_plot = bool(on)
        self.settings.setValue("presentation/plot", self.presentation_with_plot)
        if self.presentation:
            self.toggle_presentation(False)
            self.toggle_presentation(True)

    def toggle_presentation(self, on: bool | None = None) -> None:
        """F11: the live view and one plot (the one in front), everything scaled by
        :data:`PRESENTATION_SCALE` (fonts, the header, tile labels, plot text and lines), on the
        whole screen; the configuration docks, the menu and the status bar hidden. Esc leaves
        (Ctrl+. still cancels a job). Without a window manager, full screen is the screen's geometry."""
        on = (not self.presentation) if on is None else bool(on)
        app = QApplication.instance()
        if on and not self.presentation:
            self._saved_state = self.saveState(LAYOUT_VERSION)
            self._saved_geometry = QRect(self.geometry())  # restoreGeometry() lands a few pixels off
            self._saved_font = app.font()
            plot = self.presentation_plot() if self.presentation_with_plot else None
            self.presentation = True
            # the result fills the screen; the plot in front stays under it (no tabs, no controls)
            keep = {plot} if plot is not None else set()
            for dock in self.docks.values():
                dock.setVisible(dock in keep and not dock.configuration)
            self._hidden_controls = [w for w in self.presentation_controls(keep) if w.isVisible()]
            for w in self._hidden_controls:
                w.hide()
            if plot is not None:
                plot.raise_()
            for dock in keep:
                dock.setTitleBarWidget(QWidget(dock))  # its tab names it; the title bar is chrome
            theme.set_font_scale(app, PRESENTATION_SCALE, self._saved_font)
            self.setProperty(theme.SCALE_PROPERTY, PRESENTATION_SCALE)
            theme.scale_plots(self, PRESENTATION_SCALE)
            self.menuBar().hide()
            self.statusBar().hide()
            self.cancel_action.setShortcuts([QKeySequence("Ctrl+.")])
            self.leave_presentation_action.setShortcut(QKeySequence("Esc"))
            screen = (self.screen() or QGuiApplication.primaryScreen()).geometry()
            self.showFullScreen()
            self.setGeometry(screen)  # what full screen is where no window manager makes it so
            if plot is not None:
                self.resizeDocks([plot], [int(PRESENTATION_PLOT * screen.height())], Qt.Orientation.Vertical)
            self.layout().activate()
            self._hide_stray_tab_bars()
            for delay in (0, 300):  # the tiles at the size the live view now has
                QTimer.singleShot(delay, self.live_view.fit)
        elif not on and self.presentation:
            self.presentation = False
            for w in getattr(self, "_hidden_controls", []):
                w.show()
            self._hidden_controls = []
            for dock in self.docks.values():
                if dock.titleBarWidget() is not None:
                    dock.setTitleBarWidget(None)
            theme.set_font_scale(app, 1.0, self._saved_font)
            self.setProperty(theme.SCALE_PROPERTY, 1.0)
            theme.scale_plots(self, 1.0)
            self.leave_presentation_action.setShortcut(QKeySequence())
            self.cancel_action.setShortcuts([QKeySequence("Esc"), QKeySequence("Ctrl+.")])
            self.menuBar().show()
            self.statusBar().show()
            self.showNormal()
            if self._saved_geometry is not None:
                self.setGeometry(self._saved_geometry)
            for delay in (0, 300):  # a window manager puts its frame back a little later
                QTimer.singleShot(delay, self.keep_on_screen)
            if self._saved_state is not None:
                self.restoreState(self._saved_state, LAYOUT_VERSION)
            for delay in (0, 300):
                QTimer.singleShot(delay, self.live_view.fit)
        for delay in (0, 300):  # re-tabbing leaves orphan tab bars behind
            QTimer.singleShot(delay, self._hide_stray_tab_bars)
        self.presentation = on
        self.presentation_action.setChecked(on)

    def set_theme(self, name: str) -> None:
        self.theme = name
        theme.apply_theme(QApplication.instance(), name)
        theme.style_plots(self, name)
        self.live_view.grid.set_label_color(theme.colors(name)["text"])
        from PySide6.QtGui import QColor

        from workbench.ui.widgets.image_grid import ImageGridWidget

        for grid in self.findChildren(ImageGridWidget):
            grid.set_label_backing(theme.colors(name)["base"])
        # the result's gutters in the new window colour (the live view draws them in it)
        self.live_view.grid.restyle(QColor(theme.colors(name)["window"]).valueF())
        for n, a in self.theme_actions.items():
            a.setChecked(n == name)
        self.settings.setValue("theme", name)

    def reset_layout(self) -> None:
        docks, self.docks = self.docks, {}
        for dock in docks.values():
            self.removeDockWidget(dock)
        for name, dock in docks.items():
            dock.setFloating(False)
            self._place(dock)
            dock.show()
            self.docks[name] = dock
        self._arrange_default()

    def about(self) -> None:
        facts = self.session.model_facts  # the devices were probed by the loader, not here
        QMessageBox.about(self, "About CNN Workbench", about_text(facts.devices if facts is not None else None))

    # --- export ----------------------------------------------------------------------------
    def export_dialog(self) -> None:
        result = self.session.last_result
        if result is None:
            self.status_label.setText("Nothing to export yet: run a job first")
            return
        from workbench.ui.widgets.plot_export import remember_style, remembered_style

        from workbench.export.figures import preimage_title

        dialog = ExportDialog(self, has_frames=bool(result.frames), style=remembered_style(self.settings),
                              title=preimage_title(result.metrics))
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        fmt = dialog.format.currentData()
        style = dialog.options.style()
        remember_style(self.settings, style)
        style = dialog.figure_style(style)
        name = f"{self.session.config['method']}-{self.session.layer}.{fmt}"
        path, _ = QFileDialog.getSaveFileName(self, "Export", str(self.session.workspace / name), f"{fmt.upper()} (*.{fmt})")
        if not path:
            return
        if fmt in ("gif", "mp4"):
            self.export_gif(path, fps=dialog.fps.value() or None, tile=dialog.tile.value() or None, overwrite=True,
                            style=style)
        else:
            self.export_grid(path, overwrite=True, style=style)

    def _confirm_overwrite(self, path: Path, overwrite: bool) -> bool:
        if not path.exists() or overwrite:
            return True
        answer = QMessageBox.question(self, "Overwrite?", f"{path} exists. Overwrite it?")
        return answer == QMessageBox.StandardButton.Yes

    def export_grid(self, path: str | Path, tile: int | None = None, dpi: int | None = None, overwrite: bool = False,
                    style=None) -> bool:
        """Write the last result's grid (reference, restarts; labelled layer, C, restart) as
        PNG/SVG/PDF on a worker; ``exported(path)`` says when it is written. False if not started.

        The figure is the run folder's ``grid.png``/``grid.pdf`` (the same function, the same
        metrics) at ``style`` (default: the size last chosen); a PNG is at the style's dpi, or
        ``dpi``, or has tiles ``tile`` pixels high."""
        result = self.session.last_result
        if not self._may_export(result, Path(path), overwrite):
            return False
        from workbench.ui.widgets.plot_export import remembered_style

        style = style or remembered_style(self.settings)
        images, reference, metrics = result.images, result.reference, dict(result.metrics)

        def factory(cancel):
            from workbench.export.figures import preimage_figure, save_figure

            figure = preimage_figure(images, reference, metrics)
            cancel.check()
            return save_figure(figure, path, style=style, tile=tile, dpi=dpi, overwrite=True)

        return self.exporter.start(factory)

    def export_gif(self, path: str | Path, fps: float | None = None, tile: int | None = None, overwrite: bool = False,
                   style=None) -> bool:
        """Write the last result's optimization as an animated GIF or MP4 (by the suffix) on a worker,
        each frame labelled with its iteration, the reference beside the restarts, tiles at their
        native resolution (``tile`` pixels at least), timed for a talk unless ``fps`` is given
        (:func:`workbench.export.animation.talk_timing`; see :meth:`export_grid`)."""
        result = self.session.last_result
        if not self._may_export(result, Path(path), overwrite):
            return False
        from workbench.ui.widgets.plot_export import remembered_style

        style = style or remembered_style(self.settings)
        config = dict(self.session.last_config or {})
        frames, m, reference = result.frames, result.metrics, result.reference

        def factory(cancel):
            from workbench.export.animation import save_animation
            from workbench.export.figures import preimage_title
            from workbench.preimage.presets import FINE_TUNE_ITERS

            every = int(config.get("frame_every") or 0)
            iterations = None
            if every:
                fine_tune = config.get("fine_tune_iters")
                if fine_tune is None:
                    fine_tune = FINE_TUNE_ITERS if config.get("method") == "invert" else 0
                steps = config["iters"] + fine_tune
                kept = [t + 1 for t in range(steps) if t % every == 0 or t == steps - 1]
                iterations = kept if len(kept) == len(frames) else None
            cancel.check()
            title = preimage_title(m) if style is None or style.title is None else style.title
            return save_animation(frames, path, fps=fps, tile=tile, iterations=iterations, title=title, style=style,
                                  overwrite=True, reference=reference)

        return self.exporter.start(factory)

    def copy_figure(self) -> bool:
        """Ctrl+Shift+C: the figure in front onto the clipboard (PNG and SVG), for pasting into slides.

        The plot of the dock that has the focus (Energies, Deformation, Smoothness, the filter-GAN's
        losses or MDS), else the result grid; at the size last chosen in an export dialog."""
        from workbench.errors import UserError
        from workbench.ui.widgets.plot_export import copy_figure, plot_figure, remembered_style

        style = remembered_style(self.settings)
        dock, plot = self._focused_plot()
        try:
            if plot is not None:
                fig, what = plot_figure(dock, plot, style), f"the {dock.title} plot"
            elif self.session.last_result is not None:
                from workbench.export.figures import preimage_figure

                result = self.session.last_result
                fig, what = preimage_figure(result.images, result.reference, result.metrics).figure(style), "the result grid"
            else:
                self._report("Nothing to copy yet: run a job first")
                return False
            copy_figure(fig, style)
        except UserError as exc:
            self._report(str(exc), "error")
            return False
        self._report(f"Copied {what} to the clipboard ({style.size})")
        return True

    def _focused_plot(self):
        """(dock, PlotWidget) of the plot dock that holds the keyboard focus, else (None, None)."""
        import pyqtgraph as pg

        widget = QApplication.focusWidget()
        while widget is not None and widget not in self.docks.values():
            widget = widget.parentWidget()
        if widget is None:
            return None, None
        plots = [w for w in widget.findChildren(pg.PlotWidget) if w.isVisible()]
        focused = QApplication.focusWidget()
        for p in plots:  # the plot under the focus, else the dock's first visible plot
            if focused is p or p.isAncestorOf(focused):
                return widget, p
        return (widget, plots[0]) if plots else (None, None)

    def _may_export(self, result, path: Path, overwrite: bool) -> bool:
        if result is None:
            self._report("Nothing to export yet: run a job first")
            return False
        if self.exporter.running:
            self._report("An export is still being written: try again when it is done")
            return False
        return self._confirm_overwrite(path, overwrite)

    def _on_exported(self, out) -> None:
        self._report(f"Exported {out}")
        self.exported.emit(str(out))

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
        yes, no = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No
        if kind == "callable":
            answer = QMessageBox.warning(
                self, "Import this code?",
                f"This model is the Python callable {spec.model}; importing it runs its code, which "
                "can do anything your account can.\n\nImport it only if you trust where it came from. Import it?",
                yes | no, no)
            if answer == yes:
                self.session.load_model(spec, trust=self.session.loading_trust, imports=True)
            else:
                self.session.decline_load()
            return
        what = "a TorchScript archive" if kind == "TorchScript" else "a full Python pickle"
        name = Path(spec.weights).name if spec.weights and spec.kind != "name_or_file" else Path(spec.model).name
        answer = QMessageBox.warning(
            self, "Trust this file?",
            f"{name} is {what}. Loading it runs code stored in the file, which "
            "can do anything your account can.\n\nLoad it only if you trust where it came from. Load it?",
            yes | no, no)
        if answer == yes:
            self.session.load_model(spec, trust=True, imports=self.session.loading_imports)
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
    def _restore_settings(self) -> None:
        self.layout().invalidate()
        self.layout().activate()  # the minimum size after tabbing, not that of docks side by side
        self.fit_minimum()
        geometry = self.settings.value("window/geometry")
        if not (isinstance(geometry, QByteArray) and self._fits(geometry) and self.restoreGeometry(geometry)):
            self.setGeometry(self.default_geometry())
        state = self.settings.value("window/state")
        if state is not None and self.restoreState(state, LAYOUT_VERSION):
            self._sizes_pending = False
        self.set_theme(self.theme if self.theme in theme.THEMES else "light")

    def default_geometry(self) -> QRect:
        """The window's place when nothing fitting was saved: the whole available area."""
        return self.available_geometry()

    @staticmethod
    def _saved_frame(geometry: QByteArray) -> QRect | None:
        """The frame rectangle inside a ``saveGeometry()`` blob (QWidget's format: magic,
        version, frame geometry, normal geometry, ...); None if it is not one."""
        stream = QDataStream(geometry)
        stream.setVersion(QDataStream.Version.Qt_4_0)
        if stream.readUInt32() != 0x1D9D0CB:
            return None
        stream.readUInt16()
        stream.readUInt16()
        frame = QRect()
        stream >> frame
        return frame if stream.status() == QDataStream.Status.Ok and frame.isValid() else None

    def _fits(self, geometry: QByteArray) -> bool:
        """Whether a saved geometry lies wholly on one of the current screens' available areas
        (a layout saved on a big monitor is not restored onto a projector)."""
        frame = self._saved_frame(geometry)
        return frame is not None and any(screen.availableGeometry().contains(frame)
                                         for screen in QGuiApplication.screens())

    def save_settings(self) -> None:
        if self.presentation:
            self.toggle_presentation(False)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState(LAYOUT_VERSION))
        self.settings.sync()

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


class ExportDialog(QDialog):
    """What to export (the result grid as PNG, SVG or PDF; the optimization as GIF or MP4) and at
    which size: a paper column, a page width or a slide, with a PNG resolution."""

    def __init__(self, parent, has_frames: bool, style=None, title: str = "") -> None:
        from workbench.export.style import FigureStyle
        from workbench.ui.widgets.plot_export import FigureOptions

        super().__init__(parent)
        self.setWindowTitle("Export")
        form = QFormLayout(self)
        self.format = QComboBox()
        for key, label in (("png", "Result grid — PNG"), ("svg", "Result grid — SVG (editable text)"),
                           ("pdf", "Result grid — PDF (vector text)"), ("gif", "Optimization — animated GIF"),
                           ("mp4", "Optimization — MP4 video")):
            self.format.addItem(label, key)
        if not has_frames:
            for row in (3, 4):
                self.format.model().item(row).setEnabled(False)
                self.format.setItemData(row, "no frames kept: set Advanced → Frame every above 0",
                                        Qt.ItemDataRole.ToolTipRole)
        self.options = FigureOptions(style or FigureStyle())
        self.dpi = self.options.dpi
        self.title = QLineEdit(title)
        self.title.setToolTip("the figure's title: edit it, or empty it to leave the title out")
        self.captions = QCheckBox("class and metric under each tile")
        self.captions.setChecked(True)
        self.tile = QSpinBox()
        self.tile.setRange(0, 2048)
        self.tile.setSpecialValueText("native")
        self.tile.setValue(0)
        self.tile.setSuffix(" px per tile")
        self.tile.setToolTip("an animation's tiles, in pixels (native: the images' own size, never shrunk; a slide "
                             "fits them into 1280 × 720)")
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.0, 60)
        self.fps.setSpecialValueText("for a talk")
        self.fps.setValue(0.0)
        self.fps.setSuffix(" frames/s")
        self.fps.setToolTip("for a talk: at least 6 s long, the result held 2 s at the end")
        form.addRow("What", self.format)
        form.addRow("Title", self.title)
        form.addRow("Captions", self.captions)
        form.addRow(self.options)
        form.addRow("Animation tiles", self.tile)
        form.addRow("Animation speed", self.fps)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.format.currentIndexChanged.connect(self._follow_format)
        self._follow_format()

    def figure_style(self, style):
        """``style`` with the dialog's title (empty: none) and captions."""
        import dataclasses

        return dataclasses.replace(style, title=self.title.text().strip(), no_captions=not self.captions.isChecked())

    def _follow_format(self) -> None:
        animation = self.format.currentData() in ("gif", "mp4")
        self.tile.setEnabled(animation)
        self.fps.setEnabled(animation)
        self.dpi.setEnabled(self.format.currentData() == "png")


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
