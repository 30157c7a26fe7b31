"""Log dock: the jobs' messages and warnings, newest at the bottom."""

from __future__ import annotations

import datetime as _dt
import html

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from workbench.ui.docks import BaseDock

COLORS = {"info": None, "warning": "#d35400", "error": "#c0392b", "debug": "#7f8c8d"}


class LogDock(BaseDock):
    title = "Log"
    area = Qt.DockWidgetArea.LeftDockWidgetArea

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        body = QWidget()
        column = QVBoxLayout(body)
        column.setContentsMargins(2, 2, 2, 2)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(5000)
        row = QHBoxLayout()
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("empty the log (the log file keeps everything)")
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("save the messages shown as a text file")
        row.addWidget(self.clear_button)
        row.addWidget(self.save_button)
        row.addStretch(1)
        column.addLayout(row)
        column.addWidget(self.text, 1)
        self.setWidget(body)
        self.messages: list[tuple[str, str]] = []
        session.message_logged.connect(self._on_message_logged)
        self.clear_button.clicked.connect(self.clear)
        self.save_button.clicked.connect(self.choose_save)

    def clear(self) -> None:
        self.messages = []
        self.text.clear()

    def choose_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the log", str(self.session.workspace / "workbench-log.txt"),
                                              "Text (*.txt)")
        if path:
            self.save(path)

    def save(self, path: str | Path) -> Path:
        """The messages shown, one a line (level: message), written to ``path``."""
        path = Path(path)
        lines = [message if level == "info" else f"{level}: {message}" for level, message in self.messages]
        path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        self.session.log(f"log saved to {path}")
        return path

    def _on_message_logged(self, level: str, message: str) -> None:
        self.messages.append((level, message))
        stamp = _dt.datetime.now().strftime("%H:%M:%S")
        body = html.escape(message).replace("\n", "<br>")
        color = COLORS.get(level)
        tag = "" if level == "info" else f"{level}: "
        line = f"<span style='color:gray'>{stamp}</span> {tag}{body}"
        if color:
            line = f"<span style='color:{color}'>{line}</span>"
        self.text.appendHtml(line)
