"""The file source: ``.safetensors`` (+ ``--arch`` or an ``arch`` entry in its metadata), a
``.pt``/``.pth`` state_dict + architecture, and — only with trust — TorchScript and a full pickled
``nn.Module``. A state_dict whose classifier head differs from its architecture's (a resnet18
fine-tuned to 10 classes) rebuilds the architecture with that many classes; its class names are
then unknown unless given. Any other mismatch is refused in one line. ``.onnx`` files go to
:mod:`workbench.models.sources.onnx`."""

from __future__ import annotations

import difflib
from pathlib import Path

import torch
import torch.nn as nn

from workbench.config.model import ModelSpec
from workbench.errors import UserError
from workbench.models import zoo
from workbench.models.sources.describe import _describe_input, _finish, _read_sidecar
from workbench.models.sources.loaded import LoadedModel, NeedsTrust, _or_list
from workbench.models.sources.onnx import _load_onnx
from workbench.models.sources.weights import (
    _is_torchscript, _jit_load, _load_state, _read_safetensors, _torch_load_weights, _unwrap_state_dict, regular_file)
from workbench.models.sources.zoo import _architecture, _build_fitting


def _load_file(path: Path, spec: ModelSpec, trust: bool, device: torch.device) -> LoadedModel:
    arch = spec.arch
    if path.suffix.lower() == ".json":
        raise UserError(f"{path.name} is metadata, not weights: give the .safetensors or .pt file beside it")
    sidecar = _read_sidecar(path)
    side = path.with_suffix(".json").name
    if path.suffix.lower() == ".onnx":
        return _load_onnx(path, spec, sidecar, device)
    notices: list[str] = []
    classes = None
    if path.suffix.lower() == ".safetensors":
        tensors, file_meta = _read_safetensors(path)
        arch = _architecture(path, arch, file_meta.get("arch") or (sidecar or {}).get("architecture"))
        module, classes = _build_fitting(arch, tensors)
        _load_state(module, tensors, path, arch)
        kind = "safetensors"
    elif _is_torchscript(path):
        if not trust:
            raise NeedsTrust(str(path), "TorchScript")
        scripted = _jit_load(path)
        arch = arch or (sidecar or {}).get("architecture")
        if arch:
            arch = _architecture(path, arch, None)
            state = scripted.state_dict()
            module, classes = _build_fitting(arch, state)
            _load_state(module, state, path, arch)
        else:
            module = scripted
            notices.append(f"{path.name} is TorchScript without --arch: its layers are listed where its graph is a "
                           f"chain of modules; else pass --arch NAME to load its weights into a known architecture.")
        kind = "TorchScript (trusted)"
    else:
        obj = _torch_load_weights(path, trust=trust, what=str(path))
        if isinstance(obj, nn.Module):
            module = obj
            kind = "pickled module (trusted)"
            arch = arch or (sidecar or {}).get("architecture")
        else:
            state = _unwrap_state_dict(obj, path)
            arch = _architecture(path, arch, (sidecar or {}).get("architecture"))
            module, classes = _build_fitting(arch, state)
            _load_state(module, state, path, arch)
            kind = "state_dict"
    entry = zoo.zoo_entry(arch) if arch else None
    known = None
    if entry is not None:
        known = (entry.input_size, entry.mean, entry.std, zoo.class_names_for(arch) if classes is None else None)
    io = _describe_input(str(path), spec, module, known=known, sidecar=sidecar, side=side)
    meta = dict(sidecar or {})
    detail = f", arch {arch}" if arch else ""
    if classes is not None:
        detail += f", {classes} classes"
    return _finish(str(path), spec, module, io, trained=True, source=f"{path} ({kind}{detail})", notices=notices,
                   dataset=meta.get("dataset"), meta=meta, device=device, aliases=entry.aliases if entry else None)


def claims(spec: ModelSpec) -> bool:
    return spec.kind == "name_or_file"


def open(spec: ModelSpec, *, trust: bool, imports: bool, device: torch.device) -> LoadedModel:  # noqa: A001
    name = spec.model
    path = Path(name).expanduser()
    if not path.exists():
        if path.suffix or "/" in name or "\\" in name:
            raise UserError(f"model file {path} does not exist: check the path")
        close = difflib.get_close_matches(name, [e.name for e in zoo.zoo_entries()], n=3, cutoff=0.7)
        hint = f"did you mean {_or_list(close)}? " if close else ""
        raise UserError(f"unknown model '{name}': {hint}use a zoo name (see `workbench zoo list`), a model file path, "
                        f"package.module:callable or timm:NAME")
    if path.is_dir():
        raise UserError(f"{path} is a folder: give a model file (.safetensors, .pt, .pth, .onnx or TorchScript)")
    regular_file(path, "model file")
    if spec.weights is not None:
        raise UserError(f"--weights applies to a zoo architecture, a package.module:callable or timm:NAME; "
                        f"{path.name} is a model file itself: pass --model ARCH --weights {path.name}, or --arch ARCH")
    return _load_file(path, spec, trust, device)
