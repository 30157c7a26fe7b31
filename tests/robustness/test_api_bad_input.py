"""Issue 17: the Python API raises one documented exception type, :class:`workbench.errors.UserError`,
for bad input or a model it cannot compute with — before any run folder exists — and never reports a
NaN as a result (an ntv of 0.0, a ``done`` run with null means)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import workbench as wb
from workbench.errors import UserError

SIZE = dict(input_size=(3, 32, 32))


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU())


def _nan_net() -> nn.Module:
    net = _net()
    with torch.no_grad():
        net[2].weight[0, 0, 0, 0] = float("nan")
    return net


def _inf_buffer_net() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    net[1].running_var.fill_(float("inf"))
    return net


class _Raises(nn.Module):
    def __init__(self, error: type[Exception]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.error = error

    def forward(self, x):
        raise self.error("the model's own bug")


PROBES = {
    "class_names-dict": (lambda: wb.invert(_net(), "1", "digits:0", class_names={"a": 1}, iters=1, **SIZE),
                         "class_names must be a list of names"),
    "class_names-ints": (lambda: wb.invert(_net(), "1", "digits:0", class_names=[1, 2], iters=1, **SIZE),
                         "class_names must be a list of names"),
    "smoothness-init-5": (lambda: wb.smoothness(_net(), init=5), "init must be truncnormal"),
    "smoothness-init-list": (lambda: wb.smoothness(_net(), init=["gaussian:1"]), "init must be truncnormal"),
    "lazy-smoothness": (lambda: wb.smoothness(nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU()), **SIZE),
                        "not initialised yet"),
    "lazy-invert": (lambda: wb.invert(nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU()), "1", "digits:0", iters=1, **SIZE),
                    "not initialised yet"),
    "meta-invert": (lambda: wb.invert(_net().to("meta"), "1", "digits:0", iters=1, **SIZE), "meta device"),
    "meta-open": (lambda: wb.open_model(_net().to("meta"), **SIZE), "meta device"),
    "nan-smoothness": (lambda: wb.smoothness(_nan_net(), **SIZE), "NaN or infinite"),
    "nan-deformation": (lambda: wb.deformation_sensitivity(_nan_net(), n=2, seeds=1, **SIZE), "NaN or infinite"),
    "nan-invert": (lambda: wb.invert(_nan_net(), "1", "digits:0", iters=1, **SIZE), "NaN or infinite"),
    "inf-buffer": (lambda: wb.maximize(_inf_buffer_net(), "0", 0, iters=1, **SIZE), "NaN or infinite"),
    "forward-TypeError": (lambda: wb.invert(_Raises(TypeError), "conv", "digits:0", iters=1, **SIZE), "TypeError"),
    "forward-KeyError": (lambda: wb.invert(_Raises(KeyError), "conv", "digits:0", iters=1, **SIZE), "KeyError"),
    "forward-AttributeError": (lambda: wb.smoothness(_Raises(AttributeError), **SIZE), "AttributeError"),
    "mean-text": (lambda: wb.invert(_net(), "1", "digits:0", iters=1, mean="x", **SIZE), "mean/std"),
    "std-none-in-list": (lambda: wb.invert(_net(), "1", "digits:0", iters=1, std=[None, 1, 1], **SIZE), "mean/std"),
}


@pytest.mark.parametrize("name", list(PROBES))
def test_bad_api_input_is_a_user_error_before_any_folder(name, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "ws"))
    call, needle = PROBES[name]
    with pytest.raises(UserError) as caught:
        call()
    assert needle in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "ws").exists() or not any((tmp_path / "ws").iterdir()), "a run folder was left"


def test_finite_weights_still_work(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(tmp_path / "ws"))
    rows = wb.smoothness(_net(), **SIZE)
    assert [r["layer"] for r in rows] == ["0", "2"] and all(0.0 < r["ntv"] < 10.0 for r in rows)
