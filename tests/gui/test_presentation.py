"""Presentation mode (F11, issue 10): the live view and the plot in front, on the whole screen,
with fonts, the header, tile labels, plot text and lines scaled; no configuration docks, menu
or status bar; Esc leaves it, and Ctrl+. still cancels a job there. Qt's offscreen platform has
no window manager: full screen is then the screen's geometry, set by the window itself."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QFont
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QTabBar

from tests.gui.conftest import running_job_threads, wait_until
from workbench.ui.app import build_window
from workbench.ui.main_window import PRESENTATION_SCALE


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    root = tmp_path_factory.mktemp("presentation")
    win = build_window(QSettings(str(root / "settings.ini"), QSettings.Format.IniFormat), workspace=root / "runs")
    win.show()
    wait_until(qapp, lambda: win.session.model is not None, 120)
    wait_until(qapp, lambda: not running_job_threads(), 120)  # the previews of the model are made
    win.activateWindow()
    session = win.session
    session.update_config(method="invert", layer="relu3", image="digits:0", restarts=2, iters=6, fine_tune_iters=0,
                          device="cpu", seed=0, frame_every=0)
    done = []
    session.job_finished.connect(done.append)
    win.run_action.trigger()
    wait_until(qapp, lambda: done and not session.busy, 120)
    yield win
    if win.presentation:
        win.toggle_presentation(False)
    win.close()
    assert win.running_threads() == []


def _press(window, key, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    QTest.keyClick(window, key, modifier)
    QApplication.processEvents()


def _curve_width(window) -> float:
    curves = window.docks["EnergiesDock"].plot.getPlotItem().listDataItems()
    return max(c.opts["pen"].widthF() for c in curves if c.opts.get("pen") is not None)


def _tile_label_size(window) -> float:
    import pyqtgraph as pg

    items = [i for i in window.live_view.grid.scene().items() if isinstance(i, pg.TextItem)]
    assert items, "the live view has tile labels"
    return max(i.textItem.font().pointSizeF() for i in items)


def test_f11_shows_the_live_view_and_one_plot_large_and_scaled(window, qapp):
    font = QApplication.font().pointSizeF()
    width, label = _curve_width(window), _tile_label_size(window)
    tick = window.docks["EnergiesDock"].plot.getAxis("left").style["tickFont"]
    tick = tick.pointSizeF() if tick is not None else QFont().pointSizeF()
    header = window.live_view.header.sizeHint().height()
    _press(window, Qt.Key.Key_F11)
    assert window.presentation and window.presentation_action.isChecked()
    qapp.processEvents()
    shown = [name for name, dock in window.docks.items() if dock.isVisible() and not dock.visibleRegion().isEmpty()]
    assert shown == ["EnergiesDock"], shown  # the plot in front, alone: no tabs of the plots behind it
    assert not any(bar.isVisible() and window.rect().intersects(bar.geometry())
                   for bar in window.findChildren(QTabBar) if bar.parent() is window)
    assert not any(d.isVisible() for d in window.docks.values() if d.configuration)
    assert window.menuBar().isHidden() and window.statusBar().isHidden()
    screen = window.screen().geometry()
    assert window.geometry() == screen  # full screen, with or without a window manager
    # the result fills the screen, one plot under it, no controls
    assert window.live_view.height() > 0.6 * screen.height()
    assert 0.15 * screen.height() < window.docks["EnergiesDock"].height() < 0.35 * screen.height()
    energies = window.docks["EnergiesDock"]
    for control in (window.live_view.fit_button, energies.log_scale, energies.export_button):
        assert not control.isVisible(), control
    # everything scaled: fonts, the header, the tile labels, the plot's ticks and lines
    assert QApplication.font().pointSizeF() == pytest.approx(font * PRESENTATION_SCALE)
    assert window.live_view.header.sizeHint().height() > 1.3 * header
    assert _tile_label_size(window) >= 1.3 * label
    new_tick = window.docks["EnergiesDock"].plot.getAxis("left").style["tickFont"].pointSizeF()
    assert new_tick >= 1.3 * tick
    assert _curve_width(window) == pytest.approx(width * PRESENTATION_SCALE)


def test_ctrl_period_cancels_there_and_esc_leaves(window, qtbot, qapp):
    session = window.session
    assert window.presentation
    session.update_config(iters=100_000)
    window.run_action.trigger()
    qtbot.waitUntil(lambda: window.live_view.stage.text().startswith("iteration "), timeout=60_000)
    with qtbot.waitSignal(session.job_cancelled, timeout=30_000):
        _press(window, Qt.Key.Key_Period, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not session.busy, timeout=30_000)
    assert window.presentation  # Ctrl+. cancelled the job and left presentation mode alone
    assert window.live_view.stage.text().startswith("cancelled")
    font = QApplication.font().pointSizeF()
    _press(window, Qt.Key.Key_Escape)
    assert not window.presentation and not window.presentation_action.isChecked()
    assert QApplication.font().pointSizeF() == pytest.approx(font / PRESENTATION_SCALE)
    assert not window.menuBar().isHidden() and not window.statusBar().isHidden()
    assert window.docks["MethodDock"].isVisible() and window.docks["LayersDock"].isVisible()
    energies = window.docks["EnergiesDock"]
    assert window.live_view.fit_button.isVisible() and energies.log_scale.isVisible()  # the controls are back
    assert window.geometry().width() <= window.available_geometry().width()
    curves = window.docks["EnergiesDock"].plot.getPlotItem().listDataItems()
    assert _curve_width(window) == pytest.approx(max(c._workbench_base_width for c in curves))
    # outside presentation mode Esc cancels again
    assert {s.toString() for s in window.cancel_action.shortcuts()} == {"Esc", "Ctrl+."}
