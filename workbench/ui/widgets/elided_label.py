"""A one-line label that never widens its window: text that does not fit ends in "…".

A plain :class:`QLabel` asks for the width of its whole text, and a top-level window grows to
its children's minimum sizes: one long file path in a status message or a header made the main
window wider than the screen. This label asks for a few characters at least and elides what
does not fit (plain or rich text, styles kept); its tooltip is the whole text when it is cut.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QAbstractTextDocumentLayout, QPainter, QTextCursor, QTextDocument
from PySide6.QtGui import Qt as GuiQt  # Qt::mightBeRichText lives in QtGui
from PySide6.QtWidgets import QLabel, QSizePolicy, QToolTip

ELLIPSIS = "\u2026"


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent=None, min_chars: int = 6) -> None:
        super().__init__(text, parent)
        self._min_chars = min_chars
        self._cache: tuple | None = None  # (text, width, font key) → QTextDocument or str to draw
        self.elided = False
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def minimumSizeHint(self) -> QSize:
        hint = super().sizeHint()
        m = self.contentsMargins()
        width = self.fontMetrics().horizontalAdvance("x" * self._min_chars) + m.left() + m.right()
        return QSize(min(width, hint.width()), hint.height())

    def _rich(self) -> bool:
        fmt = self.textFormat()
        return fmt == Qt.TextFormat.RichText or (fmt == Qt.TextFormat.AutoText and GuiQt.mightBeRichText(self.text()))

    def _document(self, html: str) -> QTextDocument:
        doc = QTextDocument()
        doc.setDocumentMargin(0)
        doc.setDefaultFont(self.font())
        doc.setHtml(html)
        return doc

    def _fitted(self, width: int):
        """What to draw in ``width`` pixels: the text's document, or its elided plain text."""
        key = (self.text(), width, self.font().key(), self._rich())
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        text = self.text()
        if not self._rich():
            shown = self.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, width)
            self.elided = shown != text
        else:
            shown = self._document(text)
            self.elided = shown.idealWidth() > width
            if self.elided:
                length = shown.characterCount() - 1
                lo, hi = 0, length  # the longest prefix that fits with the ellipsis
                best = self._truncated(text, 0)
                while lo <= hi:
                    mid = (lo + hi) // 2
                    doc = self._truncated(text, mid)
                    if doc.idealWidth() <= width:
                        best, lo = doc, mid + 1
                    else:
                        hi = mid - 1
                shown = best
        self._cache = (key, shown)
        return shown

    def _truncated(self, html: str, keep: int) -> QTextDocument:
        doc = self._document(html)
        cursor = QTextCursor(doc)
        cursor.setPosition(keep)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        cursor.insertText(ELLIPSIS)
        return doc

    def paintEvent(self, event) -> None:
        rect = self.contentsRect()
        shown = self._fitted(rect.width())
        painter = QPainter(self)
        if isinstance(shown, str):
            self.style().drawItemText(painter, rect, int(self.alignment()), self.palette(), self.isEnabled(), shown,
                                      self.foregroundRole())
            return
        height = shown.size().height()
        top = rect.top()
        if self.alignment() & Qt.AlignmentFlag.AlignVCenter:
            top += max(0, (rect.height() - height) / 2)
        elif self.alignment() & Qt.AlignmentFlag.AlignBottom:
            top += max(0, rect.height() - height)
        painter.translate(rect.left(), top)
        context = QAbstractTextDocumentLayout.PaintContext()
        context.palette = self.palette()
        context.palette.setColor(context.palette.ColorRole.Text, self.palette().color(self.foregroundRole()))
        shown.documentLayout().draw(painter, context)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip and not self.toolTip() and self.elided:
            whole = self._document(self.text()).toPlainText() if self._rich() else self.text()
            QToolTip.showText(event.globalPos(), whole, self)
            return True
        return super().event(event)
