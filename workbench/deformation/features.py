"""Several layers of a network in one forward pass.

:func:`layer_extractor` prefers the layer table's FX extractor
(:func:`workbench.models.truncate.feature_extractor`: layer-table names such as
``layer1.0.relu_1``, nothing computed past the last requested layer, and a trace that leaves
other threads' forward passes alone); a model FX cannot trace falls back to forward hooks on
named submodules, registered inside a context manager that always removes them. ``"input"``
names layer 0, the (normalized) input itself.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn as nn

from workbench.errors import UserError

INPUT = "input"


def default_layers(module: nn.Module) -> list[str]:
    """Ruderman et al. Fig. 3 for the CIFAR-style nets (input, 8 convs after ReLU, 4 downsamplings);
    otherwise the input and every leaf module in order."""
    names = [n for n, m in module.named_modules() if n and not list(m.children())]
    if any(n.startswith("down") for n in names) and any(n.startswith("relu1_") for n in names):
        out = [INPUT]
        for n in names:
            if n.startswith("relu"):
                out.append(n)
            elif n.startswith("down") and "_" not in n:
                relu = f"{n}_relu"
                out.append(relu if relu in names else n)
        return out
    return [INPUT] + [n for n in names if n not in ("flatten",)]


def _fx_extractor(module: nn.Module, names: list[str]) -> nn.Module | None:
    from workbench.models.truncate import feature_extractor

    try:
        extractor = feature_extractor(module, names)
    except Exception:  # not traceable, or a name FX does not know: the hooks below take over
        return None
    return extractor.eval() if not module.training else extractor


@contextmanager
def _hooks(module: nn.Module, names: list[str]) -> Iterator[Callable[[torch.Tensor], dict[str, torch.Tensor]]]:
    modules = dict(module.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise UserError(f"unknown layer(s) {', '.join(missing)}: use names from the model's layer list")
    captured: dict[str, torch.Tensor] = {}
    handles = []

    def make(name: str):
        def hook(_m, _inp, out):
            captured[name] = out
        return hook

    try:
        for n in names:
            handles.append(modules[n].register_forward_hook(make(n)))

        def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
            captured.clear()
            module(x)
            return {n: captured[n] for n in names}

        yield run
    finally:
        for h in handles:
            h.remove()


@contextmanager
def layer_extractor(module: nn.Module, layers: list[str]) -> Iterator[Callable[[torch.Tensor], dict[str, torch.Tensor]]]:
    """Yield ``run(x) -> {layer: output}`` for ``layers`` (network order), ``"input"`` included."""
    inner = [n for n in layers if n != INPUT]
    if not inner:
        yield lambda x: {INPUT: x}
        return
    extractor = _fx_extractor(module, inner)
    if extractor is not None:
        def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
            out = extractor(x)
            return {n: (x if n == INPUT else out[n]) for n in layers}
        yield run
        return
    with _hooks(module, inner) as hooked:
        def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
            out = hooked(x)
            return {n: (x if n == INPUT else out[n]) for n in layers}
        yield run
