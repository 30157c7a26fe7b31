"""The docks' number fields (widgets/number_box): range, start value, special text at the minimum,
unit, step and shown decimals, as every dock sets them."""

from __future__ import annotations


def test_a_spin_box_starts_at_its_value_clamped_to_its_range(qapp):
    from workbench.ui.widgets.number_box import spin_box

    box = spin_box(1, 20, 25, step=2, suffix=" px", tip="how many")
    assert (box.minimum(), box.maximum(), box.value(), box.singleStep()) == (1, 20, 20, 2)
    assert box.text() == "20 px" and box.toolTip() == "how many"
    assert spin_box(3, 9).value() == 3  # no value: the minimum


def test_the_special_text_stands_for_the_minimum(qapp):
    from workbench.ui.widgets.number_box import double_spin_box, spin_box

    workers = spin_box(0, 4096, special="auto")
    assert workers.text() == "auto"
    workers.setValue(3)
    assert workers.text() == "3"
    C = double_spin_box(0.0, 1e12, decimals=1, special="preset")
    assert C.text() == "preset" and C.maximum() == 1e12
    C.setValue(123.46)
    assert C.value() == 123.5 and C.text() == "123.5"
