"""Nothing fails silently (issue 20): a dock that cannot start, or whose job fails, says why in
its own banner and in the session's failure signal (the status bar shows it until dismissed), in
the dock's words; the deformation memory limit is checked before starting, with the estimate and
a fix; the filter-GAN dock never trains another model than the one loaded; the Atlas marks dead
and failed channels, and its captions never overlap the tile above."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from tests.gui.conftest import wait_until


@pytest.fixture
def session(qapp, tmp_path):
    from workbench.models import load_model
    from workbench.ui.session import Session

    s = Session(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")
    s.model = load_model("digits-vgg")
    s.model.layers()
    s.config.update(model="digits-vgg", layer="relu1")
    failures = []
    s.failure_reported.connect(lambda where, message: failures.append((where, message)))
    s.failures = failures
    yield s
    s.shutdown()


def test_window_words_name_the_fields_not_flags():
    from workbench.ui.widgets.failure_banner import window_words

    text = window_words("the representations of 128 images need more than 3 GiB: lower --n or pick fewer layers",
                        {"n": "images N"})
    assert "--n" not in text and "“images N”" in text
    text = window_words("unknown layer(s) foo in digits-vgg: see `workbench layers --model digits-vgg` for the names")
    assert "`" not in text and "workbench layers" not in text and "the Layers dock" in text
    assert window_words("lower --max-disp") == "lower “max disp”"
    # the model's own "(see `workbench layers --model M`)" leaves no empty brackets behind
    assert (window_words("unknown layer 'x' in digits-vgg: (see `workbench layers --model digits-vgg`)")
            == "unknown layer 'x' in digits-vgg: the Layers dock lists the names")


def test_deformation_refuses_before_starting_with_estimate_and_fix(qapp, session, monkeypatch, tmp_path):
    from workbench.ui.docks import deformation_dock as dd

    need_one = dd.representation_bytes(session.model, 1, None)
    assert need_one == 4 * (32 * 32 + sum(int(np.prod(i.shape)) for i in session.model.layers()))
    monkeypatch.setattr(dd, "memory_limit", lambda: 40 * need_one)  # room for 40 images at every layer
    dock = dd.DeformationDock(session)
    try:
        dock.n_images.setValue(128)
        assert not dock.measure()
        assert not dock.runner.running and dock.run_button.isEnabled()
        assert not dock.failure.isHidden()
        message = dock.failure.message
        assert "128 images" in message and "GiB" in message and "images N" in message
        assert "--n" not in message
        assert session.failures == [("Deformation", message)]
        assert not (tmp_path / "runs").exists()  # nothing was started, no run folder
        assert dock.failure.fix_button.text() == "Use N = 40"
        dock.failure.fix_button.click()
        assert dock.n_images.value() == 40 and dock.failure.isHidden()
        assert dock.memory_check() is None
        # with too few images left to be useful, fewer layers are offered instead
        monkeypatch.setattr(dd, "memory_limit", lambda: 3 * need_one)
        refused = dock.memory_check()
        assert refused is not None and refused[1][0].startswith("Measure every")
        refused[1][1]()
        assert dock.layer_stride.currentData() > 1
        layers = dock.settings()["layers"]
        assert layers[0] == "input" and len(layers) < len(session.model.layers())
        # a job's own failure (a CLI message) shows in the dock in the dock's words
        dock._on_failed("the representations of 128 images need more than 3 GiB: lower --n or pick fewer layers")
        assert "“images N”" in dock.failure.message and session.failures[-1][0] == "Deformation"
        session.dismiss_failure("Deformation")  # the status bar's Dismiss hides the dock's banner too
        assert dock.failure.isHidden()
    finally:
        assert dock.shutdown()


def test_deformation_measures_the_chosen_layers(qapp, session):
    from workbench.ui.docks.deformation_dock import DeformationDock

    dock = DeformationDock(session)
    try:
        dock.n_images.setValue(4)
        dock.seeds.setValue(1)
        dock.layer_stride.setCurrentIndex(dock.layer_stride.findData(8))
        assert dock.measure()
        wait_until(qapp, lambda: not dock.runner.running, timeout=120)
        (label, metrics), = dock.results
        measured = [row["layer"] for row in metrics["layers"]]
        assert measured == list(dock.settings()["layers"]) and 2 <= len(measured) <= 5
        assert dock.failure.isHidden()
    finally:
        assert dock.shutdown()


def test_filtergan_refuses_a_model_that_is_not_a_digits_net(qapp, session, tmp_path):
    from workbench.models import load_model
    from workbench.ui.docks.filtergan_dock import FilterGanDock

    session.model = load_model("cifar-vgg-maxpool")
    dock = FilterGanDock(session)
    try:
        dock.train_view.layer_edit.setText("conv1")
        assert not dock.train()
        assert not dock.runner.running and dock.train_view.train_button.isEnabled()
        message = dock.failure.message
        assert "cifar-vgg-maxpool" in message and "not a digits model" in message and "digits-vgg" in message
        assert session.failures == [("Filter-GAN", message)]
        runs = tmp_path / "runs"
        assert not runs.exists() or not any(runs.iterdir())  # nothing trained on another model
        session.model = None
        assert not dock.train()
        assert "no model is loaded" in dock.failure.message
    finally:
        assert dock.shutdown()


def _fake_atlas(folder, channels):
    """An atlas folder as the atlas job writes it: index.json and one cell per channel."""
    entries = {}
    for k, (status, activation) in channels.items():
        cell = folder / "cells" / f"ch{k}"
        (cell / "images").mkdir(parents=True)
        (cell / "run.json").write_text(json.dumps({"kind": "preimage", "status": status, "config": {
            "model": "digits-vgg", "layer": "relu1", "method": "maximize", "channel": k}}))
        if status == "done":
            rng = np.random.default_rng(k)
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(cell / "images" / "restart_1.png")
        entries[str(k)] = {"cell": f"cells/ch{k}", "activation": activation, "status": status}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.json").write_text(json.dumps({"model": "digits-vgg", "layer": "relu1", "channels": entries}))


def test_atlas_marks_dead_and_failed_channels_and_labels_stay_apart(qapp, session, tmp_path):
    from workbench.preview.grids import atlas_folder, channel_state
    from workbench.ui.docks.atlas_dock import AtlasDock, MARK_COLOR

    assert channel_state("done", 0.0) == "dead" and channel_state("done", 3.2) == "done"
    assert channel_state("done", 3.2, dead=True) == "dead" and channel_state("failed", None) == "failed"
    states = {0: ("done", 4.0), 4: ("done", 0.0), 6: ("done", 0.0), 7: ("failed", None), 8: ("done", 2.0)}
    _fake_atlas(atlas_folder(tmp_path / "runs", "digits-vgg", "relu1"), states)
    dock = AtlasDock(session)
    try:
        dock.resize(420, 480)
        dock.show()
        dock.layer.setCurrentText("relu1")
        wait_until(qapp, lambda: not dock.loader.running and dock.channels, timeout=60)
        assert dock.channels == [0, 4, 6, 7, 8]
        assert dock.marked("dead") == [4, 6] and dock.marked("failed") == [7]
        assert "2 dead (4, 6)" in dock.status.text() and "1 failed (7)" in dock.status.text()
        labels = [label.textItem.toPlainText() for label in dock.grid._labels]
        assert labels == ["0", "4 dead", "6 dead", "7 failed", "8"]
        # a dead tile is drawn in its own colour, never like a result
        h, w, columns, pad = dock.grid._geometry
        mosaic = dock.grid.item.image
        r, c = divmod(1, columns)
        corner = mosaic[r * (h + pad) + 2, c * (w + pad) + w // 2]
        assert np.allclose(corner, MARK_COLOR["dead"], atol=0.01)
        assert not dock.open_tile(1) and "dead" in dock.status.text()
        seen = set()
        for size in ((420, 480), (200, 200), (900, 900)):
            dock.resize(*size)
            qapp.processEvents()
            assert_labels_apart(dock.grid)
            seen.add(dock.grid.labels_mode)
        assert seen & {"above", "inside"}, seen  # captions are shown where there is room
        dock.grid.view.scaleBy((4, 4))  # zoomed out: captions bigger than the gaps
        qapp.processEvents()
        assert_labels_apart(dock.grid)
        print(sorted(seen), dock.grid.labels_mode)
    finally:
        assert dock.shutdown()


def assert_labels_apart(grid) -> None:
    """No visible caption reaches into the tile above it, nor into another caption."""
    h, w, columns, pad = grid._geometry
    rects = []
    for i, label in enumerate(grid._labels):
        if not label.isVisible():
            continue
        r, c = divmod(i, columns)
        box = label.mapRectToView(label.boundingRect())
        if r > 0:
            above_bottom = (r - 1) * (h + pad) + h
            assert box.top() >= above_bottom - 0.5, (grid.labels_mode, i, box.top(), above_bottom)
        rects.append(box)
    for a in range(len(rects)):
        for b in range(a + 1, len(rects)):
            assert not rects[a].intersected(rects[b]).isValid() or rects[a].intersected(rects[b]).isEmpty()


def test_hundreds_of_feature_maps_open_zoomed_on_readable_tiles(qapp, session):
    """480 or 1152 maps in one view are specks: the dock opens on the first 64, the wheel zooms out."""
    from workbench.ui.docks.filters_dock import ZOOMED_SIDE, FiltersDock

    dock = FiltersDock(session)
    try:
        dock.resize(320, 420)
        dock.show()
        wait_until(qapp, lambda: not dock._maps_slot.busy and not dock._filter_slot.busy)
        maps = np.random.default_rng(0).random((480, 14, 14)).astype(np.float32)
        dock._on_maps_ready(("_blocks.8._bn1", {"kind": "maps", "maps": maps}))
        qapp.processEvents()
        h, w, columns, pad = dock.maps._geometry
        (x0, x1), _ = dock.maps.view.viewRange()
        shown_columns = (x1 - x0) / (w + pad)
        assert columns == 22 and shown_columns <= ZOOMED_SIDE + 1  # 8 maps across, not 22
        assert "first 64" in dock.maps_caption.text() and "480 channels" in dock.maps_caption.text()
        few = np.random.default_rng(1).random((64, 14, 14)).astype(np.float32)
        dock._on_maps_ready(("relu3", {"kind": "maps", "maps": few}))
        qapp.processEvents()
        (x0, x1), _ = dock.maps.view.viewRange()
        assert (x1 - x0) / (w + pad) >= 7.5  # 64 maps: all of them
    finally:
        assert dock.shutdown()


def test_energies_log_axis_has_decades_no_zero_and_the_export_keeps_it(qapp, session, tmp_path):
    """Energies that are never negative (an inversion) are drawn on a true log axis: no "0" tick,
    every decade marked; values of both signs keep the symmetric log; the export is on the same scale."""
    from workbench.ui.docks.energies_dock import EnergiesDock
    from workbench.ui.widgets.plot_export import figure_from_plot

    dock = EnergiesDock(session)
    try:
        dock.resize(700, 320)
        dock.show()
        axes = [dock.plot.getPlotItem().getAxis(name) for name in ("left", "bottom")]
        assert not any(a.style["showValues"] for a in axes)  # no run: no made-up tick numbers
        n = 50
        decay = 10.0 ** np.linspace(2, -1, n)
        dock.iterations = list(range(1, n + 1))
        dock.history = {"energy": list(decay + 1.0), "data": list(decay), "R_alpha": [0.0] * 5 + [1e-4] * (n - 5),
                        "R_tv": list(np.full(n, 0.5))}
        dock.log_scale.setChecked(True)
        dock._dirty = True
        dock._redraw()
        qapp.processEvents()
        assert all(a.style["showValues"] for a in axes)  # curves: their numbers
        assert dock.scale == "log" and dock.axis.log10
        (y0, y1) = dock.plot.getViewBox().viewRange()[1]
        levels = dock.axis.tickValues(y0, y1, 200)
        labels = [s for spacing, values in levels for s in dock.axis.tickStrings(values, 1.0, spacing) if s]
        assert "0" not in labels and {"0.001", "0.1", "10"} & set(labels)
        marked = sorted(v for _s, values in levels for v in values if abs(v - round(v)) < 1e-9)
        assert all(b - a == 1 for a, b in zip(marked, marked[1:]))  # every decade has a tick: no jump
        figure = figure_from_plot(dock.plot)
        assert figure.axes[0].get_yscale() == "log"  # what the export draws: the window's scale
        dock.history["energy"] = list(-decay)  # a maximisation: −⟨Φ, e⟩ goes negative
        dock._dirty = True
        dock._redraw()
        assert dock.scale == "symlog" and not dock.axis.log10
        assert figure_from_plot(dock.plot).axes[0].get_yscale() == "symlog"
    finally:
        dock.shutdown()


def test_method_dock_shows_a_failed_run_in_its_banner_until_dismissed_or_run_again(qapp, session):
    """A pre-image run that fails says why in the Method dock (above Run, in the window's words),
    not only in the Log; Dismiss hides it here and in the status bar; the next Run clears it."""
    from workbench.ui.docks.method_dock import MethodDock

    dock = MethodDock(session)
    dock.resize(300, 360)
    dock.show()
    assert not dock.failure.isVisibleTo(dock)
    dismissed = []
    session.failure_dismissed.connect(dismissed.append)
    session.update_config(layer="no_such_layer", iters=2, restarts=1, fine_tune_iters=0, frame_every=0, device="cpu")
    assert session.start_job()
    wait_until(qapp, lambda: not session.busy and session.failures, 60)
    where, message = session.failures[-1]
    assert where == "Method" and "no_such_layer" in message
    assert dock.failure.isVisibleTo(dock) and dock.failure.message == message
    assert "`workbench" not in message and "--" not in message  # the window's words, not the CLI's
    dock.failure.dismiss_button.click()
    assert not dock.failure.isVisibleTo(dock) and dismissed == ["Method"]
    assert session.start_job()  # fails again: the banner comes back, and a new Run clears it
    wait_until(qapp, lambda: not session.busy and len(session.failures) == 2, 60)
    assert dock.failure.isVisibleTo(dock)
    session.update_config(layer="relu1")
    assert session.start_job()
    assert not dock.failure.isVisibleTo(dock)
    wait_until(qapp, lambda: not session.busy, 60)
    dock.close()
