"""A label for text that changes at every progress update (iteration counters, ETA).

Qt relays out a label's parent whenever its text changes, unless the label's minimum and
maximum sizes are equal; measured in the live view, that was a layout pass of the status bar
and of the main window at every update. This label is fixed to the size of a template text
in its current font and refits itself when the font changes (presentation mode).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QLabel


class FixedLabel(QLabel):
    def __init__(self, template: str, parent=None) -> None:
        super().__init__("", parent)
        self._template = template
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._fit()

    def _fit(self) -> None:
        metrics = self.fontMetrics()
        margins = self.contentsMargins()
        self.setFixedSize(metrics.horizontalAdvance(self._template) + margins.left() + margins.right() + 8,
                          metrics.height() + margins.top() + margins.bottom() + 4)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fit()
