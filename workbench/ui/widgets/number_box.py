"""The docks' number fields made one way: a range (a config's bounds), a start value (the
config's default), and optionally a special text shown at the minimum ("preset", "auto", ...),
a unit, a step and a tooltip."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QSpinBox


def _set_up(box: QAbstractSpinBox, lo, hi, value, special: str | None, suffix: str, step, tip: str):
    box.setRange(lo, hi)
    if special:
        box.setSpecialValueText(special)  # shown in place of the minimum
    if suffix:
        box.setSuffix(suffix)
    if step is not None:
        box.setSingleStep(step)
    if value is not None:
        box.setValue(value)
    if tip:
        box.setToolTip(tip)
    return box


def spin_box(lo: int, hi: int, value: int | None = None, *, special: str | None = None, suffix: str = "",
             step: int | None = None, tip: str = "") -> QSpinBox:
    """An integer field over [lo, hi] starting at ``value`` (else at ``lo``)."""
    return _set_up(QSpinBox(), lo, hi, value, special, suffix, step, tip)


def double_spin_box(lo: float, hi: float, value: float | None = None, *, decimals: int | None = None,
                    special: str | None = None, suffix: str = "", step: float | None = None,
                    tip: str = "") -> QDoubleSpinBox:
    """A decimal field over [lo, hi] (``decimals`` shown, default 2) starting at ``value`` (else at ``lo``)."""
    box = QDoubleSpinBox()
    if decimals is not None:
        box.setDecimals(decimals)  # before the range and value, which are rounded to it
    return _set_up(box, lo, hi, value, special, suffix, step, tip)
