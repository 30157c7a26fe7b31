"""The main window's exports: the result grid and the optimisation's animation written on a
worker (:meth:`ExportActions.export_grid`, :meth:`ExportActions.export_gif`), the figure in front
copied to the clipboard, and the export dialog (:class:`ExportDialog`)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                               QFormLayout, QLineEdit, QMessageBox)

from workbench.ui.widgets.number_box import double_spin_box, spin_box


class ExportActions:
    """The export half of :class:`~workbench.ui.main_window.MainWindow` (a QMainWindow with
    ``session``, ``settings``, an ``exporter`` job slot and an ``exported(path)`` signal)."""

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
        losses or MDS), else the result grid; at the size last chosen in an export dialog. The plot
        is read here; the figure is drawn and rendered on a worker, and put on the clipboard (with a
        word in the status bar) when it is ready. False if there is nothing to copy."""
        from workbench.errors import UserError
        from workbench.ui.widgets.plot_export import figure_bytes, plot_recipe, remembered_style

        style = remembered_style(self.settings)
        dock, plot = self._focused_plot()
        try:
            if plot is not None:
                draw, what = plot_recipe(dock, plot), f"the {dock.title} plot"
            elif self.session.last_result is not None:
                result = self.session.last_result
                images, reference, metrics = result.images, result.reference, dict(result.metrics)

                def draw(style):
                    from workbench.export.figures import preimage_figure

                    return preimage_figure(images, reference, metrics).figure(style)

                what = "the result grid"
            else:
                self._report("Nothing to copy yet: run a job first")
                return False
        except UserError as exc:
            self._report(str(exc), "error")
            return False
        self._copying = f"{what} ({style.size})"
        self.clipboard_slot.request(lambda cancel: figure_bytes(draw(style), style))
        return True

    def _on_copy_rendered(self, rendered) -> None:
        from workbench.ui.widgets.plot_export import put_on_clipboard

        put_on_clipboard(*rendered)
        self._report(f"Copied {self._copying} to the clipboard")

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
        self.tile = spin_box(0, 2048, 0, special="native", suffix=" px per tile",
                             tip="an animation's tiles, in pixels (native: the images' own size, never shrunk; a slide "
                                 "fits them into 1280 × 720)")
        self.fps = double_spin_box(0.0, 60, 0.0, special="for a talk", suffix=" frames/s",
                                   tip="for a talk: at least 6 s long, the result held 2 s at the end")
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
