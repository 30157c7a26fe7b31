"""Named top-5 predictions in the window (issue 18): the live view's captions and the Feature maps
neuron list's caption read them from a run's metrics and a class layer's values."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.ui.docks.filters_dock import top5_text
from workbench.ui.docks.live_view import _names_in_metrics, runners_up

TOP = [{"class": 285, "name": "Egyptian cat", "probability": 0.41}, {"class": 281, "name": "tabby", "probability": 0.25},
       {"class": 282, "name": "tiger cat", "probability": 0.2}, {"class": 287, "name": "lynx", "probability": 0.004},
       {"class": 904, "name": "window screen", "probability": 0.003}]


def test_the_runners_up_of_a_restart_are_one_caption_line():
    assert runners_up(TOP) == "tabby (25 %) · tiger cat (20 %)"   # under 1 % left out
    assert runners_up(None) == "" and runners_up([TOP[0]]) == ""
    unnamed = [dict(e, name=None) for e in TOP]
    assert runners_up(unnamed, least=0.0).startswith("class 281 (25 %)")


def test_a_reopened_run_names_its_classes_from_its_metrics():
    names = _names_in_metrics({"reference_top5": TOP[:1], "top5": [TOP, TOP[1:]]})
    assert len(names) == 905 and names[285] == "Egyptian cat" and names[904] == "window screen"
    assert names[0] == "class 0"
    assert _names_in_metrics({"top5": [[{"class": 3, "name": None, "probability": 1.0}]]}) is None


def test_a_class_layer_lists_its_top5_with_probabilities():
    logits = np.zeros(10)
    logits[[7, 2, 5]] = [5.0, 4.0, 3.0]
    names = [f"n{k}" for k in range(10)]
    text = top5_text(logits, names)
    p = np.exp(logits) / np.exp(logits).sum()
    assert text.startswith(f"n7 {100 * p[7]:.0f} %, n2 {100 * p[2]:.0f} %, n5 {100 * p[5]:.0f} %")
    assert text.count(",") == 4
    assert float(text.split()[1]) == pytest.approx(100 * p[7], abs=0.5)


def test_a_layer_names_its_classes_only_where_its_units_are_the_classes():
    from types import SimpleNamespace

    from workbench.preview.compute import layer_class_names

    def info(name, shape):
        return SimpleNamespace(name=name, alias=None, shape=shape)

    names = ["cat", "dog", "bee"]
    model = SimpleNamespace(class_names=names, layers=lambda: [
        info("conv", (3, 8, 8)), info("pool", (3, 1, 1)), info("fc", (3,)), info("flat", (3,))])
    assert layer_class_names(model, "fc") == names and layer_class_names(model, "flat") == names
    assert layer_class_names(model, "pool") is None       # a later layer changes its shape: not the output yet
    assert layer_class_names(model, "conv") is None       # 3 channels of 8 × 8: maps, not classes
    assert layer_class_names(model, "nope") is None
    assert layer_class_names(SimpleNamespace(class_names=None, layers=model.layers), "fc") is None
