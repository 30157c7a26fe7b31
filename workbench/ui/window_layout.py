"""The main window's layout: where the docks go, fitting the screen, presentation mode, the
theme, and the layout and geometry kept in QSettings (:class:`WindowLayout`, a part of
:class:`~workbench.ui.main_window.MainWindow`)."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QDataStream, QEvent, QRect, QSize, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import QApplication, QTabBar, QWidget

from workbench.ui import theme

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


class WindowLayout:
    """The layout half of :class:`~workbench.ui.main_window.MainWindow` (a QMainWindow with
    ``docks``, ``live_view``, ``settings`` and the actions it builds)."""

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
