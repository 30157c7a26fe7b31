"""The representations source: HOG, HOGb and DSIFT built as networks (``--model hog``, ``hogb``,
``dsift``, ``NAME@CELL``; docs/representations.md).

The representations sit above the models in the layers of the code (they build on the layer table
and the loaded model), so this source reaches them by name, as a plug-in would, and never at import."""

from __future__ import annotations

import importlib

import torch

from workbench.config.model import REPRESENTATIONS, ModelSpec
from workbench.models.sources.loaded import LoadedModel

PACKAGE = "workbench.representations"


def claims(spec: ModelSpec) -> bool:
    name = spec.model.partition("@")[0].strip().lower()
    return spec.kind == "name_or_file" and name in REPRESENTATIONS and \
        importlib.import_module(PACKAGE).is_representation(spec.model)


def open(spec: ModelSpec, *, trust: bool, imports: bool, device: torch.device) -> LoadedModel:  # noqa: A001
    return importlib.import_module(PACKAGE).load_spec(spec, device=device)


def leaves() -> tuple[type, ...]:
    """The representations' stages (CVPR 2015 sect. 3), each one layer."""
    return tuple(importlib.import_module(f"{PACKAGE}.stages").LEAVES)
