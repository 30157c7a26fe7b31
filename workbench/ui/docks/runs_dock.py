"""Runs dock: the workspace's run folders, newest first; a run's grid and metrics; Reopen
restores its configuration into the Method panel (through the session).

Scanning the folders and reading a run's metrics and grid are jobs (:mod:`workbench.ui.compute`),
so the GUI thread reads no file; a damaged folder is a row marked unreadable, never an error.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QImage, QPixmap
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton,
                               QSplitter, QVBoxLayout, QWidget)

from workbench.ui.docks import BaseDock
from workbench.ui.worker import LatestJobSlot

STATUS_MARK = {"done": "✓", "running": "…", "cancelled": "⨯", "failed": "!", "interrupted": "↯", "unreadable": "⚠"}


class RunsDock(BaseDock):
    title = "Runs"
    area = Qt.DockWidgetArea.RightDockWidgetArea

    refreshed = Signal()         # the list shows the latest scan
    details_shown = Signal(str)  # the path whose metrics and preview are shown

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        split = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        self.list.currentItemChanged.connect(self._on_current_changed)
        tl.addWidget(self.list)
        row = QHBoxLayout()
        self.reopen_button = QPushButton("Reopen")
        self.reopen_button.setToolTip("restore this run's configuration into the Method panel")
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
        self._scan_slot = LatestJobSlot(self)
        self._scan_slot.finished.connect(self._on_scanned)
        self._scan_slot.failed.connect(lambda m: session.log(f"cannot list the runs: {m}", "error"))
        self._details_slot = LatestJobSlot(self)
        self._details_slot.finished.connect(self._on_details)
        self._details_slot.failed.connect(lambda m: self.metrics.setPlainText(m))
        session.runs_changed.connect(self.refresh)
        self.refresh()

    @property
    def busy(self) -> bool:
        return self._scan_slot.busy or self._details_slot.busy

    def refresh(self) -> None:
        """Scan the workspace on a worker; the list is replaced when the scan is in."""
        from workbench.ui.compute import scan_runs_job

        store = self.session.store
        self._scan_slot.request(lambda cancel: scan_runs_job(store, cancel))

    def _on_scanned(self, rows) -> None:
        current = self.selected_path()
        self.summaries = {str(r.path): r for r in rows}
        self.list.blockSignals(True)
        self.list.clear()
        for r in rows:
            mark = STATUS_MARK.get(r.status, "?")
            if r.readable:
                label = f"{mark} {r.started[11:19]}  {r.kind} {r.config.get('layer', '')}"
            else:
                label = f"{mark} {r.path.name}  (unreadable)"
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, str(r.path))
            tip = f"{r.path.name}\nstatus: {r.status}"
            if r.error:
                tip += f"\nerror: {r.error}"
            item.setToolTip(tip)
            self.list.addItem(item)
            if str(r.path) == current:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._on_current_changed(self.list.currentItem(), None)
        self.refreshed.emit()

    def selected_path(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def selected(self):
        """The RunSummary of the selected row, or None."""
        return self.summaries.get(self.selected_path() or "")

    def _on_current_changed(self, item, _previous) -> None:
        summary = self.selected() if item is not None else None
        self.reopen_button.setEnabled(summary is not None and summary.readable and bool(summary.config))
        self.folder_button.setEnabled(item is not None)
        if item is None:
            self.preview.clear()
            self.metrics.setPlainText("")
            return
        from workbench.ui.compute import run_details_job

        path = item.data(Qt.ItemDataRole.UserRole)
        self.metrics.setPlainText("reading…")
        self._details_slot.request(lambda cancel: run_details_job(path, cancel))

    def _on_details(self, details: dict) -> None:
        if details["path"] != self.selected_path():
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
        """Restore the selected run's configuration (from the scan: no file is read here)."""
        summary = self.selected()
        if summary is None:
            return False
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


def to_pixmap(rgb: np.ndarray) -> QPixmap:
    """An RGB uint8 (H, W, 3) array as a pixmap (the pixmap owns a copy)."""
    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = arr.shape[:2]
    return QPixmap.fromImage(QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())
