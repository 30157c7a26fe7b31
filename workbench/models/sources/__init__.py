"""The model-source registry: every way to name a model, behind one :func:`load_model` (:func:`open_model`).

A spec (:class:`~workbench.config.model.ModelSpec`) is offered to the sources in :data:`SOURCES`
order; the first that claims it opens it. Each source is a module here with

- ``claims(spec) -> bool``: whether the spec names a model of this kind (cheap: nothing the spec
  names is imported or read);
- ``open(spec, *, trust, imports, device) -> LoadedModel``;
- optionally ``leaves() -> tuple[type, ...]``: module types of its models that the tracer keeps
  whole (one row each in the layer table): :func:`leaf_modules` gathers them, so the tracer needs
  no import of the sources' code.

=================  ==============================================================================
source             names
=================  ==============================================================================
callable           ``package.module:callable`` (:mod:`.callable`): a class or function returning
                   an ``nn.Module``, imported only on the user's own command line or with trust
timm               ``timm:NAME`` (:mod:`.timm`, extra ``[timm]``)
memory             ``<in-memory ...>``: a module handed to :func:`from_module` (cannot be reopened)
zoo                a zoo name (:mod:`.zoo`): bundled, paper architectures, torchvision, packages
representations    ``hog``, ``hogb``, ``dsift`` (``@CELL``) (:mod:`.representations`)
files              a model file (:mod:`.files`): safetensors, state_dict + architecture, ONNX
                   (:mod:`.onnx`), and with trust TorchScript and full pickles (:mod:`.weights`)
=================  ==============================================================================

What every source shares: :mod:`.loaded` (the :class:`LoadedModel`), :mod:`.describe` (input,
normalisation and class names; the finished model), :mod:`.weights` (reading weight files).
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch

from workbench.config.model import ModelSpec
from workbench.errors import UserError
from workbench.models.sources.loaded import IMAGENET_RULE, IN_MEMORY, LoadedModel, NeedsTrust, Prediction
from workbench.models.sources.memory import from_module
from workbench.models.sources.registry import SOURCES, leaf_modules, source

def load_model(spec: str | ModelSpec, *, arch: str | None = None, trust: bool = False,
               device: str | torch.device = "cpu", imports: bool = True) -> LoadedModel:
    """The model a spec names; a string is ``ModelSpec(model=spec, arch=arch)``.

    ``trust`` allows files that are code (TorchScript, full pickles) and callables when
    ``imports`` is False; ``imports=False`` is for a spec read from a file (a run folder, a sweep,
    settings), which must not import Python code the user has not confirmed now."""
    from workbench.device import resolve_device

    device = resolve_device(device)
    spec = _as_spec(spec, arch)
    spec.validate()
    for name in SOURCES:
        module = source(name)
        if module.claims(spec):
            return module.open(spec, trust=trust, imports=imports, device=device)
    raise UserError(f"no model source opens '{spec.model}'")  # files claims every name: not reached


#: The registry's one entry point under the name the Python API uses.
open_model = load_model


def _as_spec(spec: str | ModelSpec, arch: str | None) -> ModelSpec:
    if isinstance(spec, ModelSpec):
        if arch is not None and spec.arch not in (None, arch):
            raise UserError(f"two architectures for {spec.model}: --arch {arch} and the spec's {spec.arch}; give one")
        return spec if arch is None else replace(spec, arch=arch)
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise UserError(f"a model is a zoo name, a file, package.module:callable or timm:NAME, not a {type(spec).__name__}")
    return ModelSpec(model=spec, arch=arch)


__all__ = ["IMAGENET_RULE", "IN_MEMORY", "LoadedModel", "NeedsTrust", "Prediction", "SOURCES", "from_module",
           "leaf_modules", "load_model", "open_model", "source"]
