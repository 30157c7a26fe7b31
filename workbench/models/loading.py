"""Opening a model: a zoo name or a file, always without running code from a file unasked.

Files: ``.safetensors`` (+ ``--arch`` or an ``arch`` entry in its metadata), a ``.pt``/``.pth``
state_dict + architecture (``torch.load(weights_only=True)``), TorchScript, and a full pickled
``nn.Module`` only with ``trust=True``. A sidecar ``<stem>.json`` beside the file gives the input
size, normalization and class names; otherwise the architecture's defaults are used.

torchvision's own cached-weights loader unpickles with ``weights_only=False`` and trusts any
file already in the cache, so it is never called: the cached file is found and checked here.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from workbench.errors import UserError
from workbench.models import zoo
from workbench.models.graph import LayerInfo, layer_table
from workbench.models.truncate import truncate as _truncate

STATE_DICT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")


@dataclass
class LoadedModel:
    name: str
    module: nn.Module
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str] | None
    trained: bool
    source: str
    notice: str | None
    dataset: str | None
    metadata: dict
    device: torch.device
    aliases: str | None = None
    _layers: list[LayerInfo] | None = field(default=None, repr=False, compare=False)

    def layers(self) -> list[LayerInfo]:
        """Every addressable layer in network order (cached)."""
        if self._layers is None:
            try:
                self._layers = layer_table(self.module, self.input_size, aliases=self.aliases, device=self.device)
            except UserError:
                raise
            except Exception as exc:
                raise UserError(f"cannot list the layers of {self.name}: torch.fx cannot trace it "
                                f"({type(exc).__name__}: {_first_line(exc)}); load the weights into a known "
                                f"architecture with --arch instead") from None
        return self._layers

    def layer(self, name: str) -> LayerInfo:
        """A layer by FX name or paper alias; an unknown name is a :class:`UserError` with close matches."""
        layers = self.layers()
        for info in layers:
            if info.name == name or info.alias == name:
                return info
        candidates = [info.name for info in layers] + [info.alias for info in layers if info.alias]
        close = difflib.get_close_matches(str(name), candidates, n=3, cutoff=0.6)
        hint = f"did you mean {_or_list(close)}? " if close else ""
        raise UserError(f"unknown layer '{name}' in {self.name}: {hint}(see `workbench layers --model {self.name}`)")

    def truncate(self, name: str) -> nn.Module:
        """Φ_ℓ mapping a normalized batch (N, C, H, W) to layer ``name``'s output; frozen, eval."""
        return _truncate(self.module, self.layer(name).name)

    def to(self, device: str | torch.device) -> "LoadedModel":
        device = torch.device(device)
        self.module.to(device)
        self.device = device
        return self

    @property
    def has_classifier(self) -> bool:
        return self.class_names is not None


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" or {items[-1]}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _freeze(module: nn.Module, device: torch.device) -> nn.Module:
    module = module.to(device).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def load_model(spec: str, *, arch: str | None = None, trust: bool = False,
               device: str | torch.device = "cpu") -> LoadedModel:
    """A zoo name (``workbench zoo list``) or a model file; see the module docstring."""
    from workbench.device import resolve_device

    device = resolve_device(device)
    spec = str(spec)
    entry = zoo.zoo_entry(spec)
    if entry is not None:
        if arch is not None and arch != spec:
            raise UserError(f"--arch applies to model files only; '{spec}' is a zoo model")
        return _load_zoo(entry, device)
    path = Path(spec).expanduser()
    if not path.exists():
        if path.suffix or "/" in spec or "\\" in spec:
            raise UserError(f"model file {path} does not exist: check the path")
        close = difflib.get_close_matches(spec, [e.name for e in zoo.zoo_entries()], n=3, cutoff=0.7)
        hint = f"did you mean {_or_list(close)}? " if close else ""
        raise UserError(f"unknown model '{spec}': {hint}use a zoo name (see `workbench zoo list`) or a model file path")
    if path.is_dir():
        raise UserError(f"{path} is a folder: give a model file (.safetensors, .pt, .pth or TorchScript)")
    return _load_file(path, arch, trust, device)


