"""Presentation mode (F11, issue 10): the live view and the plot in front, on the whole screen,
with fonts, the header, tile labels, plot text and lines scaled; no configuration docks, menu
or status bar; Esc leaves it, and Ctrl+. still cancels a job there. Qt's offscreen platform has
no window manager: full screen is then the screen's geometry, set by the window itself."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QTabBar

from tests.gui.conftest import shown_window, wait_until
from workbench.ui.window_layout import PRESENTATION_SCALE


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    with shown_window(qapp, tmp_path_factory.mktemp("presentation")) as win:
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
    for control in (window.live_view.fit_button, energies.log_scale, energies.export_button, energies.note):
        assert not control.isVisible(), control
    # the plot takes the dock's whole height: no empty strip where its controls were, and its
    # "iteration" label whole inside the plot
    plot, body = energies.plot, energies.widget()
    assert body.height() - (plot.y() + plot.height()) <= 8, (plot.geometry(), body.geometry())
    axis = plot.getPlotItem().getAxis("bottom")
    assert axis.mapRectToScene(axis.boundingRect()).bottom() <= plot.height() + 1
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


GROW_SCRIPT = """
import json, sys, time
from pathlib import Path
from PySide6.QtCore import QSettings
from workbench.ui.app import build_window, make_application, wait_for

app = make_application()
root = Path(sys.argv[1])

def settle(seconds=0.8):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents(); time.sleep(0.01)

w = build_window(QSettings(str(root / "s.ini"), QSettings.Format.IniFormat), workspace=root / "runs")
w.show()
assert wait_for(app, lambda: w.session.model is not None, 180), w.session.load_error
s = w.session
s.update_config(method="invert", layer="relu3", image="digits:0", restarts=2, iters=3, fine_tune_iters=0,
                device="cpu", seed=0, frame_every=0)
done = []
s.job_finished.connect(done.append)
w.run_action.trigger()
assert wait_for(app, lambda: done and not s.busy, 120)
settle()

def tile():  # a tile's height on screen, and the view's height, in pixels
    grid = w.live_view.grid
    return grid._geometry[0] / grid.view.viewPixelSize()[1], grid.view.height()

out = {"normal": tile()}
w.toggle_presentation(True); settle()
out["present"] = tile()
w.toggle_presentation(False); settle()
out["after"] = tile()
w.close()
print(json.dumps(out))
"""


def test_presentation_tiles_grow_with_the_screen_and_fill_the_view(tmp_path):
    """Issue 20: at 1920 × 1080 presentation mode showed 224-px tiles at ~360 px with half the
    view empty. The result fills the view (its labels and captions take their height in pixels),
    tiles grow with the screen, and leaving gives the window's own size back."""
    import json
    import os
    import subprocess
    import sys

    found = {}
    for width, height in ((1280, 720), (1920, 1080)):
        config = tmp_path / f"screen-{width}.json"
        config.write_text(json.dumps({"screens": [{"name": "screen", "x": 0, "y": 0, "width": width,
                                                   "height": height, "logicalDpi": 96, "dpr": 1}]}))
        (tmp_path / str(width)).mkdir()
        env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}", OMP_NUM_THREADS="1")
        done = subprocess.run([sys.executable, "-c", GROW_SCRIPT, str(tmp_path / str(width))], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        found[width] = json.loads(done.stdout.strip().splitlines()[-1])
    for width, f in found.items():
        (normal, _), (present, view), (after, _) = f["normal"], f["present"], f["after"]
        assert present >= 1.3 * normal, (width, f)           # presenting enlarges the result
        assert present >= 0.65 * view, (width, f)            # the tiles fill the view's height, less label and caption
        assert abs(after - normal) < 1, (width, f)           # and leaving restores it
    assert found[1920]["present"][0] >= 1.5 * found[1280]["present"][0], found  # the larger screen, larger tiles
    assert found[1920]["present"][0] >= 0.45 * 1080, found
