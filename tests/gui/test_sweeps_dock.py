"""The Sweeps and Atlas docks offscreen (issue 11): a tiny 1 × 2 grid on digits-vgg fills its
table with done cells, reopening a cell sets the session's config; an atlas of two channels of
a small layer fills two tiles, is cached in the workspace and shown again from the cache."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from tests.gui.conftest import wait_until


@pytest.fixture
def session(qapp, tmp_path):
    from workbench.models import load_model
    from workbench.ui.session import Session

    s = Session(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")
    s.model = load_model("digits-vgg")
    s.config.update(model="digits-vgg", layer="relu1", method="invert", image="digits:0", iters=5, restarts=1,
                    seed=0, device="cpu")
    yield s
    s.shutdown()


def test_a_hostile_list_is_one_line_and_never_expanded(qapp, session, tmp_path):
    """The C, seeds and channels fields are read by the configs' own parsers: a billion seeds is refused
    by its count before any range is expanded (the window's own parser built the whole list)."""
    from workbench.ui.docks.atlas_dock import AtlasDock
    from workbench.ui.docks.sweeps_dock import SweepsDock

    dock, atlas = SweepsDock(session), AtlasDock(session)
    try:
        dock.set_ticked(["relu1"])
        dock.C.setText("1,20")
        dock.seeds.setText("0-999999999")
        assert not dock.start()
        assert "names 1,000,000,000 numbers; the limit is 100,000" in dock.status.text(), dock.status.text()
        dock.seeds.setText("0")
        dock.C.setText("1,twenty")
        assert not dock.start() and "C takes comma-separated numbers" in dock.status.text(), dock.status.text()
        dock.C.setText("")  # empty: the paper's per-layer preset
        assert dock.sweep_config(tmp_path / "probe").C is None
        wait_until(qapp, lambda: not atlas.loader.running)
        atlas.layer.setCurrentText("relu1")
        wait_until(qapp, lambda: not atlas.loader.running)
        atlas.channels_edit.setText("3-1")
        assert not atlas.start() and "channels: the range 3-1 ends before it starts" in atlas.status.text()
        assert not list((tmp_path / "runs").glob("sweeps/*")), "nothing is written for a refused grid"
    finally:
        assert dock.shutdown() and atlas.shutdown()


def test_sweep_grid_fills_in_and_a_cell_reopens(qapp, session):
    from workbench.ui.docks.sweeps_dock import SweepsDock

    dock = SweepsDock(session)
    try:
        dock.set_ticked(["relu1"])
        dock.C.setText("1,20")
        dock.seeds.setText("0")
        dock.iters.setValue(5)
        dock.executor.setCurrentText("local")
        assert dock.start()
        wait_until(qapp, lambda: not dock.runner.running, timeout=240)
        assert dock.table.rowCount() == 2
        assert [dock.table.item(i, 3).text() for i in range(2)] == ["done", "done"]
        assert [dock.table.item(i, 1).text() for i in range(2)] == ["1", "20"]
        assert all(dock.table.item(i, 4).text() for i in range(2))
        assert (dock.out / "results.csv").is_file()
        # the sweep's figure (layers × C, the paper's Fig. 6) is drawn and shown in the dock's Figure tab
        wait_until(qapp, lambda: dock.figure.image is not None and not dock._figure_slot.busy, timeout=120)
        assert (dock.out / "fig6.png").is_file()
        dock.views.setCurrentWidget(dock.figure)
        dock.resize(640, 480)
        dock.show()
        qapp.processEvents()
        dock.figure.fit()
        shown = dock.figure.pixmap()
        assert not shown.isNull() and shown.width() > 100 and shown.height() > 50
        import numpy as np

        image = shown.toImage().convertToFormat(shown.toImage().Format.Format_RGB888)
        pixels = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
        assert pixels.std() > 10  # lines and text, not an empty canvas
        dock.hide()
        session.update_config(C=300.0, layer="relu2")
        assert dock.open_cell(1)
        assert session.config["C"] == 20.0 and session.config["layer"] == "relu1"
        assert session.config["iters"] == 5
        wait_until(qapp, lambda: not session.busy and not session._reopen_slot.busy, timeout=60)
    finally:
        assert dock.shutdown()


def test_atlas_fills_two_tiles_and_is_cached(qapp, session, tmp_path):
    from workbench.preview.grids import atlas_folder
    from workbench.ui.docks.atlas_dock import AtlasDock

    dock = AtlasDock(session)
    try:
        wait_until(qapp, lambda: not dock.loader.running)
        dock.layer.setCurrentText("relu1")
        wait_until(qapp, lambda: not dock.loader.running)
        dock.channels_edit.setText("0-1")
        dock.iters.setValue(5)
        dock.executor.setCurrentText("local")
        filled = []
        dock.tile_finished.connect(lambda *a: filled.append(a[0]))
        assert dock.start()
        wait_until(qapp, lambda: not dock.runner.running, timeout=240)
        # every channel is a tile, or marked dead when its maximization reached activation 0
        # (relu1's channel 1 does after 5 iterations): never a grey tile drawn like a result
        dead = dock.marked("dead")
        assert dock.channels == [0, 1] and dock.filled() + len(dead) == 2 and 0 in dock.channels
        assert all(dock.activations[dock.channels.index(k)] == 0.0 for k in dead)
        assert sorted(filled) == [0, 1]
        assert dock.grid.updates >= 2
        folder = atlas_folder(tmp_path / "runs", "digits-vgg", "relu1")
        assert (folder / "index.json").is_file() and (folder / "atlas.png").is_file()
        session.update_config(channel=0, layer="relu1")
        assert dock._highlight.isVisible()
        assert all(not dock.open_tile(dock.channels.index(k)) for k in dead)  # a dead channel is no run to open
        assert dock.open_tile(0)
        assert session.config["method"] == "maximize" and session.config["channel"] == 0
        wait_until(qapp, lambda: not session.busy and not session._reopen_slot.busy, timeout=60)
        # another dock over the same workspace shows the cached atlas without computing it
        again = AtlasDock(session)
        try:
            again.layer.setCurrentText("relu1")
            wait_until(qapp, lambda: again.channels == [0, 1] and not again.loader.running, timeout=60)
            assert not again.runner.running and again.marked("dead") == dead and again.filled() == 2 - len(dead)
        finally:
            assert again.shutdown()
    finally:
        assert dock.shutdown()


def test_a_window_sweep_opens_the_loaded_models_whole_spec_with_its_consent(qapp, qtbot, tmp_path):
    """Issue 20: the Sweeps dock built its grid from the model's bare name, without its options
    (path, model kwargs, input size, ...) or the consent the window got: a sweep of a callable was
    refused or opened another model. Its cells open the loaded model's whole spec, with that consent."""
    import json

    from tests.gui.test_sweep_cell_reopen import SPEC
    from workbench.ui.docks.sweeps_dock import SweepsDock
    from workbench.ui.session import Session

    session = Session(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")
    dock = SweepsDock(session)
    try:
        with qtbot.waitSignal(session.model_changed, timeout=60_000):
            session.load_model(SPEC, imports=True)  # the user's yes to importing the callable
        wait_until(qapp, lambda: not session.loader.running)
        assert session.model_spec == SPEC and session.model_consent == {"trust": False, "imports": True}
        session.update_config(method="invert", image="astronaut", iters=2, restarts=1, seed=0, device="cpu")
        dock.set_ticked(["conv"])
        dock.C.setText("1")
        dock.seeds.setText("0")
        dock.iters.setValue(2)
        dock.executor.setCurrentText("local")
        config = dock.sweep_config(tmp_path / "probe")
        assert config.model_specs() == (SPEC,)  # the path, kwargs and input size travel with the name
        assert dock.start()
        wait_until(qapp, lambda: not dock.runner.running, timeout=240)
        assert [dock.table.item(i, 3).text() for i in range(dock.table.rowCount())] == ["done"], \
            [dock.table.item(i, 4).text() for i in range(dock.table.rowCount())]
        (cell,) = (dock.out / "cells").iterdir()
        recorded = json.loads((cell / "run.json").read_text())
        assert recorded["model"]["spec"]["input_size"] == [3, 16, 16]
        assert json.loads(recorded["model"]["spec"]["model_kwargs"]) == {"width": 4}
    finally:
        assert dock.shutdown()
        session.shutdown()


def test_a_sweep_of_a_model_in_memory_is_refused_in_one_line(qapp, tmp_path):
    from workbench.models import load_model
    from workbench.ui.docks.sweeps_dock import SweepsDock
    from workbench.ui.session import Session

    session = Session(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")
    dock = SweepsDock(session)
    try:
        session._in_memory = True  # as show(model) hands the window a model object
        session._on_model_loaded((load_model("digits-vgg"), None))
        dock.set_ticked(["relu1"])
        assert not dock.start()
        assert "in memory" in dock.status.text() and "\n" not in dock.status.text()
        assert not (tmp_path / "runs" / "sweeps").exists()
    finally:
        assert dock.shutdown()
        session.shutdown()


def test_the_atlas_of_a_model_with_options_opens_its_whole_spec_in_a_folder_of_its_own(qapp, qtbot, tmp_path):
    from tests.gui.test_sweep_cell_reopen import SPEC
    from workbench.config.sweep import options_of
    from workbench.preview.grids import atlas_folder
    from workbench.ui.docks.atlas_dock import AtlasDock
    from workbench.ui.session import Session

    session = Session(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")
    dock = AtlasDock(session)
    try:
        with qtbot.waitSignal(session.model_changed, timeout=60_000):
            session.load_model(SPEC, imports=True)
        wait_until(qapp, lambda: not session.loader.running and not dock.loader.running)
        dock.layer.setCurrentText("conv")
        wait_until(qapp, lambda: not dock.loader.running)
        config = dock.atlas_config()
        assert config.sweep().model_specs() == (SPEC,)
        root = tmp_path / "runs"
        assert dock.current_folder() == atlas_folder(root, SPEC.model, "conv", options_of(SPEC))
        assert dock.current_folder() != atlas_folder(root, SPEC.model, "conv")  # other options: another atlas
    finally:
        assert dock.shutdown()
        session.shutdown()