# --- the zoo -------------------------------------------------------------------------------

def _load_zoo(entry: zoo.ZooEntry, device: torch.device) -> LoadedModel:
    module = zoo.build_architecture(entry.name)
    meta: dict[str, Any] = {}
    if entry.kind == "torchvision":
        trained, source, notice, meta = _load_torchvision_cache(entry.name, module)
        dataset = "imagenet" if trained else None
    else:
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
    return LoadedModel(entry.name, _freeze(module, device), entry.input_size, entry.mean, entry.std,
                       zoo.class_names_for(entry.name), trained, source, notice, dataset, meta, device, entry.aliases)


_HASH = re.compile(r"-([a-f0-9]+)\.")


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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- files ---------------------------------------------------------------------------------

def _load_file(path: Path, arch: str | None, trust: bool, device: torch.device) -> LoadedModel:
    sidecar = _read_sidecar(path)
    if path.suffix == ".onnx":
        raise UserError(f"{path.name}: ONNX files are not supported; export a TorchScript or safetensors file instead")
    if path.suffix == ".json":
        raise UserError(f"{path.name} is metadata, not weights: give the .safetensors or .pt file beside it")
    notices: list[str] = []
    if path.suffix == ".safetensors":
        tensors, file_meta = _read_safetensors(path)
        arch = _architecture(path, arch, file_meta.get("arch") or (sidecar or {}).get("architecture"))
        module = zoo.build_architecture(arch)
        _load_state(module, tensors, path, arch)
        kind = "safetensors"
    elif _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                scripted = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise UserError(f"{path.name} is not a readable TorchScript file ({_first_line(exc)})") from None
        arch = arch or (sidecar or {}).get("architecture")
        if arch:
            module = zoo.build_architecture(_architecture(path, arch, None))
            _load_state(module, scripted.state_dict(), path, arch)
        else:
            module = scripted
            notices.append(f"{path.name} is TorchScript without --arch: it runs as a whole, but its layers cannot "
                           f"be listed or truncated; pass --arch NAME to load its weights into a known architecture.")
        kind = "TorchScript"
    else:
        obj = _torch_load_weights(path, trust=trust, what=str(path))
        if isinstance(obj, nn.Module):
            module = obj
            kind = "pickled module (trusted)"
            arch = arch or (sidecar or {}).get("architecture")
        else:
            state = _unwrap_state_dict(obj, path)
            arch = _architecture(path, arch, (sidecar or {}).get("architecture"))
            module = zoo.build_architecture(arch)
            _load_state(module, state, path, arch)
            kind = "state_dict"
    input_size, mean, std, class_names, guessed = _io_spec(path, module, arch, sidecar)
    if guessed:
        notices.append(guessed)
    entry = zoo.zoo_entry(arch) if arch else None
    meta = dict(sidecar or {})
    return LoadedModel(str(path), _freeze(module, device), input_size, mean, std, class_names, True,
                       f"{path} ({kind}{', arch ' + arch if arch else ''})", " ".join(notices) or None,
                       meta.get("dataset"), meta, device, entry.aliases if entry else None)


