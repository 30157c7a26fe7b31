"""The workbench's docks, one module each.

The pattern every dock follows (so a new one is one line in ``main_window.DOCKS``):

- a ``QDockWidget`` subclass named ``<Thing>Dock`` whose ``__init__(self, session, parent=None)``
  takes the shared :class:`workbench.ui.session.Session` and builds its widgets;
- class attributes ``title`` (window title), ``area`` (default ``Qt.DockWidgetArea``) and
  ``configuration`` (True for docks hidden in presentation mode); ``objectName`` is set
  from the class name, so the saved layout (QSettings) finds it again;
- it reads and writes the session and connects to its signals (``model_changed``,
  ``layer_changed``, ``job_progressed``, ...), never to another dock;
- computation runs as a job on its own slot (:class:`workbench.ui.worker.LatestJobSlot` or
  :class:`~workbench.ui.worker.JobRunner`), never on the GUI thread; a dock with a job
  slot defines ``shutdown()``, which the window calls when it closes; its start and Cancel
  buttons and its progress bar follow the slot (``JobRunner.bind_buttons``, ``bind_progress``);
  the Qt-free part (reading folders, the job itself) lives in :mod:`workbench.preview` or the core;
- signals are past tense, slots are ``_on_<event>``;
- ``figure(plot)`` gives how to draw one of its plots for export and the clipboard (``draw(style)``,
  called on a worker): by default the plot read item by item, a dock holding a job's results
  overrides it with the job's own figure (so no exporter needs to know which dock it is looking at).

To add a dock written elsewhere, append its class to ``DOCKS`` in
:mod:`workbench.ui.main_window` (or call ``MainWindow.add_dock(cls)``). A bottom-area dock
opens as a tab beside Energies; ``TAB_WITH`` there names another tab group for a dock.
Keep a dock's minimum size small (put wide content in a scroll area): the window's minimum
width is the sum of the columns' minimum widths, and it must fit a 1280 × 720 screen. Contents
that ask for more than :data:`MAX_MIN_SIZE` are put in a scroll area when the dock is first
shown (:meth:`BaseDock.fit_contents`; before that, Qt has not measured tab pages and the like).
"""

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractScrollArea, QDockWidget, QFrame, QScrollArea

#: The largest minimum (width, height) a dock's contents may have before ``setWidget`` makes them
#: scroll: the bottom tab group's tallest member sets the height of every plot's area.
MAX_MIN_SIZE = (420, 300)


class BaseDock(QDockWidget):
    title = ""
    area = Qt.DockWidgetArea.LeftDockWidgetArea
    configuration = True

    def __init__(self, session, parent=None) -> None:
        super().__init__(self.title, parent)
        self.session = session
        self.setObjectName(type(self).__name__)
        self.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not getattr(self, "_contents_fitted", False):
            self._contents_fitted = True
            self.fit_contents()

    def fit_contents(self) -> bool:
        """Put the contents in a scroll area if their minimum size exceeds :data:`MAX_MIN_SIZE`
        (done when the dock is first shown); True if it did."""
        widget = self.widget()
        if widget is None or isinstance(widget, QAbstractScrollArea):
            return False
        need = widget.minimumSizeHint()
        if need.width() <= MAX_MIN_SIZE[0] and need.height() <= MAX_MIN_SIZE[1]:
            return False
        scroll = QScrollArea()
        scroll.setObjectName(f"{type(self).__name__}Scroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(widget)  # reparents it: the dock no longer holds it
        widget.show()
        self.setWidget(scroll)
        return True

    def figure(self, plot):
        """How to draw ``plot`` (one of this dock's PlotWidgets) for print: ``draw(style)``, a
        function that touches no Qt object (a worker calls it), made from what the dock holds now.
        By default the plot read item by item (:func:`~workbench.ui.widgets.plot_export.plot_contents`)."""
        from workbench.ui.widgets.plot_export import plot_contents

        return plot_contents(plot)

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        return True
