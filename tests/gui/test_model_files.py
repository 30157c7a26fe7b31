"""Opening model files from the window: a full pickle only after the user trusts it, a bare
state_dict after the user names its architecture."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtWidgets import QInputDialog, QMessageBox

from tests.gui.conftest import shown_window
from workbench.models.architectures import digits_vgg


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    with shown_window(qapp, tmp_path_factory.mktemp("files")) as win:
        yield win


def test_a_full_pickle_loads_only_when_trusted(window, qtbot, monkeypatch, tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(digits_vgg(), path)
    asked = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)
    with qtbot.waitSignal(window.session.model_failed, timeout=60_000):
        window.open_path(str(path))
    qtbot.waitUntil(lambda: bool(asked), timeout=5_000)
    assert "runs code" in asked[0]
    assert window.session.model.name == "digits-vgg"  # declined: nothing was unpickled
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(window.session.model_changed, timeout=60_000) as blocker:
        window.open_path(str(path))
    assert blocker.args[0].name == str(path) and "trusted" in blocker.args[0].source
    assert str(path) in [spec.model for spec in window.session.recent_models()]


def test_bare_weights_ask_for_the_architecture(window, qtbot, monkeypatch, tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(digits_vgg().state_dict(), path)
    offered = []
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: offered.append(a[3]) or ("digits-vgg", True))
    loaded = []
    window.session.model_changed.connect(loaded.append)
    window.open_path(str(path))
    qtbot.waitUntil(lambda: bool(loaded), timeout=60_000)
    window.session.model_changed.disconnect(loaded.append)
    assert "digits-vgg" in offered[0]
    model = loaded[0]
    assert model.name == str(path) and len(model.layers()) == 20
    assert window.docks["LayersDock"].tree.topLevelItemCount() == 20


def test_a_torchscript_file_runs_nothing_until_trusted(window, qtbot, monkeypatch, tmp_path):
    from tests.security.test_torchscript_consent import Gadget

    marker = tmp_path / "code-ran"
    path = tmp_path / "gadget.pt"
    torch.jit.script(Gadget(str(marker))).save(str(path))
    before = window.session.model.name
    asked = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.No)
    with qtbot.waitSignal(window.session.model_failed, timeout=60_000):
        window.open_path(str(path))
    qtbot.waitUntil(lambda: bool(asked), timeout=5_000)
    assert "TorchScript" in asked[0] and "runs code" in asked[0]
    assert not marker.exists()  # declined: torch.jit.load never ran
    assert window.session.model.name == before
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.StandardButton.Yes)
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: ("", False))  # its layers need an architecture
    failures = []
    window.session.model_failed.connect(failures.append)
    window.open_path(str(path))
    qtbot.waitUntil(lambda: len(failures) >= 2, timeout=60_000)  # untrusted, then trusted but needs --arch
    window.session.model_failed.disconnect(failures.append)
    assert marker.exists()  # the user consented, and the file's code ran
