"""What the Deformation and Smoothness docks share: a bottom dock that overlays per-layer
measurements of several models on a :class:`~workbench.ui.widgets.layer_plot.LayerPlot`, exports
them as the measuring job draws them, and says when one is added."""

from __future__ import annotations

from functools import partial

from PySide6.QtCore import Qt, Signal

from workbench.ui.docks import BaseDock
from workbench.ui.widgets.plot_export import choose_plot_file, export_plot


class LayerPlotDock(BaseDock):
    """Subclasses set ``self.plot`` (a LayerPlot), :meth:`_redraw` (``self.results`` on the plot),
    :meth:`results_figure` (the job's own figure of the results) and ``export_name``."""

    area = Qt.DockWidgetArea.BottomDockWidgetArea
    configuration = False
    #: The file name the export dialog offers.
    export_name = "plot.png"
    #: True: a new measurement of a label replaces the shown one; False: it is overlaid beside it.
    replaces = False

    measured = Signal(str, object)  # label, metrics

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        self.results: list[tuple[str, dict]] = []

    def add_result(self, label: str, metrics: dict) -> None:
        """Show one model's per-layer measurement beside the others."""
        kept = [(l, m) for l, m in self.results if l != label] if self.replaces else self.results
        self.results = [*kept, (label, metrics)]
        self._redraw()
        self.measured.emit(label, metrics)

    def clear(self) -> None:
        self.results = []
        self._redraw()

    def _redraw(self) -> None:
        raise NotImplementedError

    @staticmethod
    def results_figure(results: list[tuple[str, dict]], style=None):
        """The matplotlib figure of ``results`` as the measuring job draws it (runs on a worker)."""
        raise NotImplementedError

    def figure(self, plot):
        """The measured models as the measuring job draws them (else the plot as shown)."""
        if not self.results:
            return super().figure(plot)
        return partial(self.results_figure, list(self.results))  # a plain function: no Qt object

    def choose_export(self) -> None:
        path = choose_plot_file(self, self.export_name)
        if path:
            export_plot(self, self.plot, self.session, path, overwrite=True,  # the file dialog has asked already
                        runner=self.session.plot_exporter)

    def export(self, path: str, width: int = 1600, overwrite: bool = False) -> str | None:
        """Save the plot as PNG (``width`` pixels) or SVG; asks before overwriting a file."""
        return export_plot(self, self.plot, self.session, path, width, overwrite)
