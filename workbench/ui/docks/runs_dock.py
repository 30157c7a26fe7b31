"""Runs dock: the workspace's run folders, newest first; a run's grid and metrics; Reopen
restores its configuration into the Method dock (through the session)."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QPixmap
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton,
                               QSplitter, QVBoxLayout, QWidget)

from workbench.ui.docks import BaseDock

STATUS_MARK = {"done": "✓", "running": "…", "cancelled": "⨯", "failed": "!"}


class RunsDock(BaseDock):
    title = "Runs"
    area = Qt.DockWidgetArea.RightDockWidgetArea

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
        session.runs_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        current = self.selected_path()
        self.list.blockSignals(True)
        self.list.clear()
        for run in self.session.store.list():
            try:
                info = run.info
            except (OSError, ValueError):
                continue
            config = info.get("config", {})
            mark = STATUS_MARK.get(info.get("status"), "?")
            label = f"{mark} {info.get('started', '')[11:19]}  {info.get('kind', '')} {config.get('layer', '')}"
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, str(run.path))
            tip = f"{run.path.name}\nstatus: {info.get('status')}"
            if info.get("error"):
                tip += f"\nerror: {info['error']}"
            item.setToolTip(tip)
            self.list.addItem(item)
            if str(run.path) == current:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._on_current_changed(self.list.currentItem(), None)

    def selected_path(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _on_current_changed(self, item, _previous) -> None:
        self.reopen_button.setEnabled(item is not None)
        self.folder_button.setEnabled(item is not None)
        if item is None:
            self.preview.clear()
            self.metrics.setPlainText("")
            return
        path = Path(item.data(Qt.ItemDataRole.UserRole))
        grid = path / "images" / "grid.png"
        if grid.is_file():
            pixmap = QPixmap(str(grid))
            width = max(120, self.preview.width())
            self.preview.setPixmap(pixmap.scaledToWidth(min(width, pixmap.width() * 2), Qt.TransformationMode.FastTransformation))
        else:
            self.preview.setText("no images (yet)")
        try:
            info = json.loads((path / "run.json").read_text())
            metrics = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}
        except (OSError, ValueError) as exc:
            self.metrics.setPlainText(f"cannot read {path}: {exc}")
            return
        lines = [f"status: {info.get('status')}", f"device: {info.get('device')}"]
        if info.get("error"):
            lines.append(f"error: {info['error']}")
        lines += [f"{k}: {_short(v)}" for k, v in metrics.items()]
        self.metrics.setPlainText("\n".join(lines))

    def reopen(self) -> None:
        path = self.selected_path()
        if path is None:
            return
        config = json.loads((Path(path) / "run.json").read_text()).get("config", {})
        self.session.apply_config(config)
        self.session.log(f"configuration restored from {Path(path).name}")

    def _on_folder_clicked(self) -> None:
        path = self.selected_path()
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and value and isinstance(value[0], float):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    return str(value)
