"""State that belongs to a model stays with it (issue 20): settings are kept per model and a new
model gets its own defaults; a refused load leaves no stale layer or error; the Runs dock follows
runs as they start and end without Refresh, lists sweeps and atlases (so does `workbench runs`)
and reopens them; a cancelled run's restarts are its preview."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QSettings

from tests.gui.conftest import wait_until


@pytest.fixture(scope="module")
def models():
    from workbench.models import load_model

    digits, cifar = load_model("digits-vgg"), load_model("resnet18")  # resnet18: a photo net (untrained)
    digits.layers(), cifar.layers()
    return digits, cifar


def make_session(tmp_path, name="settings.ini"):
    from workbench.ui.session import Session

    return Session(QSettings(str(tmp_path / name), QSettings.Format.IniFormat), workspace=tmp_path / "runs")


def loaded(session, model) -> None:
    """What the loader thread hands the session when ``model`` is in."""
    session._on_model_loaded((model, None))


def test_settings_are_kept_per_model_and_a_new_model_gets_its_own(qapp, tmp_path, models):
    digits, cifar = models
    session = make_session(tmp_path)
    try:
        loaded(session, digits)
        assert session.config["image"] == "digits:0"
        session.update_config(layer="relu3", method="caricature", iters=200, restarts=1)
        loaded(session, cifar)
        # never the digits net's layer, method or digit: the photo net's own defaults
        assert session.config["image"] == "chelsea"
        assert session.config["method"] == "invert" and session.config["iters"] != 200
        assert session.layer in [l.name for l in cifar.layers()]
        cifar_layer = [l.name for l in cifar.layers()][3]
        session.update_config(layer=cifar_layer, iters=50, image="coffee")
        loaded(session, digits)
        assert (session.layer, session.config["method"], session.config["iters"], session.reference) == \
            ("relu3", "caricature", 200, "digits:0")
        loaded(session, cifar)
        assert (session.layer, session.config["iters"], session.reference) == (cifar_layer, 50, "coffee")
    finally:
        session.shutdown()
    # the next start opens the digits net with the digits net's settings, not the last model's
    again = make_session(tmp_path)
    try:
        assert again.config["model"] == cifar.name  # what was last shown ...
        loaded(again, digits)                       # ... is not carried to another model
        assert (again.layer, again.config["method"], again.reference) == ("relu3", "caricature", "digits:0")
    finally:
        again.shutdown()


def test_declining_a_run_models_import_leaves_no_stale_layer_or_error(qapp, qtbot, tmp_path, models):
    from workbench.ui.docks.model_dock import ModelDock

    digits, _ = models
    session = make_session(tmp_path)
    dock = ModelDock(session)
    try:
        loaded(session, digits)
        session.set_layer("relu2")
        run = tmp_path / "runs" / "imagenet-run"
        run.mkdir(parents=True)
        spec = {"model": "efficientnet_lite_pytorch:EfficientNet.from_name", "model_kwargs": '{"model_name": "x"}'}
        (run / "run.json").write_text(json.dumps({
            "kind": "preimage", "status": "done", "started": "2026-01-01T00:00:00",
            "config": {"model": "efficientnet_lite_pytorch:EfficientNet.from_name", "layer": "_fc",
                       "method": "caricature", "image": "chelsea", "iters": 200},
            "model": {"spec": spec}}))
        with qtbot.waitSignal(session.model_failed, timeout=60_000):
            session.apply_config(json.loads((run / "run.json").read_text())["config"], run=run)
        assert session.trust_kind == "callable"  # the window asks before importing code
        assert "color:#c0392b" not in dock.card.text()  # a question, not an error
        assert session.layer == "relu2" and session.config["method"] != "caricature"
        session.decline_load()
        assert session.layer == "relu2" and session.load_error is None
        card = dock.card.text().replace("\u200b", "")  # names break at zero-width spaces
        assert "Could not load" not in card and "digits-vgg" in card
        wait_until(qapp, lambda: not session._reopen_slot.busy and not session.loader.running)
        assert session.layer in [l.name for l in digits.layers()] and session.model is digits
    finally:
        session.shutdown()
        dock.shutdown()


def _write_run(folder, kind, status, config, started):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"kind": kind, "status": status, "config": config,
                                                 "started": started, "finished": None}))


def test_runs_dock_follows_runs_lists_sweeps_and_atlases_and_reopens_them(qapp, tmp_path, models, capsys):
    from workbench.cli import main as cli
    from workbench.runs import RunStore
    from workbench.ui.docks.runs_dock import RunsDock

    digits, _ = models
    session = make_session(tmp_path)
    loaded(session, digits)
    root = tmp_path / "runs"
    root.mkdir()
    dock = RunsDock(session)
    try:
        wait_until(qapp, lambda: not dock.busy)
        assert dock.row_count() == 0
        # a run started elsewhere (another dock, the CLI) appears, and its end shows, without Refresh
        run = RunStore(root).create("preimage", {"model": "digits-vgg", "layer": "relu1", "method": "invert"})
        wait_until(qapp, lambda: dock.row_count() == 1, timeout=20)
        assert dock.row_cells(run.path)["status"].endswith("running")
        assert dock.select_path(run.path)
        assert dock.reopen_button.isEnabled() and dock.folder_button.isEnabled()
        run.finish("done")
        wait_until(qapp, lambda: dock.row_cells(run.path)["status"].endswith("done"), timeout=20)
        # the window's sweeps and atlases are listed with their kind, model and layers
        _write_run(root / "sweeps" / "20260101-000000", "sweep", "done",
                   {"models": ["digits-vgg"], "layers": ["relu1", "relu3"], "method": "invert"}, "2026-01-01T00:00:00")
        atlas = root / "atlases" / "digits_vgg-relu1"
        _write_run(atlas, "sweep", "done", {"models": ["digits-vgg"], "layers": ["relu1"], "method": "maximize"},
                   "2026-01-01T00:00:01")
        wait_until(qapp, lambda: dock.row_count() == 3, timeout=20)
        kinds = {dock.row_cells(p)["kind"]: dock.row_cells(p) for p in dock.row_paths()}
        assert set(kinds) == {"invert", "sweep", "atlas"}
        assert kinds["sweep"]["layer"] == "relu1, relu3" and kinds["atlas"]["model"] == "digits-vgg"
        reopened = []
        session.collection_reopened.connect(lambda kind, path: reopened.append((kind, path)))
        assert dock.select_path(atlas) and dock.reopen_button.isEnabled()
        assert dock.reopen()
        assert reopened == [("atlas", str(atlas))]
    finally:
        assert dock.shutdown()
        session.shutdown()
    assert cli(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert "sweeps/20260101-000000" in out and "atlases/digits_vgg-relu1" in out and " atlas " in out


def test_a_cancelled_run_shows_its_restarts(tmp_path):
    from workbench.preview.runs import run_details

    run = tmp_path / "run"
    _write_run(run, "preimage", "cancelled", {"method": "invert"}, "2026-01-01T00:00:00")
    (run / "images").mkdir()
    for k in (1, 2):
        Image.fromarray(np.full((20, 16, 3), 40 * k, np.uint8)).save(run / "images" / f"restart_{k}.png")
    details = run_details(run)
    assert details["grid"] is not None and details["grid"].shape == (20, 16 + 4 + 16, 3)
    assert details["note"] == ""
