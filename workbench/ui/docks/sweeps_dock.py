"""The Sweeps dock (issue 11): a grid of ordinary pre-image runs made from the current method
settings (the session's config: method, image, restarts, ...) over ticked layers × C values ×
seeds, run on the chosen executor (local, process; ray when it is importable) into
``<workspace>/sweeps/<stamp>/``. The cells fill a table as they finish; Open (or a double-click)
reopens a finished cell as a run, like the Runs dock's Reopen.

The sweep job (:func:`workbench.sweep.job.sweep_job`) runs on the dock's
:class:`~workbench.ui.worker.JobRunner`; the table follows its events, the grid as expanded
(:class:`~workbench.jobs.GridExpanded`) and each cell as it ends (:class:`~workbench.jobs.CellDone`).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QListWidget, QListWidgetItem, QPushButton, QSizePolicy,
                               QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)

from workbench.config import parse_ints
from workbench.config.parse import parse_floats
from workbench.errors import UserError
from workbench.preview.grids import executors, figure_job, outcome_row, read_sweep_job
from workbench.ui.docks import BaseDock
from workbench.ui.widgets.failure_banner import FailureBanner, window_words
from workbench.ui.widgets.image_label import ImageLabel
from workbench.ui.widgets.number_box import spin_box
from workbench.ui.worker import JobRunner, LatestJobSlot

#: Layer kinds a sweep leaves out of the ticks (their code is their input's).
PASS_THROUGH = ("Flatten", "Dropout", "Identity")
COLUMNS = ("layer", "C", "seed", "status", "error / activation")
#: Config fields of a cell that are the sweep's bookkeeping, not the user's settings.
SWEEP_ONLY = ("snapshot_every", "frame_every")


def parse_list(text: str, parse, field: str):
    """A comma-separated field's numbers by the configs' own parser (``parse_ints`` or
    ``parse_floats``, whose limits and messages apply), or None where the field is empty."""
    return parse(field, text) if text.strip() else None


def cell_value(row: dict[str, Any]) -> str:
    """The error (invert, caricature) or the activation (maximize) of a results row, or its error."""
    if row.get("status") == "failed":
        return str(row.get("error") or "failed")
    for name in ("reconstruction_error_mean", "activation"):
        if row.get(name) is not None:
            return f"{row[name]:.4g}"
    return ""


class SweepsDock(BaseDock):
    title = "Sweeps"
    area = Qt.DockWidgetArea.RightDockWidgetArea

    opened = Signal()                         # a sweep folder reopened from the Runs dock is shown

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        self.runner = JobRunner(self, rate=5.0)
        self.cells: list = []            # the grid's cells (workbench.sweep.grid.Cell)
        self.rows: list[dict[str, Any]] = []
        self.out: Path | None = None     # the running or last sweep's folder
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        self.layers = QListWidget()
        self.layers.setMinimumHeight(60)
        self.layers.setMaximumHeight(120)
        self.layers.setToolTip("the layers of the grid (tick them)")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.C = QLineEdit("1,20,300")
        self.C.setToolTip("data-term weights C, comma-separated (empty: the paper's per-layer preset)")
        self.seeds = QLineEdit("0")
        self.seeds.setToolTip("seeds, e.g. 0,1 or 0-3")
        self.iters = spin_box(1, 100_000, int(session.config.get("iters") or 300))
        self.executor = QComboBox()
        self.executor.addItems(executors())
        self.workers = spin_box(0, 4096, special="auto", tip="worker processes (process) or Ray CPUs (0: the cores)")
        for label, widget in (("C", self.C), ("seeds", self.seeds), ("iterations", self.iters),
                              ("executor", self.executor), ("workers", self.workers)):
            form.addRow(label, widget)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run sweep")
        self.run_button.setToolTip("run every layer × C × seed cell with the current method settings")
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.runner.bind_buttons(self.run_button, self.cancel_button)
        self.open_button = QPushButton("Open cell")
        self.open_button.setToolTip("reopen the selected finished cell as a run (or double-click it)")
        self.open_button.clicked.connect(lambda: self.open_cell())
        for b in (self.run_button, self.cancel_button, self.open_button):
            buttons.addWidget(b)
        self.status = QLabel("")
        self.status.setStyleSheet("color: gray")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.status.setMinimumHeight(self.status.fontMetrics().height() + 2)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumSize(120, 80)
        self.table.doubleClicked.connect(lambda index: self.open_cell(index.row()))
        layout.addWidget(QLabel("layers"))
        layout.addWidget(self.layers)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.failure = FailureBanner()
        self.failure.dismissed.connect(lambda: session.dismiss_failure(self.title))
        session.failure_dismissed.connect(lambda where: self.failure.clear() if where == self.title else None)
        layout.addWidget(self.failure)
        self.views = QTabWidget()
        self.views.addTab(self.table, "Cells")
        self.figure = ImageLabel("the figure (layers × C, as the paper's Fig. 6) appears when an inversion sweep is done")
        self.figure.setMinimumSize(120, 80)
        self.views.addTab(self.figure, "Figure")
        layout.addWidget(self.views, 1)
        self.setWidget(body)
        self._reader = LatestJobSlot(self)
        self._reader.finished.connect(self._on_sweep_read)
        self._reader.failed.connect(lambda message: self._set_status(message))
        self._figure_slot = LatestJobSlot(self)
        self._figure_slot.finished.connect(self.show_figure)
        session.collection_reopened.connect(self._on_collection_reopened)
        self.runner.event_yielded.connect(self._on_grid_event)
        self.runner.progressed.connect(self._on_progressed)
        self.runner.logged.connect(lambda level, message: session.log(message, level))
        self.runner.finished.connect(self._on_finished)
        self.runner.cancelled.connect(lambda: self._set_status("cancelled: the finished cells are kept"))
        self.runner.failed.connect(self._on_failed)
        session.model_changed.connect(self._on_model_changed)
        if session.model is not None:
            self._on_model_changed(session.model)

    # --- the grid ------------------------------------------------------------------------------
    def _on_model_changed(self, model) -> None:
        self.layers.clear()
        if model is None:
            return
        current = self.session.config.get("layer")
        for info in model.layers():
            if info.kind in PASS_THROUGH:
                continue
            item = QListWidgetItem(info.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if info.name == current else Qt.CheckState.Unchecked)
            self.layers.addItem(item)

    def ticked_layers(self) -> list[str]:
        return [self.layers.item(i).text() for i in range(self.layers.count())
                if self.layers.item(i).checkState() == Qt.CheckState.Checked]

    def set_ticked(self, names) -> None:
        names = set(names)
        for i in range(self.layers.count()):
            item = self.layers.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)

    def sweep_config(self, out: Path):
        """The SweepConfig of the current settings (raises UserError when they make no grid)."""
        from workbench.config.sweep import SweepConfig, options_of

        cfg = self.session.config
        method = cfg.get("method") or "invert"
        layers = tuple(self.ticked_layers())
        if not layers:
            raise UserError("tick at least one layer")
        channel = cfg.get("channel")
        spec, _consent = self.session.model_to_reopen()  # the loaded model's whole spec, not its bare name
        config = SweepConfig(
            models=(spec.model,), model_options=options_of(spec), method=method, layers=layers,
            channels=(int(channel),) if method == "maximize" and channel is not None else None,
            channel_mean=bool(cfg.get("channel_mean")) if method == "maximize" else False,
            C=parse_list(self.C.text(), parse_floats, "C"), seeds=parse_list(self.seeds.text(), parse_ints, "seeds") or (),
            images=(str(cfg["image"]),) if method != "maximize" and cfg.get("image") else (),
            restarts=int(cfg.get("restarts") or 1), iters=self.iters.value(), tol=cfg.get("tol"),
            device=str(cfg.get("device") or "auto"), executor=self.executor.currentText(),
            workers=self.workers.value() or None, out=str(out))
        config.validate()
        return config

    def start(self) -> bool:
        """Run the grid of the current settings in a new folder under ``<workspace>/sweeps``."""
        if self.runner.running:
            return False
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        out = self.session.store.root / "sweeps" / stamp
        try:
            config = self.sweep_config(out)
        except UserError as exc:
            self._set_status(str(exc))
            return False
        self.out = out
        self.failure.clear()
        self.cells, self.rows = [], []
        self.table.setRowCount(0)
        self._set_status("expanding the grid…")
        consent = self.session.model_to_reopen()[1]  # what the window's model was opened with, no more

        def job(cancel):
            from workbench.sweep.job import sweep_job

            return sweep_job(config, cancel=cancel, **consent)

        return self.runner.start(job)

    # --- the job's events ----------------------------------------------------------------------
    def _on_grid_event(self, event) -> None:
        from workbench.jobs import CellDone, GridExpanded

        if isinstance(event, GridExpanded):
            self._on_grid_expanded(event.cells, event.done)
        elif isinstance(event, CellDone):
            self._on_cell_finished(event.index, event.folder, event)

    def _on_grid_expanded(self, cells, done) -> None:
        self.cells = list(cells)
        self.rows = [{**cell.columns, "status": "pending"} for cell in self.cells]
        for i, result in done.items():
            self.rows[i].update(outcome_row(result))
        self.table.setRowCount(len(self.cells))
        for i in range(len(self.cells)):
            self._show_row(i)
        self._set_status(f"{len(self.cells)} cell(s) on the {self.executor.currentText()} executor")

    def _on_cell_finished(self, index: int, folder: str, outcome) -> None:
        if 0 <= index < len(self.rows):
            self.rows[index].update(outcome_row(outcome))
            self._show_row(index)

    def _show_row(self, i: int) -> None:
        row = self.rows[i]
        C = row.get("C")
        values = (row.get("layer") or "", "preset" if C is None else f"{C:g}", str(row.get("seed", "")),
                  row.get("status", ""), cell_value(row))
        for c, text in enumerate(values):
            item = QTableWidgetItem(str(text))
            if c == 4 and row.get("error"):
                item.setToolTip(str(row["error"]))
            self.table.setItem(i, c, item)

    def _on_progressed(self, progress) -> None:
        eta = progress.values[-1][1].get("eta_s") if progress.values else None
        text = f"{progress.iteration} / {progress.total} cells"
        if eta is not None and eta == eta and progress.iteration < progress.total:
            text += f", about {eta:.0f} s left"
        self._set_status(text)

    def _on_finished(self, result) -> None:
        counts = getattr(result, "counts", {}) or {}
        self._set_status(", ".join(f"{v} {k}" for k, v in counts.items() if v) + f" — {self.out}")
        self.session.runs_changed.emit()
        out, rows = Path(result.path), list(getattr(result, "rows", []) or [])
        self._figure_slot.request(lambda cancel: figure_job(out, rows, cancel))

    def _on_failed(self, message: str) -> None:
        message = window_words(message, {"layers": "layers", "C": "C", "seeds": "seeds", "iters": "iterations"})
        self._set_status(message)
        self.failure.show_failure(message)
        self.session.report_failure(self.title, message)
        self.session.runs_changed.emit()

    # --- a sweep reopened from the Runs dock ---------------------------------------------------
    def _on_collection_reopened(self, kind: str, path: str) -> None:
        if kind == "sweep":
            self.open_sweep(path)

    def open_sweep(self, path: str | Path) -> bool:
        """Show the sweep in ``path``: its cells (Open reopens them) and its figure; False while one runs."""
        if self.runner.running:
            self._set_status("a sweep is running: open the other one when it ends")
            return False
        out = Path(path)
        self._set_status(f"reading {out.name}…")
        self._reader.request(lambda cancel: read_sweep_job(out, cancel))
        self.show()
        self.raise_()
        return True

    def _on_sweep_read(self, result) -> None:
        self.out, cells, rows, figure = result
        self.cells = cells
        self.rows = [dict(r) for r in rows]
        self.table.setRowCount(len(self.rows))
        for i in range(len(self.rows)):
            self._show_row(i)
        self.show_figure(figure)
        self._set_status(f"{len(rows)} cell(s)")
        self.opened.emit()

    def show_figure(self, rgb) -> None:
        """The sweep's Fig. 6 layout in the Figure tab (fitted to the tab, aspect kept)."""
        if rgb is None:
            self.figure.show_text("no figure: the layers × C figure needs finished inversions")
        else:
            self.figure.show_image(rgb)

    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setToolTip(text)

    # --- cells as runs ---------------------------------------------------------------------------
    def open_cell(self, row: int | None = None) -> bool:
        """Reopen cell ``row`` (default: the selected one) as a run: its config and its results."""
        if row is None:
            row = self.table.currentRow()
        if self.out is None or not 0 <= row < len(self.cells) or self.rows[row].get("status") != "done":
            self._set_status("select a finished cell to open it")
            return False
        cell = self.cells[row]
        config = {k: v for k, v in cell.config.items() if k not in SWEEP_ONLY}
        self.session.apply_config(config, run=self.out / "cells" / cell.name)
        return True

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        return (self.runner.shutdown(timeout_ms) & self._reader.shutdown(timeout_ms)
                & self._figure_slot.shutdown(timeout_ms))
