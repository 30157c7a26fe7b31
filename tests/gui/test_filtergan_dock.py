"""Filter-GAN dock: train with live losses and filters, evaluate and browse the MDS scatter,
traversal grids on the worker, export of every figure (tiny configuration)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.gui.conftest import wait_until


@pytest.fixture
def session(qapp, tmp_path):
    from PySide6.QtCore import QSettings

    from workbench.models import load_model
    from workbench.ui.session import Session

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    s = Session(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")
    s.model = load_model("digits-vgg", device="cpu")
    yield s
    s.shutdown()
    torch.set_num_threads(threads)


def show(qtbot, dock, index):
    with qtbot.waitSignal(dock.point_shown, timeout=60_000) as blocker:
        dock.show_point(index)
    assert blocker.args == [index]


def test_filtergan_dock_train_evaluate_traverse_export(qapp, qtbot, session, tmp_path):
    from workbench.ui.docks.filtergan_dock import FilterGanDock

    dock = FilterGanDock(session)
    dock.resize(1200, 500)
    dock.show()
    dock.train_view.steps.setValue(6)
    dock.train_view.latent.setValue(4)
    dock.train_overrides = dict(batch_size=4, train_images=32, sample_every=2, log_every=1, rank=2, hidden=16)
    assert dock.train()
    assert not dock.train_view.train_button.isEnabled()
    wait_until(qapp, lambda: not dock.runner.running, timeout=120)
    assert dock.history["step"] == [1, 2, 3, 4, 5, 6]
    assert dock.train_view.loss_curves["loss_D"].getData()[0].tolist() == [1, 2, 3, 4, 5, 6]
    assert dock.train_view.filter_view.image is not None and dock.train_view.filter_view.image.shape[-1] == 3
    run = dock.run_path
    assert json.loads(open(f"{run}/run.json").read())["status"] == "done"

    dock.eval_overrides = dict(retrain_epochs=1, mds_samples=3, mds_iter=20, train_images=128, filter_sets=3)
    assert dock.evaluate()
    wait_until(qapp, lambda: not dock.runner.running and len(dock.mds_view.scatter.points()) > 0, timeout=120)
    text = dock.mds_view.eval_label.text()  # the paper's metric beside its controls, re-trained and frozen
    assert "frozen" in text and "entries permuted" in text and "generated minus control" in text
    assert dock.evaluation["accuracy_permuted_frozen"] == json.loads(open(f"{dock.run_path}/metrics.json").read())[
        "accuracy_permuted_frozen"]
    assert len(dock.mds_view.scatter.points()) == 64 * 4
    show(qtbot, dock, 0)
    assert dock.mds_view.point_label.text() == "real filter 0"
    show(qtbot, dock, 64 + 5)
    assert "channel 5" in dock.mds_view.point_label.text() and dock.mds_view.point_view.image.shape == (24, 24, 3)

    dock.traversal_view.grid_k.setValue(3)
    dock.traversal_view.iters.setValue(4)
    dock.traversal_view.dim_j.setValue(2)
    assert dock.request_traversal()
    wait_until(qapp, lambda: dock.traversal_view.grid_view.image is not None, timeout=120)
    assert "centre error" in dock.traversal_view.label.text()

    qapp.processEvents()
    for what in ("losses", "filters", "mds", "traversal"):
        out = dock.export(what, str(tmp_path / f"{what}.png"))
        assert out and (tmp_path / f"{what}.png").stat().st_size > 500, what
    assert dock.export("mds", str(tmp_path / "mds.svg"))
    assert dock.export("traversal", str(tmp_path / "grid.jpg")) is None
    dock.shutdown()


def test_each_tab_shows_its_figures_beside_its_controls(qapp, session):
    from workbench.ui.docks.filtergan_dock import FilterGanDock

    dock = FilterGanDock(session)
    dock.resize(1200, 500)
    dock.show()
    views = {dock.train_view: (dock.train_view.loss_plot, dock.train_view.filter_view),
             dock.mds_view: (dock.mds_view.plot, dock.mds_view.point_view),
             dock.traversal_view: (dock.traversal_view.grid_view,)}
    for view, figures in views.items():
        dock.tabs.setCurrentWidget(view)
        qapp.processEvents()
        for figure in figures:
            assert figure.isVisible() and figure.width() > 100 and figure.height() > 100, (view, figure)
    dock.shutdown()


def test_filtergan_dock_opens_the_shipped_run(qapp, qtbot, session):
    from workbench.resources import shipped_filtergan_run
    from workbench.ui.docks.filtergan_dock import FilterGanDock

    dock = FilterGanDock(session)
    assert dock.run_path == str(shipped_filtergan_run())
    qtbot.waitUntil(lambda: len(dock.mds_view.scatter.points()) > 0, timeout=30_000)
    assert len(dock.mds_view.scatter.points()) == 64 * 21  # real filters + 20 generated sets, from its eval
    # its stored evaluation predates the controls: the table says so rather than showing none
    assert dock.evaluation["accuracy_generated"] == pytest.approx(0.9978, abs=1e-4)
    assert "no controls in this evaluation" in dock.mds_view.eval_label.text()
    show(qtbot, dock, 64 * 3 + 7)
    assert "channel 7" in dock.mds_view.point_label.text()
    dock.shutdown()


def test_hovering_runs_the_generator_on_a_worker_once_the_pointer_rests(qapp, qtbot, session, monkeypatch):
    """Sweeping the pointer over 30 points computes the last one only, never on the GUI thread."""
    import threading

    from workbench.preview import compute
    from workbench.ui.docks.filtergan_dock import FilterGanDock

    dock = FilterGanDock(session)
    qtbot.waitUntil(lambda: len(dock.mds_view.scatter.points()) > 0, timeout=30_000)
    calls = []
    real = compute.filter_point

    def spy(loaded, run, mds, index, model, cancel):
        calls.append((index, threading.current_thread() is threading.main_thread()))
        return real(loaded, run, mds, index, model, cancel)

    monkeypatch.setattr(compute, "filter_point", spy)
    with qtbot.waitSignal(dock.point_shown, timeout=60_000) as blocker:
        for index in range(64, 94):
            dock.mds_view._on_points_picked(None, [type("P", (), {"data": lambda self, i=index: i})()])
    assert blocker.args == [93] and calls == [(93, False)]
    assert "channel 29" in dock.mds_view.point_label.text()
    show(qtbot, dock, 64 + 1)  # the next point reuses the loaded generator
    assert calls[-1] == (65, False) and dock._fgan[0] == dock.run_path
    dock.shutdown()


@pytest.mark.parametrize("content", [b"", b"garbage" * 50, b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ", "foreign"])
def test_a_damaged_mds_table_is_a_message(qapp, qtbot, session, tmp_path, content):
    import shutil

    from safetensors.numpy import save_file
    import numpy as np

    from workbench.resources import shipped_filtergan_run
    from workbench.ui.docks.filtergan_dock import FilterGanDock

    run = tmp_path / "copy"
    shutil.copytree(shipped_filtergan_run(), run)
    target = run / "tensors" / "mds.safetensors"
    if content == "foreign":
        save_file({"coords": np.zeros((3, 5), np.float32)}, str(target))
    else:
        target.write_bytes(content)
    dock = FilterGanDock(session)
    errors = []
    session.message_logged.connect(lambda level, m: errors.append(m) if level == "error" else None)
    dock.set_run(str(run))
    qtbot.waitUntil(lambda: bool(errors), timeout=30_000)
    assert "mds.safetensors" in errors[-1] and "Evaluate" in errors[-1] and "\n" not in errors[-1]
    assert dock.mds is None and len(dock.mds_view.scatter.points()) == 0
    dock.show_point(0)  # nothing to show, nothing raised
    dock.shutdown()


def test_evaluation_text_shows_every_control_retrained_and_frozen():
    from workbench.ui.widgets.filtergan_views import evaluation_text

    m = {"accuracy_real": 0.9933, "accuracy_real_retrained": 0.9956, "accuracy_generated": 0.9978,
         "accuracy_generated_frozen": 0.9822, "accuracy_noise": 0.9956, "accuracy_noise_frozen": 0.9933,
         "accuracy_permuted": 0.9867, "accuracy_permuted_frozen": 0.0956, "test_images": 450,
         "margins": {"noise": {"frozen_points": -1.111, "retrained_points": 0.222},
                     "permuted": {"frozen_points": 88.667, "retrained_points": 1.111}},
         "spread_relative": 0.27, "nearest_real_fraction": 1.0}
    text = evaluation_text(m)
    for value in ("0.9978", "0.9822", "0.9933", "0.0956", "0.9867", "noise +0.22 re-trained, -1.11 frozen", "permuted +1.11 re-trained, +88.67 frozen",
                  "one test image = 0.22"):
        assert value in text, value
    assert "no controls" in evaluation_text({"accuracy_real": 0.99, "accuracy_generated": 0.99})


def test_filtergan_dock_cancel_leaves_cancelled_run(qapp, session):
    from workbench.ui.docks.filtergan_dock import FilterGanDock

    dock = FilterGanDock(session)
    dock.train_view.steps.setValue(100_000)
    dock.train_view.latent.setValue(4)
    dock.train_overrides = dict(batch_size=4, train_images=32, rank=2, hidden=16)
    assert dock.train()
    wait_until(qapp, lambda: len(dock.history["step"]) > 0, timeout=120)
    dock.train_view.cancel_button.click()
    wait_until(qapp, lambda: not dock.runner.running, timeout=60)
    runs = [json.loads((p / "run.json").read_text()) for p in session.store.root.iterdir()]
    assert [r["status"] for r in runs] == ["cancelled"]
    dock.shutdown()
