"""An ``nn.Module`` the caller already has (the Python API): :func:`from_module`."""

from __future__ import annotations

import operator
import os
from typing import Sequence

import torch
import torch.nn as nn

from workbench.config.model import ModelSpec
from workbench.errors import UserError
from workbench.models.sources.describe import _Input, _finish, _read_class_names
from workbench.models.sources.loaded import IN_MEMORY, LoadedModel


def from_module(module: nn.Module, *, name: str | None = None, input_size: Sequence[int] | None = None,
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                class_names: Sequence[str] | str | os.PathLike | None = None,
                device: str | torch.device | None = None) -> LoadedModel:
    """A :class:`LoadedModel` around a module the caller already has (the Python API).

    ``input_size`` (C, H, W) is required unless the module carries a timm-style ``pretrained_cfg``
    that gives it; ``mean`` and ``std`` (per channel, on the [0, 1] scale) default to 0 and 1, no
    normalisation, with a notice; ``class_names`` is a list of names or a class-names file.

    The module is frozen **in place** — ``eval()`` and ``requires_grad_(False)`` on its parameters —
    and is the LoadedModel's ``module``, not a copy: the workbench computes with exactly the object
    passed in, and a large model is not duplicated. Call ``module.train()`` and ``requires_grad_(True)``
    to train it again afterwards. ``device=None`` leaves it where it is (its first parameter's device,
    cpu for a module without any); a device given moves it there."""
    from workbench.device import resolve_device

    if not isinstance(module, nn.Module):
        raise UserError(f"from_module needs an nn.Module, not a {type(module).__name__}")
    label = name or f"{IN_MEMORY}{type(module).__name__}>"
    cfg = getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None)
    cfg = cfg if isinstance(cfg, dict) else {}
    if input_size is None and cfg.get("input_size") is not None:
        input_size = cfg["input_size"]
        mean = cfg.get("mean") if mean is None else mean
        std = cfg.get("std") if std is None else std
    if input_size is None:
        raise UserError(f"{label}: from_module needs input_size=(C, H, W), e.g. input_size=(3, 224, 224): "
                        f"an in-memory module does not say what input it takes")
    try:
        size = tuple(operator.index(v) for v in input_size)
        mean = None if mean is None else tuple(float(v) for v in mean)
        std = None if std is None else tuple(float(v) for v in std)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{label}: from_module takes input_size=(C, H, W) as whole numbers and mean/std as "
                        f"sequences of numbers ({exc})") from None
    names_file = None
    names: list[str] | None = None
    if isinstance(class_names, (str, os.PathLike)):
        names_file = os.fspath(class_names)
        names = _read_class_names(names_file)
    elif class_names is not None:
        names = [str(n) for n in class_names]
    check = ModelSpec(model=label, input_size=size, mean=mean, std=std)
    try:
        check.validate()
    except UserError as exc:
        raise UserError(f"{label}: " + str(exc).replace("--input-size", "input_size").replace("--mean", "mean")
                        .replace("--std", "std")) from None
    c = size[0]
    defaulted = [f for f, v in (("mean", mean), ("std", std)) if v is None]
    mean = mean if mean is not None else (0.0,) * c
    std = std if std is not None else (1.0,) * c
    if len(mean) != c or len(std) != c:
        raise UserError(f"{label}: mean and std need one value per input channel ({c}), got {len(mean)} and {len(std)}")
    notice = None
    if defaulted:
        notice = (f"{label}: no {' and '.join(defaulted)} given, so the input is taken as it is "
                  f"(mean 0, std 1: no normalisation); pass mean=... and std=... per channel on the [0, 1] scale "
                  f"if the module expects normalised input.")
    if device is None:
        tensor = next(iter(module.parameters()), None)
        if tensor is None:
            tensor = next(iter(module.buffers()), None)
        device = tensor.device if tensor is not None else torch.device("cpu")
    device = resolve_device(device)
    spec = ModelSpec(model=label, input_size=size, mean=tuple(mean), std=tuple(std),
                     class_names=names_file)
    io = _Input(size, tuple(mean), tuple(std), names, "input_size", notice, names_file,
                "class_names" if names is not None else None)
    return _finish(label, spec, module, io, trained=True, source=f"in-memory {type(module).__name__} (from_module)",
                   notices=[], dataset=None, meta={}, device=device, aliases=None)


def claims(spec: ModelSpec) -> bool:
    return spec.kind == "name_or_file" and spec.model.startswith(IN_MEMORY)


def open(spec: ModelSpec, *, trust: bool, imports: bool, device: torch.device) -> LoadedModel:  # noqa: A001
    raise UserError(f"{spec.model} was a module handed to from_module(): a run cannot reopen it by name; "
                    f"pass the module to from_module() again")
