"""A column of controls that scrolls vertically when its dock is short, and is always as wide
as its contents need (in the current font: presentation mode makes it wider)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtWidgets import QFrame, QScrollArea


class ScrollColumn(QScrollArea):
    def __init__(self, widget, parent=None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(widget)
        widget.installEventFilter(self)

    def _width(self) -> int:
        return self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()

    def minimumSizeHint(self) -> QSize:
        return QSize(self._width(), super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        return QSize(self._width(), super().sizeHint().height())

    def eventFilter(self, watched, event) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # its contents changed size (a font, a text): so does the column
        return super().eventFilter(watched, event)
