"""The zoo source: bundled digits nets, the papers' architectures, torchvision's ImageNet
classifiers (trained when their weights are in the hub cache: never downloaded, never unpickled
with code) and ImageNet nets from installed packages (``efficientnet-lite0``).

torchvision's own cached-weights loader unpickles with ``weights_only=False`` and trusts any
file already in the cache, so it is never called: the cached file is found and checked here."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from workbench.config.model import ModelSpec
from workbench.errors import NeedsArchitecture, UserError
from workbench.models import zoo
from workbench.models.sources.describe import _describe_input, _finish, _read_sidecar
from workbench.models.sources.loaded import LoadedModel, _or_list
from workbench.models.sources.weights import (
    _HASH, _head_classes, _load_state, _read_safetensors, _read_weights, _sha256, _torch_load_weights,
    _unwrap_state_dict)


def _load_zoo(entry: zoo.ZooEntry, spec: ModelSpec, trust: bool, device: torch.device) -> LoadedModel:
    meta: dict[str, Any] = {}
    class_names = zoo.class_names_for(entry.name)
    sidecar = side = None
    if spec.weights is not None:
        path, state, kind = _read_weights(spec.weights, trust)
        module, classes = _build_fitting(entry.name, state)
        _load_state(module, state, path, entry.name)
        if classes is not None:
            class_names = None
        sidecar, side = _read_sidecar(path), path.with_suffix(".json").name
        meta = dict(sidecar or {})
        trained, notice, dataset = True, None, meta.get("dataset")
        source = f"{path} ({kind} into {entry.name}{f', {classes} classes' if classes is not None else ''})"
    elif entry.kind == "torchvision":
        module = zoo.build_architecture(entry.name)
        trained, source, notice, meta = _load_torchvision_cache(entry.name, module)
        dataset = "imagenet" if trained else None
    elif entry.kind == "package":
        module = zoo.build_architecture(entry.name)
        trained, source, notice, meta = _load_package_weights(entry.name, module)
        dataset = "imagenet" if trained else None
    else:
        module = zoo.build_architecture(entry.name)
        path = zoo.weights_path(entry.name)
        if path.is_file():
            _load_state(module, _read_safetensors(path)[0], path, entry.name)
            meta = _read_sidecar(path) or {}
            trained, source, notice = True, f"bundled: {zoo._relative(path)}", None
            dataset = meta.get("dataset", "digits")
        else:
            trained, dataset = False, None
            source = f"untrained (random init, seed {zoo.INIT_SEED})"
            notice = (f"{entry.name}: no trained weights at {path}; the model is UNTRAINED (random init). "
                      f"Run `workbench zoo train {entry.name}` to train it.")
    io = _describe_input(entry.name, spec, module, known=(entry.input_size, entry.mean, entry.std, class_names),
                         sidecar=sidecar, side=side)
    return _finish(entry.name, spec, module, io, trained=trained, source=source, notices=[notice], dataset=dataset,
                   meta=meta, device=device, aliases=entry.aliases)


def _load_torchvision_cache(name: str, module: nn.Module) -> tuple[bool, str, str | None, dict]:
    """Load torchvision's weights from the hub cache if they are there; never download, never unpickle code."""
    path = zoo.torchvision_cache_path(name)
    if not path.is_file():
        return (False, f"untrained (random init, seed {zoo.INIT_SEED})",
                f"{name}: no pretrained weights in {path.parent} (looked for {path.name}); the model is UNTRAINED "
                f"(random init). Put the file there to use trained weights.", {})
    match = _HASH.search(path.name)
    if match:
        digest = _sha256(path)
        if not digest.startswith(match.group(1)):
            raise UserError(f"{name}: the cached weights {path} do not match the hash in their name "
                            f"({match.group(1)}): the file is damaged or was replaced; delete it or put the original there")
    state = _torch_load_weights(path, trust=False, what=f"{name}: the cached weights {path}")
    if not isinstance(state, dict):
        raise UserError(f"{name}: the cached weights {path} are not a state_dict; delete or replace the file")
    if any(".norm.1." in k for k in state):  # torchvision's DenseNet files keep old key names ("norm.1" for "norm1")
        pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
        state = {(m.group(1) + m.group(2)) if (m := pattern.match(k)) else k: v for k, v in state.items()}
    _load_state(module, state, path, name)
    return True, str(path), None, {"weights_url": zoo.torchvision_weights_url(name)}


def _load_package_weights(name: str, module: nn.Module) -> tuple[bool, str, str | None, dict]:
    """Load a package model's weights file (a state_dict, ``weights_only``; its name's hash checked)."""
    path = zoo.package_weights_path(name)
    if path is None or not path.is_file():
        return (False, f"untrained (random init, seed {zoo.INIT_SEED})",
                f"{name}: its trained weights are not installed; the model is UNTRAINED (random init). "
                f"{zoo.PACKAGE_MODELS[name].install_hint()}", {})
    match = _HASH.search(path.name)
    if match and not _sha256(path).startswith(match.group(1)):
        raise UserError(f"{name}: the installed weights {path} do not match the hash in their name "
                        f"({match.group(1)}): the file is damaged or was replaced; reinstall "
                        f"{zoo.PACKAGE_MODELS[name].packages[1]}")
    state = _unwrap_state_dict(_torch_load_weights(path, trust=False, what=f"{name}: the installed weights {path}"), path)
    _load_state(module, state, path, name)
    return True, str(path), None, {"weights_package": zoo.PACKAGE_MODELS[name].packages[1]}


def _build_fitting(arch: str, state: dict[str, torch.Tensor]) -> tuple[nn.Module, int | None]:
    """Architecture ``arch``, rebuilt with the checkpoint's number of classes where its head differs
    (and only there: the strict load that follows refuses any other mismatch)."""
    module = zoo.build_architecture(arch)
    classes = _head_classes(module, state)
    if classes is None:
        return module, None
    try:
        return zoo.build_architecture(arch, num_classes=classes), classes
    except (TypeError, ValueError):  # the architecture takes no num_classes: the strict load explains
        return module, None


def _architecture(path: Path, arch: str | None, stored: str | None) -> str:
    name = arch or stored
    if not name:
        raise NeedsArchitecture(f"{path.name} holds only weights: pass --arch NAME (one of {', '.join(zoo.architecture_names())})")
    if name not in zoo.architecture_names():
        close = difflib.get_close_matches(name, zoo.architecture_names(), n=3, cutoff=0.7)
        hint = f"did you mean {_or_list(close)}? " if close else ""
        raise UserError(f"unknown architecture '{name}': {hint}use one of {', '.join(zoo.architecture_names())}")
    return name


def claims(spec: ModelSpec) -> bool:
    return spec.kind == "name_or_file" and zoo.zoo_entry(spec.model) is not None


def open(spec: ModelSpec, *, trust: bool, imports: bool, device: torch.device) -> LoadedModel:  # noqa: A001
    name = spec.model
    if spec.arch is not None and spec.arch != name:
        raise UserError(f"--arch applies to model files only; '{name}' is a zoo model "
                        f"(to load a file into it, pass --weights FILE)")
    return _load_zoo(zoo.zoo_entry(name), spec, trust, device)


def leaves() -> tuple[type, ...]:
    """The papers' architectures' own layers the tracer keeps whole (LeNet-5's S2/S4 and partial C3)."""
    from workbench.models.architectures import CUSTOM_LEAVES

    return tuple(CUSTOM_LEAVES)
