"""Log dock: the jobs' messages and warnings, newest at the bottom."""

from __future__ import annotations

import datetime as _dt
import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPlainTextEdit

from workbench.ui.docks import BaseDock

COLORS = {"info": None, "warning": "#d35400", "error": "#c0392b", "debug": "#7f8c8d"}


class LogDock(BaseDock):
    title = "Log"
    area = Qt.DockWidgetArea.RightDockWidgetArea

    def __init__(self, session, parent=None) -> None:
        super().__init__(session, parent)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(5000)
        self.setWidget(self.text)
        self.messages: list[tuple[str, str]] = []
        session.message_logged.connect(self._on_message_logged)

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
