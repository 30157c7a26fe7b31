"""Switching theme (issue 20): the Energies legend was nearly invisible after a switch while a
job ran and stayed light after switching back, and the gutters between result tiles stayed white
in the dark theme. Dark → light → dark, during a run and after it: every legend entry is in the
theme's plot text colour, and the gutters are the theme's window colour."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtGui import QColor

from tests.gui.conftest import running_job_threads, wait_until
from workbench.ui import theme
from workbench.ui.app import build_window


def legend_colours(window) -> set[str]:
    legend = window.docks["EnergiesDock"].legend
    assert legend.items, "the Energies legend has entries"
    return {QColor(label.opts["color"]).name() if not isinstance(label.opts["color"], QColor)
            else label.opts["color"].name() for _sample, label in legend.items}


def gutter_value(window) -> float:
    """The mosaic's value in the gap right of the first tile (the reference)."""
    grid = window.live_view.grid
    h, w, columns, pad = grid._geometry
    assert columns >= 2 and pad >= 1
    image = np.asarray(grid.item.image)
    gap = image[: h, w: w + pad]  # pyqtgraph's ImageItem holds the mosaic as rows × columns
    assert np.ptp(gap) < 1e-6, "the gutter is one colour"
    return float(gap.reshape(-1)[0])


def assert_themed(window, name: str) -> None:
    c = theme.colors(name)
    assert legend_colours(window) == {QColor(c["plot_fg"]).name()}, (name, legend_colours(window))
    assert abs(gutter_value(window) - QColor(c["window"]).valueF()) < 0.01, (name, gutter_value(window))


def test_theme_switches_recolour_the_legend_and_the_gutters(qapp, tmp_path):
    window = build_window(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                          workspace=tmp_path / "runs")
    window.show()
    try:
        wait_until(qapp, lambda: window.session.model is not None, 120)
        wait_until(qapp, lambda: not running_job_threads(), 120)
        session = window.session
        window.set_theme("dark")
        session.update_config(method="invert", layer="relu3", image="digits:0", restarts=2, iters=100_000,
                              fine_tune_iters=0, device="cpu", seed=0, frame_every=0)
        window.run_action.trigger()
        wait_until(qapp, lambda: window.docks["EnergiesDock"].legend.items and window.live_view.images is not None, 60)
        assert_themed(window, "dark")
        for name in ("light", "dark"):  # while it runs
            window.set_theme(name)
            qapp.processEvents()
            assert_themed(window, name)
        window.set_theme("light")
        window.cancel_action.trigger()
        wait_until(qapp, lambda: not session.busy, 60)
        for name in ("light", "dark", "light", "dark"):  # and on the result left shown
            window.set_theme(name)
            qapp.processEvents()
            assert_themed(window, name)
    finally:
        window.set_theme("light")  # the application's palette is shared with the other tests
        window.close()
