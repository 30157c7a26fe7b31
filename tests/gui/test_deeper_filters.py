"""The Feature maps and filters dock's Deeper filters tab (the lecture's Fig. 3, Lee et al.): the
selected layer's filters drawn as weighted combinations of the first layer's, computed on a worker."""

from __future__ import annotations

import torch
import torch.nn as nn

from tests.gui.conftest import wait_until
from workbench.filters.composite import composite_filters
from workbench.ui.docks.filters_dock import FiltersDock


def test_deeper_filters_follow_the_selected_layer(qtbot, qapp, session):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(),
                        nn.Conv2d(6, 5, 3), nn.ReLU())
    dock = FiltersDock(session)
    qtbot.addWidget(dock)
    session.update_config(image="digits:0")
    session.open_module(net, name="chain", input_size=(1, 20, 20))
    wait_until(qapp, lambda: "filters of" in dock.deeper_caption.text(), 60)
    # the last convolution up to the selected layer (or the second): 6 filters of (3-1)·2 + 3 = 7 pixels
    assert dock.deeper_caption.text().startswith("3: 6 filters of 7×7") and dock.deeper.item.image is not None
    names = [info.name for info in session.model.layers()]
    session.set_layer(names[-1])
    wait_until(qapp, lambda: dock.deeper_caption.text().startswith("5:"), 60)
    (_n, expected) = composite_filters(net, (1, 20, 20))[-1]
    assert expected.shape[0] == 5 and f"5 filters of {expected.shape[-1]}×{expected.shape[-1]}" in dock.deeper_caption.text()
    assert dock.shutdown(60_000)


def test_a_model_with_one_convolution_says_so(qtbot, qapp, session):
    dock = FiltersDock(session)
    qtbot.addWidget(dock)
    session.update_config(image="digits:0")
    session.open_module(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), name="one", input_size=(3, 8, 8))
    wait_until(qapp, lambda: "no second convolution" in dock.deeper_caption.text(), 60)
    assert dock.shutdown(60_000)