def _architecture(path: Path, arch: str | None, stored: str | None) -> str:
    name = arch or stored
    if not name:
        raise UserError(f"{path.name} holds only weights: pass --arch NAME (one of {', '.join(zoo.architecture_names())})")
    if name not in zoo.architecture_names():
        close = difflib.get_close_matches(name, zoo.architecture_names(), n=3, cutoff=0.7)
        hint = f"did you mean {_or_list(close)}? " if close else ""
        raise UserError(f"unknown architecture '{name}': {hint}use one of {', '.join(zoo.architecture_names())}")
    return name


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise UserError(f"{path.name} is not a readable safetensors file ({_first_line(exc)}): "
                        f"it may be truncated or corrupt") from None
    return tensors, meta


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _torch_load_weights(path: Path, *, trust: bool, what: str) -> Any:
    """``torch.load(weights_only=True)``; a full pickle needs ``trust`` (it runs code from the file)."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # not a disallowed class/function: a damaged file
            raise UserError(f"{what} is not a readable PyTorch file ({_first_line(exc)}): it may be truncated or corrupt") from None
        if not trust:
            raise UserError(f"{what} is a full pickle, which runs code from the file when loaded: "
                            f"pass --trust only if you trust the file") from None
    except Exception as exc:
        raise UserError(f"{what} is not a readable PyTorch file ({_first_line(exc)}): it may be truncated or corrupt") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise UserError(f"{what} could not be unpickled ({type(exc).__name__}: {_first_line(exc)})") from None


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise UserError(f"{path.name} holds a {type(obj).__name__}, not a state_dict of tensors: "
                    f"save it with torch.save(model.state_dict(), ...)")


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    """Strict load with a one-line account of what does not fit."""
    expected = module.state_dict()
    state = {k[len("module."):] if k.startswith("module.") and k not in expected else k: v for k, v in state.items()}
    for key in expected:  # files saved before BatchNorm counted batches lack these
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = expected[key]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''})")
        if wrong:
            parts.append(f"{len(wrong)} of the wrong shape ({', '.join(wrong[:2])}{' ...' if len(wrong) > 2 else ''})")
        raise UserError(f"{path.name} does not fit architecture '{arch}': " + "; ".join(parts)
                        + " keys; check --arch")
    try:
        module.load_state_dict(state, strict=True)
    except Exception as exc:
        raise UserError(f"{path.name} does not fit architecture '{arch}' ({_first_line(exc)})") from None


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    side = path.with_suffix(".json")
    if side == path or not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise UserError(f"{side.name} beside the model is not valid JSON ({_first_line(exc)}): fix or remove it") from None
    if not isinstance(data, dict):
        raise UserError(f"{side.name} beside the model must hold a JSON object")
    return data


def _io_spec(path: Path, module: nn.Module, arch: str | None, sidecar: dict | None):
    """Input size, mean, std, class names, and a notice if they had to be guessed."""
    from workbench.data.digits import DIGITS_MEAN, DIGITS_STD

    entry = zoo.zoo_entry(arch) if arch else None
    guessed = None
    if entry is not None:
        input_size, mean, std = entry.input_size, entry.mean, entry.std
        class_names = zoo.class_names_for(arch)
    else:
        first = next((p for p in module.parameters() if p.dim() == 4), None)  # the first conv's weight
        grey = first is not None and first.shape[1] == 1
        input_size = (1, 32, 32) if grey else (3, 224, 224)
        mean, std = (tuple(DIGITS_MEAN), tuple(DIGITS_STD)) if grey else (zoo.IMAGENET_MEAN, zoo.IMAGENET_STD)
        class_names = None
        guessed = (f"{path.name}: no sidecar {path.with_suffix('.json').name} and no --arch, so the input is assumed to be "
                   f"{'x'.join(map(str, input_size))} with {'digits' if grey else 'ImageNet'} normalization.")
    if sidecar:
        try:
            if "input_size" in sidecar:
                input_size = tuple(int(v) for v in sidecar["input_size"])
                if len(input_size) != 3 or min(input_size) < 1:
                    raise ValueError("input_size must be [C, H, W]")
            if "mean" in sidecar:
                mean = tuple(float(v) for v in sidecar["mean"])
            if "std" in sidecar:
                std = tuple(float(v) for v in sidecar["std"])
            if "class_names" in sidecar:
                class_names = None if sidecar["class_names"] is None else [str(c) for c in sidecar["class_names"]]
        except (TypeError, ValueError) as exc:
            raise UserError(f"{path.with_suffix('.json').name}: bad input_size/mean/std/class_names ({exc})") from None
        if len(mean) != input_size[0] or len(std) != input_size[0] or any(s <= 0 for s in std):
            raise UserError(f"{path.with_suffix('.json').name}: mean and std need one value per input channel "
                            f"({input_size[0]}), std > 0")
        guessed = None if {"input_size", "mean", "std"} <= set(sidecar) or entry is not None else guessed
    return input_size, tuple(mean), tuple(std), class_names, guessed
