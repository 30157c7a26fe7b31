"""workbench.show(): the window on an in-memory module, a spec or a LoadedModel; offscreen."""

from __future__ import annotations

import numpy as np
import pytest
import torch.nn as nn
from PIL import Image
from PySide6.QtCore import QSettings, Qt, QTimer

from tests.gui.conftest import wait_until
from workbench.errors import UserError
from workbench.ui import show as show_module
from workbench.ui.show import WINDOWS_ATTRIBUTE, show


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.head = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = self.pool(self.relu1(self.conv1(x)))
        x = self.relu2(self.conv2(x))
        return self.head(x.flatten(1))


@pytest.fixture
def options(tmp_path):
    return dict(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat), workspace=tmp_path / "runs")


def close(qapp, window) -> None:
    window.close()
    assert window.running_threads() == []
    wait_until(qapp, lambda: window not in getattr(qapp, WINDOWS_ATTRIBUTE, []), 5)


def test_show_an_in_memory_module(qapp, options):
    net = SmallCNN()
    image = np.linspace(0, 1, 16 * 16 * 3).reshape(16, 16, 3)
    window = show(net, image=image, input_size=(3, 16, 16), class_names=[str(i) for i in range(10)], layer="conv2",
                  block=False, **options)
    session = window.session
    assert window in getattr(qapp, WINDOWS_ATTRIBUTE)  # kept: dropping the return value does not close it
    wait_until(qapp, lambda: session.model is not None or session.load_error is not None, 60)
    assert session.load_error is None
    assert session.model.module is net  # the caller's own module, wrapped on the loader thread
    tree = window.docks["LayersDock"].tree
    listed = [tree.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole) for i in range(tree.topLevelItemCount())]
    assert {"conv1", "relu1", "pool", "conv2", "relu2", "head"} <= set(listed)
    assert session.layer == "conv2"
    assert "SmallCNN" in window.windowTitle()
    assert "SmallCNN" in window.docks["ModelDock"].card.text()
    assert session.recent_models() == [] and session.model_spec is None  # nothing to reopen it from
    # the model's own default reference (a photo for a colour net) comes first; the caller's image, written
    # to a PNG on a worker, replaces it
    wait_until(qapp, lambda: str(session.reference).endswith(".png"), 30)
    written = Image.open(session.reference)
    assert written.size == (16, 16) and written.mode == "RGB"
    assert np.abs(np.asarray(written) / 255.0 - image).max() <= 0.5 / 255 + 1e-9
    close(qapp, window)


def test_show_a_spec_and_a_loaded_model(qapp, options):
    from workbench.models import load_model

    window = show("digits-vgg", image="digits:3", layer="relu2", block=False, **options)
    wait_until(qapp, lambda: window.session.model is not None, 60)
    assert window.session.model.name == "digits-vgg" and window.session.reference == "digits:3"
    assert window.docks["LayersDock"].tree.topLevelItemCount() == len(window.session.model.layers())
    close(qapp, window)
    loaded = load_model("digits-lenet5")
    window = show(loaded, block=False, **options)
    wait_until(qapp, lambda: window.session.model is not None, 60)
    assert window.session.model is loaded
    close(qapp, window)


def test_show_blocks_until_the_window_closes(qapp, options):
    seen = {}

    def close_when_loaded():
        windows = getattr(qapp, WINDOWS_ATTRIBUTE, [])
        if windows and windows[-1].session.model is not None:
            seen["layers"] = windows[-1].docks["LayersDock"].tree.topLevelItemCount()
            windows[-1].close()
        else:
            QTimer.singleShot(50, close_when_loaded)

    QTimer.singleShot(0, close_when_loaded)
    # pytest-qt made the QApplication, so show() runs a loop of its own and returns None
    assert show(SmallCNN(), input_size=(3, 16, 16), **options) is None
    assert seen["layers"] >= 6


def test_inside_a_running_qt_loop_it_returns_at_once(qapp, options, monkeypatch):
    monkeypatch.setattr(show_module, "ipython_qt_loop", lambda: True)
    window = show(SmallCNN(), input_size=(3, 16, 16), **options)  # block=None: IPython's %gui qt runs Qt
    assert window.isVisible()
    wait_until(qapp, lambda: window.session.model is not None, 60)
    close(qapp, window)


def test_ipython_qt_loop_reads_the_shell(monkeypatch):
    import sys
    import types

    fake = types.SimpleNamespace(active_eventloop=None)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: fake))
    assert not show_module.ipython_qt_loop()
    fake.active_eventloop = "qt"
    assert show_module.ipython_qt_loop()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not show_module.ipython_qt_loop()


def test_bad_arguments_are_one_line_errors_before_any_window(qapp, options):
    before = len(getattr(qapp, WINDOWS_ATTRIBUTE, []))
    with pytest.raises(UserError, match="nn.Module"):
        show(42, block=False, **options)
    with pytest.raises(UserError, match="H×W"):
        show(SmallCNN(), image=np.zeros((4, 4, 2)), input_size=(3, 16, 16), block=False, **options)
    with pytest.raises(UserError, match="file"):
        show("digits-vgg", class_names=["a", "b"], block=False, **options)
    with pytest.raises(UserError, match="channel"):
        show("digits-vgg", input_size=(1, 32, 32), mean=(0.5, 0.5), block=False, **options)
    assert len(getattr(qapp, WINDOWS_ATTRIBUTE, [])) == before


def test_a_failing_module_is_reported_in_the_window(qapp, options):
    window = show(SmallCNN(), input_size=(1, 16, 16), block=False, **options)  # 1 channel: conv1 wants 3
    wait_until(qapp, lambda: window.session.load_error is not None, 60)
    assert window.session.model is None
    assert "Could not load" in window.docks["ModelDock"].card.text()
    close(qapp, window)


def test_reference_png_is_stable(tmp_path):
    from workbench.preview.compute import reference_png

    image = np.random.default_rng(0).random((8, 9))
    first = reference_png(image, tmp_path)
    second = reference_png(image.copy(), tmp_path)
    assert first == second
    assert Image.open(first).mode == "L"
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        reference_png(image * 2, tmp_path)
