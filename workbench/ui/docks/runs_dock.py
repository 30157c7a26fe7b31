"""Runs dock: the workspace's run folders as a sortable, filterable table (kind, model, layer,
C, error, status, date; newest first); a run's grid and metrics; Reopen (or a double-click)
restores its configuration into the Method panel and brings back its images, metrics and
energy curves (through the session), so an old run can be looked at and exported again.

Scanning the folders (run.json, and metrics.json for C and the error) and reading a run's
metrics and grid are jobs, so the GUI thread reads no file; a damaged folder is a row marked
unreadable, never an error.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QSignalBlocker, QSortFilterProxyModel, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QPlainTextEdit, QPushButton, QSplitter, QTableView, QVBoxLayout, QWidget)

from workbench.preview.runs import details_job, scan_table_job
from workbench.ui.docks import BaseDock
from workbench.ui.widgets.image_label import to_pixmap
from workbench.ui.worker import LatestJobSlot

STATUS_MARK = {"done": "✓", "running": "…", "cancelled": "⨯", "failed": "!", "interrupted": "↯", "unreadable": "⚠"}

#: The table's columns, in order, and what each one's header tooltip says.
COLUMNS = (("kind", "the job: invert, maximize, caricature, deform, ..."),
           ("model", "the model the run used"),
           ("layer", "the layer it looked at"),
           ("C", "the data term's weight C of eq. 7 (the preset's value when it was not set)"),
           ("error", "reconstruction error (eq. 3), the mean over the restarts (inversions)"),
           ("status", "done, cancelled, failed, running, interrupted (its process is gone) or unreadable"),
           ("date", "when it started"))
COLUMN = {name: i for i, (name, _tip) in enumerate(COLUMNS)}
#: Run kinds that hold runs of their own, reopened in their dock (Sweeps, Atlas).
COLLECTIONS = ("sweep", "atlas")
#: While a listed run is running, the table is scanned again this often (ms): runs update as they end.
POLL_MS = 1500
PATH_ROLE = Qt.ItemDataRole.UserRole
SORT_ROLE = Qt.ItemDataRole.UserRole + 1


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def table_row(summary, numbers: dict) -> list[tuple[str, object]]:
    """(text, sort key) per column for one run."""
    from workbench.ui.docks.model_dock import display_name

    mark = STATUS_MARK.get(summary.status, "?")
    date = summary.started.replace("T", " ")[:16]
    if not summary.readable:
        return [("", ""), (summary.path.name, summary.path.name), ("", ""), ("", None), ("", None),
                (f"{mark} unreadable", "unreadable"), (date, summary.started)]
    config = summary.config
    model = numbers.get("model") or config.get("model") or ""
    model = display_name(model) if isinstance(model, str) else str(model)
    C = _number(numbers.get("C"))
    if C is None:
        C = _number(config.get("C"))
    C_text = f"{C:g}" if C is not None else ("preset" if "C" in config else "")
    error = _number(numbers.get("error"))
    kind = summary.kind if summary.kind not in ("?", "preimage") else str(config.get("method") or summary.kind)
    layer = config.get("layer") or config.get("layers") or ""
    layer = ", ".join(map(str, layer)) if isinstance(layer, (list, tuple)) else str(layer)
    if not model and isinstance(config.get("models"), (list, tuple)):  # a sweep's models
        model = ", ".join(display_name(str(m)) for m in config["models"])
    return [(kind, kind), (model, model.lower()), (layer, layer), (C_text, C), (f"{error:.4g}" if error is not None else "", error),
            (f"{mark} {summary.status}", summary.status), (date, summary.started)]


def _table_model(parent) -> QStandardItemModel:
    model = QStandardItemModel(0, len(COLUMNS), parent)
    model.setHorizontalHeaderLabels([name for name, _tip in COLUMNS])
    for i, (_name, tip) in enumerate(COLUMNS):
        model.horizontalHeaderItem(i).setToolTip(tip)
    return model


class RunsProxy(QSortFilterProxyModel):
    """Sorts numbers as numbers (a run without one last) and filters on one column or all."""

    def lessThan(self, left, right) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if a is None or b is None or type(a) is not type(b):
            if (a is None) != (b is None):  # a run without the value goes last, whichever the order
                return (b is None) if self.sortOrder() == Qt.SortOrder.AscendingOrder else (a is None)
            return str(a) < str(b)
        return a < b


class RunsDock(BaseDock):
    title = "Runs"
    area = Qt.DockWidgetArea.LeftDockWidgetArea

    refreshed = Signal()         # the table shows the latest scan
    details_shown = Signal(str)  # the path whose metrics and preview are shown

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        split = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        filters = QHBoxLayout()
        self.filter_column = QComboBox()
        self.filter_column.addItem("any column", -1)
        for name in ("kind", "model", "layer", "status", "date"):
            self.filter_column.addItem(name, COLUMN[name])
        self.filter_column.setToolTip("the column the filter looks in")
        self.filter_text = QLineEdit()
        self.filter_text.setPlaceholderText("filter runs…")
        self.filter_text.setClearButtonEnabled(True)
        filters.addWidget(self.filter_column)
        filters.addWidget(self.filter_text, 1)
        tl.addLayout(filters)
        self.model = _table_model(self)
        self.proxy = RunsProxy(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COLUMN["date"], Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_changed)
        self.table.doubleClicked.connect(lambda _index: self.reopen())
        self.filter_text.textChanged.connect(self._on_filter_changed)
        self.filter_column.currentIndexChanged.connect(self._on_filter_changed)
        tl.addWidget(self.table)
        row = QHBoxLayout()
        self.reopen_button = QPushButton("Reopen")
        self.reopen_button.setToolTip("restore this run's configuration into the Method panel, and its images,\n"
                                      "metrics and energy curves into the views (or double-click the run)")
        self.reopen_button.clicked.connect(self.reopen)
        self.folder_button = QPushButton("Folder")
        self.folder_button.clicked.connect(self._on_folder_clicked)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        for b in (self.reopen_button, self.folder_button, refresh):
            row.addWidget(b)
        tl.addLayout(row)
        split.addWidget(top)
        bottom = QWidget()
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(80)
        self.metrics = QPlainTextEdit()
        self.metrics.setReadOnly(True)
        bl.addWidget(self.preview)
        bl.addWidget(self.metrics, 1)
        split.addWidget(bottom)
        self.setWidget(split)
        self.summaries: dict[str, object] = {}  # path → RunSummary of the last scan
        self._numbers: dict[str, tuple] = {}    # path → (metrics.json mtime, its numbers): the scan's cache
        self._shown_path: str | None = None
        self._scan_slot = LatestJobSlot(self)
        self._scan_slot.finished.connect(self._on_scanned)
        self._scan_slot.failed.connect(lambda m: session.log(f"cannot list the runs: {m}", "error"))
        self._details_slot = LatestJobSlot(self)
        self._details_slot.finished.connect(self._on_details)
        self._details_slot.failed.connect(lambda m: self.metrics.setPlainText(m))
        session.runs_changed.connect(self.refresh)
        for signal in (session.job_finished, session.job_cancelled, session.job_failed):
            signal.connect(lambda *_: self.refresh())
        # a run that ends in another dock, another window or the CLI: watch the workspace, and scan
        # again while a listed run is running, so its new status shows without Refresh
        self._poll = QTimer(self)
        self._poll.setSingleShot(True)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self.refresh)
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(lambda _path: self._poll.start())
        self._update_buttons()
        self.refresh()

    @property
    def busy(self) -> bool:
        return self._scan_slot.busy or self._details_slot.busy

    def _watch(self) -> None:
        """Watch the workspace and its sweeps/atlases folders for new and removed runs."""
        from workbench.sweep.listing import GROUPS

        root = self.session.store.root
        wanted = [str(p) for p in (root, *(root / g for g in GROUPS)) if p.is_dir()]
        old = set(self._watcher.directories())
        if old != set(wanted):
            if old:
                self._watcher.removePaths(list(old))
            if wanted:
                self._watcher.addPaths(wanted)

    def refresh(self) -> None:
        """Scan the workspace on a worker; the table is replaced when the scan is in."""
        store, cache = self.session.store, dict(self._numbers)
        self._scan_slot.request(lambda cancel: scan_table_job(store, cache, cancel))

    def _on_scanned(self, scan) -> None:
        rows, self._numbers = scan
        signature = tuple((str(r.path), r.status, r.kind, r.started, r.error,
                           repr(self._numbers.get(str(r.path), (None, {}))[1])) for r in rows)
        if signature == getattr(self, "_signature", None):
            # nothing changed (a poll while a run runs): the table, and so the window's layout, stay
            if any(r.status == "running" for r in rows):
                self._poll.start()
            self.refreshed.emit()
            return
        self._signature = signature
        current = self.selected_path()
        self.summaries = {str(r.path): r for r in rows}
        with QSignalBlocker(self.table.selectionModel()):
            model = _table_model(self)  # filled, then swapped in: one sort instead of one per row
            for r in rows:
                items = []
                for text, key in table_row(r, self._numbers.get(str(r.path), (None, {}))[1]):
                    item = QStandardItem(text)
                    item.setData(key, SORT_ROLE)
                    item.setData(str(r.path), PATH_ROLE)
                    items.append(item)
                tip = f"{r.path.name}\nstatus: {r.status}" + (f"\nerror: {r.error}" if r.error else "")
                for item in items:
                    item.setToolTip(tip)
                model.appendRow(items)
            old, self.model = self.model, model
            self.proxy.setSourceModel(model)
            old.deleteLater()
            self.table.resizeColumnsToContents()
        if current is not None and current in self.summaries:
            self.select_path(current, emit=False)
        else:
            self.table.selectionModel().clearCurrentIndex()
            self.table.clearSelection()
            self._show_details(None)
        self._update_buttons()
        self._watch()
        if any(r.status == "running" for r in rows):
            self._poll.start()
        self.refreshed.emit()

    def _on_filter_changed(self, *_args) -> None:
        self.proxy.setFilterKeyColumn(int(self.filter_column.currentData()))
        self.proxy.setFilterFixedString(self.filter_text.text())
        if self.selected_path() is None:
            self._show_details(None)
        self._update_buttons()

    def set_filter(self, text: str, column: str | None = None) -> None:
        """Show only runs whose ``column`` (any column when None) holds ``text``."""
        index = self.filter_column.findData(-1 if column is None else COLUMN[column])
        self.filter_column.setCurrentIndex(index)
        self.filter_text.setText(text)

    # --- rows ------------------------------------------------------------------------------
    def row_count(self) -> int:
        """Rows shown (after the filter)."""
        return self.proxy.rowCount()

    def row_paths(self) -> list[str]:
        """The shown runs' folders, in the table's order."""
        return [self.proxy.index(i, 0).data(PATH_ROLE) for i in range(self.proxy.rowCount())]

    def row_cells(self, path: str | Path) -> dict[str, str]:
        """The texts of ``path``'s row, by column name."""
        for i in range(self.proxy.rowCount()):
            if self.proxy.index(i, 0).data(PATH_ROLE) == str(path):
                return {name: self.proxy.index(i, c).data() for c, (name, _tip) in enumerate(COLUMNS)}
        raise KeyError(str(path))

    def sort_by(self, column: str, descending: bool = False) -> None:
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.table.sortByColumn(COLUMN[column], order)

    def select_path(self, path: str | Path | None, emit: bool = True) -> bool:
        """Make ``path``'s row current (None: no row); False if it is not shown."""
        selection = self.table.selectionModel()
        if path is None:
            selection.clearCurrentIndex()
            self.table.clearSelection()
            self._on_current_changed(None, None)
            return True
        for i in range(self.proxy.rowCount()):
            index = self.proxy.index(i, 0)
            if index.data(PATH_ROLE) == str(path):
                with QSignalBlocker(selection) if not emit else nullcontext():
                    self.table.selectRow(i)
                    selection.setCurrentIndex(index, selection.SelectionFlag.NoUpdate)
                if emit and self._shown_path != str(path):  # already current: Qt says nothing
                    self._show_details(str(path))
                self._update_buttons()  # Reopen and Folder follow the row, whichever way it was chosen
                return True
        return False

    def selected_path(self) -> str | None:
        index = self.table.selectionModel().currentIndex()
        if not index.isValid() or not self.table.selectionModel().isRowSelected(index.row(), index.parent()):
            return None
        return index.data(PATH_ROLE)

    def selected(self):
        """The RunSummary of the selected row, or None."""
        return self.summaries.get(self.selected_path() or "")

    def _update_buttons(self) -> None:
        summary = self.selected()
        self.reopen_button.setEnabled(summary is not None and summary.readable
                                      and (bool(summary.config) or summary.kind in COLLECTIONS))
        self.folder_button.setEnabled(summary is not None)

    def _on_current_changed(self, current, _previous) -> None:
        path = current.data(PATH_ROLE) if current is not None and current.isValid() else None
        self._show_details(path)
        self._update_buttons()

    def _show_details(self, path: str | None) -> None:
        self._shown_path = path
        if path is None:
            self.preview.clear()
            self.metrics.setPlainText("")
            return
        self.metrics.setPlainText("reading…")
        self._details_slot.request(lambda cancel: details_job(path, cancel))

    def _on_details(self, details: dict) -> None:
        if details["path"] != self._shown_path:
            return
        self.metrics.setPlainText("\n".join(details["lines"]))
        grid = details["grid"]
        if grid is not None:
            pixmap = to_pixmap(grid)
            width = max(120, self.preview.width())
            self.preview.setPixmap(pixmap.scaledToWidth(min(width, pixmap.width() * 2), Qt.TransformationMode.FastTransformation))
        else:
            self.preview.clear()
            self.preview.setText(details["note"])
        self.details_shown.emit(details["path"])

    def reopen(self) -> bool:
        """Restore the selected run's configuration (from the scan: no file is read here); its
        images, metrics and energies are read by the session on a worker."""
        summary = self.selected()
        if summary is None:
            return False
        if summary.readable and summary.kind in COLLECTIONS:  # shown by the Sweeps or the Atlas dock
            self.session.collection_reopened.emit(summary.kind, str(summary.path))
            self.session.log(f"{summary.kind} reopened: {summary.path.name}")
            return True
        if not summary.readable or not summary.config:
            self.session.log(f"cannot reopen {summary.path.name}: {summary.error or 'it records no configuration'}", "error")
            return False
        self.session.apply_config(dict(summary.config), run=summary.path)
        self.session.log(f"configuration restored from {summary.path.name}")
        return True

    def _on_folder_clicked(self) -> None:
        path = self.selected_path()
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        return self._scan_slot.shutdown(timeout_ms) & self._details_slot.shutdown(timeout_ms)
