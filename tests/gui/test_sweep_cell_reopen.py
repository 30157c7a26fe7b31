"""Issue 18, item 5: a sweep or atlas cell of a package.module:callable reopens in the window
(Runs → Reopen, the Atlas dock's tile) through the run's recorded spec and the same consent
question as any run: nothing is imported before the user says yes, then the whole spec opens."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSettings

from tests.gui.conftest import wait_until
from workbench.config.model import ModelSpec

TESTS = Path(__file__).resolve().parents[1]
TWO_HEADS = "fixtures_models.nets:TwoHeads"
SPEC = ModelSpec(TWO_HEADS, model_kwargs='{"width": 4}', input_size=(3, 16, 16), path=str(TESTS))


def test_an_atlas_cell_of_a_callable_reopens_after_consent(qapp, qtbot, tmp_path, capsys):
    from workbench.cli import main
    from workbench.models import load_model
    from workbench.ui.session import Session

    out = tmp_path / "atlas"
    assert main(["atlas", "--model", TWO_HEADS, "--path", str(TESTS), "--model-kwargs", '{"width": 4}',
                 "--input-size", "3x16x16", "--layer", "conv", "--channels", "2", "--iters", "3", "--device", "cpu",
                 "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    (cell,) = (out / "cells").iterdir()
    config = json.loads((cell / "run.json").read_text())["config"]

    session = Session(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")
    try:
        session._on_model_loaded((load_model("digits-vgg"), None))
        with qtbot.waitSignal(session.model_failed, timeout=60_000):
            session.apply_config(config, run=cell)
        assert session.trust_kind == "callable" and session.loading_spec == SPEC  # asked about the whole spec
        with qtbot.waitSignal(session.model_changed, timeout=60_000):
            session.load_model(session.loading_spec, imports=True)  # the user's yes
        wait_until(qapp, lambda: not session.busy and not session._reopen_slot.busy and not session.loader.running)
        assert session.model_spec == SPEC and session.model.input_size == (3, 16, 16)
        assert (session.layer, session.config["channel"], session.config["method"]) == ("conv", 2, "maximize")
    finally:
        session.shutdown()
