"""Where a failed job says why: a red one-line banner in the dock that started it (with an
optional fix button and a dismiss button), and the window's words for the message.

A job's :class:`~workbench.errors.UserError` is written for the CLI ("lower --n", "see
`workbench layers --model X`"). :func:`window_words` rewrites those phrases into the names the
dock's fields carry, so the user reads what to change where they are looking.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget

ERROR_COLOR = "#c0392b"

_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")
_CLI_LAYERS = re.compile(r"\(?(?:see |run )?`workbench layers[^`]*`(?: for the names)?\)?")
_CLI_ANY = re.compile(r"`workbench ([a-z-]+)[^`]*`")


def window_words(message: str, fields: Mapping[str, str] | None = None) -> str:
    """``message`` with CLI flags named by the window's fields: ``--n`` → ``fields["n"]`` (else
    the option's name in words, "--max-disp" → "max disp"), "`workbench layers ...`" → "the
    Layers dock" and any other "`workbench CMD ...`" → "the CMD command"."""
    fields = dict(fields or {})

    def flag(match: re.Match) -> str:
        name = match.group(1)
        key = name.replace("-", "_")
        return f"“{fields[key]}”" if key in fields else f"“{name.replace('-', ' ')}”"

    text = _CLI_LAYERS.sub("the Layers dock lists the names", message)
    text = _CLI_ANY.sub(lambda m: f"the {m.group(1)} command", text)
    return _FLAG.sub(flag, text)


class FailureBanner(QWidget):
    """A hidden red line that :meth:`show_failure` fills; Dismiss hides it, and so does
    :meth:`clear` (a dock calls it when the user starts again). ``fix`` offers one action."""

    dismissed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 2, 0, 2)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setStyleSheet(f"color: {ERROR_COLOR}; font-weight: 600")
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.fix_button = QPushButton("")
        self.fix_button.hide()
        self.dismiss_button = QPushButton("Dismiss")
        self.dismiss_button.setToolTip("hide this message")
        row.addWidget(self.label, 1)
        row.addWidget(self.fix_button, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.dismiss_button, 0, Qt.AlignmentFlag.AlignTop)
        self.dismiss_button.clicked.connect(self._dismiss)
        self._fix: Callable[[], None] | None = None
        self.fix_button.clicked.connect(self._apply_fix)
        self.hide()

    @property
    def message(self) -> str:
        return self.label.text() if not self.isHidden() else ""

    def show_failure(self, message: str, fix: tuple[str, Callable[[], None]] | None = None) -> None:
        self.label.setText(message)
        self.label.setToolTip(message)
        self._fix = fix[1] if fix else None
        self.fix_button.setText(fix[0] if fix else "")
        self.fix_button.setVisible(fix is not None)
        self.show()

    def clear(self) -> None:
        self._fix = None
        self.hide()

    def _dismiss(self) -> None:
        self.clear()
        self.dismissed.emit()

    def _apply_fix(self) -> None:
        fix = self._fix
        self.clear()
        self.dismissed.emit()
        if fix is not None:
            fix()
