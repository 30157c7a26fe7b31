"""Deformation and Smoothness docks: measure on the worker, overlay, cancel, run folders, export."""

from __future__ import annotations

import json

import pytest

from tests.gui.conftest import wait_until


@pytest.fixture
def session(qapp, tmp_path):
    from PySide6.QtCore import QSettings

    from workbench.models import load_model
    from workbench.ui.session import Session

    s = Session(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")
    s.model = load_model("cifar-vgg-maxpool")
    s.model.layers()
    yield s
    s.shutdown()


def _runs(session):
    return {json.loads((p / "run.json").read_text())["kind"]: json.loads((p / "run.json").read_text())["status"]
            for p in session.store.root.iterdir()} if session.store.root.exists() else {}


def test_deformation_dock_overlays_trained_and_init(qapp, session, tmp_path):
    from workbench.ui.docks.deformation_dock import DeformationDock

    dock = DeformationDock(session)
    dock.n_images.setValue(8)
    dock.seeds.setValue(2)
    dock.with_init.setChecked(True)
    dock.preset.setCurrentText("ImageNet (5×5, ±10 px)")
    assert (dock.grid.value(), dock.max_disp.value()) == (5, 10.0)
    dock.grid.setValue(3)
    dock.max_disp.setValue(2.0)
    assert dock.preset.currentText().startswith("CIFAR")
    assert dock.measure()
    assert not dock.run_button.isEnabled()
    wait_until(qapp, lambda: not dock.runner.running, timeout=120)
    assert [label for label, _ in dock.results] == ["cifar-vgg-maxpool", "cifar-vgg-maxpool (truncnormal init)"]
    for _, metrics in dock.results:
        assert len(metrics["layers"]) == 13 and metrics["layers"][0]["layer"] == "input"
        assert all(row["mean"] > 0 for row in metrics["layers"])
        assert len(metrics["per_seed"]) == 2
    assert len(dock.plot.drawn) == 8  # line, band and its two edges per model
    folders = list(session.store.root.iterdir())
    assert len(folders) == 2
    assert all(json.loads((p / "run.json").read_text())["status"] == "done" for p in folders)
    dock.show()
    qapp.processEvents()
    out = dock.export(str(tmp_path / "plot.png"))
    assert out and (tmp_path / "plot.png").stat().st_size > 1000
    dock.request_preview()
    wait_until(qapp, lambda: dock.preview.pixmap() is not None and not dock.preview.pixmap().isNull(), timeout=60)
    assert dock.preview.pixmap().width() > 2 * dock.preview.pixmap().height()  # three panels side by side
    dock.clear()
    assert dock.results == [] and dock.plot.drawn == []
    assert dock.shutdown()


def test_deformation_dock_cancel_leaves_cancelled_run(qapp, session):
    from workbench.ui.docks.deformation_dock import DeformationDock

    dock = DeformationDock(session)
    dock.n_images.setValue(64)
    dock.seeds.setValue(20)
    progressed = []
    dock.runner.progressed.connect(progressed.append)
    assert dock.measure()
    wait_until(qapp, lambda: len(progressed) > 0, timeout=60)
    dock.cancel_button.click()
    wait_until(qapp, lambda: not dock.runner.running, timeout=60)
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()
    (folder,) = list(session.store.root.iterdir())
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "cancelled"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert not metrics["complete"] and len(metrics["per_seed"]) < 20
    assert dock.shutdown()


def test_smoothness_dock_adds_each_model_with_init_line(qapp, session, tmp_path):
    from workbench.ui.docks.smoothness_dock import SmoothnessDock

    dock = SmoothnessDock(session)
    session.model_changed.emit(session.model)
    assert not dock.runner.running  # nothing is measured (and no folder written) unless asked
    dock.auto_add.setChecked(True)
    session.model_changed.emit(session.model)
    wait_until(qapp, lambda: len(dock.results) == 1 and not dock.runner.running, timeout=60)
    label, metrics = dock.results[0]
    assert label == "cifar-vgg-maxpool"
    assert [r["layer"] for r in metrics["layers"]][:2] == ["conv1_1", "conv1_2"]
    assert abs(metrics["init_ntv"] - 1.87) < 0.03
    assert "init: 1.8" in dock.status.text()
    assert len(dock.plot.drawn) == 2  # the model's line and the dotted init level
    assert _runs(session) == {"smoothness": "done"}
    dock.show()
    qapp.processEvents()
    assert dock.export(str(tmp_path / "ntv.svg"))
    assert (tmp_path / "ntv.svg").read_text().startswith("<?xml")
    assert dock.shutdown()
