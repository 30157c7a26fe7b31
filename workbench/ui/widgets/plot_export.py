"""Exporting a pyqtgraph plot to PNG or SVG, the same way from every dock."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget


def choose_plot_file(parent: QWidget, default_name: str, title: str = "Export plot") -> str | None:
    """Ask for a PNG/SVG path (the dialog itself confirms overwriting)."""
    path, _ = QFileDialog.getSaveFileName(parent, title, default_name, "PNG (*.png);;SVG (*.svg)")
    return path or None


def export_plot(parent: QWidget, plot, session, path: str | Path, width: int = 1600, overwrite: bool = False,
                what: str = "plot") -> str | None:
    """Save ``plot`` (a PlotWidget) as PNG ``width`` pixels wide or as SVG; asks before overwriting.

    Returns the path written, or None (wrong suffix, or the user kept the existing file).
    """
    import pyqtgraph.exporters as exporters

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".png", ".svg"):
        session.log(f"cannot export a plot to '{suffix or target.name}': use .png or .svg", "error")
        return None
    if target.exists() and not overwrite:
        answer = QMessageBox.question(parent, "Overwrite?", f"{target} exists. Overwrite it?")
        if answer != QMessageBox.StandardButton.Yes:
            return None
    if suffix == ".png":
        exporter = exporters.ImageExporter(plot.plotItem)
        exporter.parameters()["width"] = width
    else:
        exporter = exporters.SVGExporter(plot.plotItem)
    exporter.export(str(target))
    session.log(f"{what} exported to {target}")
    return str(target)
