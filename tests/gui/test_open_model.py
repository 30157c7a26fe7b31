"""The Open model dialog and model specs in the window: inline field errors, a weights file with
its architecture, recent models as whole specs, a Python callable imported only after the user
agrees (opened, or named by a run folder's run.json)."""

from __future__ import annotations

import json
import sys

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDialog, QMessageBox

from tests.gui.conftest import shown_window
from workbench.config.model import ModelSpec
from workbench.ui.docks.open_model_dialog import ERROR_STYLE, OpenModelDialog

YES, NO = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    with shown_window(qapp, tmp_path_factory.mktemp("open")) as win:
        yield win


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """digits-vgg's weights as a bare safetensors file (no sidecar, no arch in its metadata)."""
    from safetensors.torch import save_file

    from workbench.models.architectures import digits_vgg

    path = tmp_path_factory.mktemp("weights") / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in digits_vgg().state_dict().items()}, str(path))
    return path


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A module ``wb_callable_net`` whose import writes a marker file; ``make`` builds digits-vgg."""
    marker = tmp_path / "imported"
    (tmp_path / "wb_callable_net.py").write_text(
        "from pathlib import Path\n"
        f"Path({str(marker)!r}).write_text('imported')\n"
        "from workbench.models.architectures import digits_vgg\n\n\n"
        "def make(width=1):\n    return digits_vgg()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("wb_callable_net", None)


def loaded(qtbot, session, action, timeout=60_000):
    with qtbot.waitSignal(session.model_changed, timeout=timeout) as blocker:
        action()
    return blocker.args[0]


# --- the dialog on its own ----------------------------------------------------------------------

def test_ok_waits_for_a_valid_spec_and_errors_are_inline(qtbot):
    dialog = OpenModelDialog(names=["digits-vgg", "resnet18"], architectures=["digits-vgg"])
    qtbot.addWidget(dialog)
    assert not dialog.ok_button.isEnabled() and dialog.error.text() == ""  # empty: no scolding yet
    dialog.model.setText("digits-vgg")
    assert dialog.ok_button.isEnabled() and dialog.spec() == ModelSpec(model="digits-vgg")
    dialog.model.setText("mypkg.nets:Net")
    assert "Python code" in dialog.kind.text()
    dialog.kwargs.setText("{num_classes: 10")
    assert not dialog.ok_button.isEnabled() and dialog.spec() is None
    assert dialog.error.text().startswith("Model kwargs must be a JSON object")  # the field's label, not --model-kwargs
    assert dialog.kwargs.styleSheet() == ERROR_STYLE and dialog.model.styleSheet() == ""
    assert dialog.advanced.isExpanded()  # the field with the problem is shown
    dialog.kwargs.setText('{"num_classes": 10}')
    dialog.input_size.setText("3x64x64")
    dialog.mean.setText("0.5,0.5")
    assert "Mean has 2 value(s)" in dialog.error.text() and dialog.mean.styleSheet() == ERROR_STYLE
    dialog.mean.setText("0.5,0.5,0.5")
    dialog.std.setText("0.25, 0.25, 0.25")
    assert dialog.ok_button.isEnabled() and dialog.error.text() == ""
    assert dialog.spec() == ModelSpec(model="mypkg.nets:Net", model_kwargs='{"num_classes": 10}', input_size=(3, 64, 64),
                                      mean=(0.5,) * 3, std=(0.25,) * 3)
    dialog.model.setText("cifar.safetensors")  # kwargs only apply to a callable or timm
    assert not dialog.ok_button.isEnabled() and "Model kwargs applies to" in dialog.error.text()


def test_the_dialog_is_filled_from_a_spec(qtbot):
    spec = ModelSpec(model="/w/net.pt", arch="digits-vgg", input_size=(1, 32, 32), mean=(0.1307,), std=(0.3081,))
    dialog = OpenModelDialog(spec=spec)
    qtbot.addWidget(dialog)
    assert dialog.input_size.text() == "1x32x32" and dialog.arch.currentText() == "digits-vgg"
    assert dialog.advanced.isExpanded() and dialog.spec() == spec


# --- the window ---------------------------------------------------------------------------------

def test_open_model_loads_a_weights_file_with_its_architecture(window, qtbot, monkeypatch, weights):
    session = window.session

    def fill(dialog):
        dialog.model.setText(str(weights))
        dialog.arch.setCurrentText("digits-vgg")
        assert dialog.ok_button.isEnabled()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(OpenModelDialog, "exec", fill)
    model = loaded(qtbot, session, window.open_action.trigger)  # File → Open model… (Ctrl+O)
    assert model.name == str(weights) and len(model.layers()) == 20
    spec = ModelSpec(model=str(weights), arch="digits-vgg")
    assert session.model_spec.model == str(weights) and session.model_spec.arch == "digits-vgg"
    assert session.recent_models()[0] == session.model_spec  # the whole spec, not just the file
    recent = window.docks["ModelDock"].recent
    assert recent.itemText(0) == "mine.safetensors  (digits-vgg)"
    # the recent entry opens the same spec again (the file alone would ask for an architecture)
    loaded(qtbot, session, lambda: session.load_model("digits-vgg"))
    model = loaded(qtbot, session, lambda: recent.activated.emit(0))
    assert model.name == str(weights) and session.model_spec.arch == spec.arch
    # the dialog opens on the current model's spec
    seen = {}
    monkeypatch.setattr(OpenModelDialog, "exec", lambda d: seen.setdefault("arch", d.arch.currentText()) and 0)
    assert window.docks["ModelDock"].open_dialog() is False
    assert seen["arch"] == "digits-vgg"
    # each switch brings that model's own layer and reference: the views recompute theirs
    qtbot.waitUntil(lambda: not window.running_threads(), timeout=120_000)


def test_old_recent_files_still_open(tmp_path):
    from workbench.ui.session import Session

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    settings.setValue("recent_models", ["/old/model.pt", '{"model": "/new/w.safetensors", "arch": "digits-vgg"}', "{bad"])
    session = Session(settings, workspace=tmp_path / "runs")
    assert session.recent_models() == [ModelSpec(model="/old/model.pt"),
                                       ModelSpec(model="/new/w.safetensors", arch="digits-vgg")]
    session.shutdown()


def test_a_callable_is_imported_only_after_a_yes(window, qtbot, monkeypatch, package):
    session = window.session
    before = session.model.name
    asked = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: asked.append(a[2]) or NO)
    with qtbot.waitSignal(session.model_failed, timeout=60_000):
        session.load_model(ModelSpec(model="wb_callable_net:make", input_size=(1, 32, 32)))
    qtbot.waitUntil(lambda: bool(asked), timeout=5_000)
    assert "the Python callable wb_callable_net:make" in asked[0] and "Import it?" in asked[0]
    assert session.trust_kind is None and session.load_error is None  # declined: no error is left behind
    assert not package.exists() and "wb_callable_net" not in sys.modules  # declined: nothing imported
    assert session.model.name == before
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: asked.append(a[2]) or YES)
    with qtbot.waitSignal(session.model_failed, timeout=60_000):
        session.load_model("wb_callable_net:make")
    qtbot.waitUntil(lambda: session.model.name == "wb_callable_net:make", timeout=60_000)
    model = session.model
    assert package.exists() and len(model.layers()) == 20
    assert session.recent_models()[0].model == "wb_callable_net:make"


def write_run(folder, config, spec=None):
    folder.mkdir(parents=True)
    info = {"kind": "preimage", "config": config, "status": "done"}
    if spec is not None:
        info["model"] = {"name": spec.get("model"), "spec": spec}
    (folder / "run.json").write_text(json.dumps(info))
    return folder


def test_reopening_a_run_uses_its_recorded_spec(window, qtbot, tmp_path, weights):
    session = window.session
    loaded(qtbot, session, lambda: session.load_model("digits-vgg"))
    config = {"model": str(weights), "layer": "relu2", "method": "invert", "image": "digits:1"}
    run = write_run(tmp_path / "run-a", config, {"model": str(weights), "arch": "digits-vgg"})
    model = loaded(qtbot, session, lambda: session.apply_config(config, run=run))
    assert model.name == str(weights) and session.model_spec.arch == "digits-vgg"
    assert session.layer == "relu2" and session.reference == "digits:1"
    # the same model again: nothing is reloaded
    starts = []
    session.model_loading.connect(starts.append)
    session.apply_config(config, run=run)
    qtbot.waitUntil(lambda: not session.loader.running, timeout=30_000)
    session.model_loading.disconnect(starts.append)
    assert starts == [] and session.model is model


def test_reopening_a_run_asks_before_importing_its_callable(window, qtbot, monkeypatch, tmp_path, package):
    session = window.session
    before = session.model
    config = {"model": "wb_callable_net:make", "layer": "relu3", "method": "invert", "image": "digits:0"}
    run = write_run(tmp_path / "run-b", config, {"model": "wb_callable_net:make", "input_size": [1, 32, 32]})
    asked = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: asked.append(a[2]) or NO)
    with qtbot.waitSignal(session.model_failed, timeout=60_000):
        session.apply_config(config, run=run)
    qtbot.waitUntil(lambda: bool(asked), timeout=5_000)
    assert "wb_callable_net:make" in asked[0]
    assert not package.exists() and session.model is before
    assert session.loading_spec == ModelSpec(model="wb_callable_net:make", input_size=(1, 32, 32))
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: YES)
    with qtbot.waitSignal(session.model_failed, timeout=60_000):
        session.apply_config(config, run=run)
    qtbot.waitUntil(lambda: session.model is not before, timeout=60_000)
    assert package.exists() and session.model.name == "wb_callable_net:make"
    assert session.model_spec.input_size == (1, 32, 32)


def test_a_run_without_a_spec_falls_back_to_its_config(tmp_path):
    from workbench.preview.models import run_model_spec

    run = write_run(tmp_path / "old", {"model": "digits-lenet5"})
    assert run_model_spec(run) == (ModelSpec(model="digits-lenet5"), None)
    bad = write_run(tmp_path / "bad", {"model": "digits-lenet5"}, {"model": "x", "input_size": "big"})
    spec, warning = run_model_spec(bad)
    assert spec == ModelSpec(model="digits-lenet5") and "not usable" in warning
    (tmp_path / "gone").mkdir()
    assert run_model_spec(tmp_path / "gone", fallback="digits-vgg")[0] == ModelSpec(model="digits-vgg")
