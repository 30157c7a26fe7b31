"""Opening a model: a zoo name or a file, always without running code from a file unasked.

Files: ``.safetensors`` (+ ``--arch`` or an ``arch`` entry in its metadata), a ``.pt``/``.pth``
state_dict + architecture (``torch.load(weights_only=True)``), and — only with ``trust=True`` —
TorchScript and a full pickled ``nn.Module``: both are code (``torch.jit.load`` runs TorchScript
methods such as ``__setstate__`` while loading), so without trust they are refused before a byte
of them is deserialised (:class:`NeedsTrust`). A sidecar ``<stem>.json`` beside the file gives the
input size, normalization and class names; otherwise the architecture's defaults are used.

torchvision's own cached-weights loader unpickles with ``weights_only=False`` and trusts any
file already in the cache, so it is never called: the cached file is found and checked here.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import pickle
import re
import threading
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from workbench.errors import UserError
from workbench.models import zoo
from workbench.models.graph import InputMismatch, LayerInfo, first_line, layer_table
from workbench.models.truncate import truncate as _truncate

STATE_DICT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")

#: Sidecar limits: channels, height/width, the size of the file itself.
MAX_CHANNELS, MAX_SIDE, MAX_SIDECAR_BYTES = 64, 4096, 4 << 20


class NeedsTrust(UserError):
    """The file is code (a full pickle or TorchScript): it loads only with ``trust=True``."""

    def __init__(self, what: str, kind: str) -> None:
        super().__init__(f"{what} is {'a TorchScript archive' if kind == 'TorchScript' else 'a full pickle'}, "
                         f"which runs code from the file when loaded: pass --trust only if you trust the file")
        self.kind = kind


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
    #: where ``input_size`` came from: a sidecar's file name, "assumed", or None (the architecture's own)
    input_from: str | None = None
    _layers: list[LayerInfo] | None = field(default=None, repr=False, compare=False)
    _truncations: dict[str, nn.Module] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def layers(self) -> list[LayerInfo]:
        """Every addressable layer in network order (traced once; thread-safe)."""
        layers = self._layers
        if layers is None:
            with self._lock:
                if self._layers is None:
                    self._layers = self._layer_table()
                layers = self._layers
        return layers

    def _layer_table(self) -> list[LayerInfo]:
        if isinstance(self.module, torch.jit.ScriptModule):
            raise UserError(f"{Path(self.name).name} is TorchScript: its layers cannot be listed or truncated; "
                            f"pass --arch NAME to load its weights into a known architecture")
        try:
            return layer_table(self.module, self.input_size, aliases=self.aliases, device=self.device)
        except UserError:
            raise
        except InputMismatch as exc:
            raise UserError(_misfit(self.name, self.input_size, self.input_from, str(exc))) from None
        except Exception as exc:
            raise UserError(f"cannot list the layers of {self.name}: torch.fx cannot trace it "
                            f"({type(exc).__name__}: {_first_line(exc)}); load the weights into a known "
                            f"architecture with --arch instead") from None

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
        """Φ_ℓ mapping a normalized batch (N, C, H, W) to layer ``name``'s output; frozen, eval.

        Built once per layer and shared: the model's lock is held only while it is traced, never
        while it runs, so any number of threads may run forward passes through it at once."""
        key = self.layer(name).name
        phi = self._truncations.get(key)
        if phi is None:
            with self._lock:
                phi = self._truncations.get(key)
                if phi is None:
                    phi = self._truncations[key] = _truncate(self.module, key)
        return phi

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_truncations"] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def facts(self) -> dict[str, Any]:
        """What run.json records of the model: whether it is trained and where its weights came from."""
        return {"name": self.name, "trained": bool(self.trained), "source": self.source, "notice": self.notice}

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
    return first_line(exc, 200)


def _misfit(name: str, input_size: tuple[int, ...], origin: str | None, reason: str) -> str:
    size = "x".join(map(str, input_size))
    if origin == "assumed":
        return (f"{name}: the assumed input size {size} does not fit the network ({reason}): "
                f"give input_size [C, H, W] in a sidecar {Path(name).with_suffix('.json').name}")
    if origin:
        return f"{name}: the input size {size} from {origin} does not fit the network ({reason}): fix input_size in the sidecar"
    return f"{name}: the input size {size} does not fit the network ({reason})"


def _freeze(module: nn.Module, device: torch.device) -> nn.Module:
    module = module.to(device).eval()
    for p in module.parameters():
        if p.is_leaf:
            p.requires_grad_(False)
        else:  # a trusted TorchScript file may hand over computed tensors
            p.detach_()
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
        if not trust:
            raise NeedsTrust(str(path), "TorchScript")
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
            module = zoo.build_architecture(arch)
            _load_state(module, state, path, arch)
            kind = "state_dict"
    input_size, mean, std, class_names, guessed, origin = _io_spec(path, module, arch, sidecar)
    if guessed:
        notices.append(guessed)
    entry = zoo.zoo_entry(arch) if arch else None
    meta = dict(sidecar or {})
    module = _freeze(module, device)
    if origin is not None:
        _check_fits(module, str(path), input_size, origin, device)
    return LoadedModel(str(path), module, input_size, mean, std, class_names, True,
                       f"{path} ({kind}{', arch ' + arch if arch else ''})", " ".join(notices) or None,
                       meta.get("dataset"), meta, device, entry.aliases if entry else None, origin)


def _check_fits(module: nn.Module, name: str, input_size: tuple[int, int, int], origin: str,
                device: torch.device) -> None:
    """One forward pass on zeros at ``input_size``: a size from a sidecar or a guess must fit."""
    try:
        with torch.no_grad():
            module(torch.zeros(1, *input_size, device=device))
    except (RuntimeError, ValueError, IndexError) as exc:
        raise UserError(_misfit(name, input_size, origin, first_line(exc))) from None


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
    """Whether ``path`` is a TorchScript archive, from the zip's directory alone (nothing in it is read).

    Either reader counting it as TorchScript is enough: Python's zipfile (a ``code/`` folder or
    ``constants.pkl``) or torch's own (the test ``torch.load`` uses to hand a file to ``torch.jit.load``)."""
    names: list[str] = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        pass
    if any(n.endswith("constants.pkl") or n.startswith("code/") or "/code/" in n for n in names):
        return True
    try:
        return "constants.pkl" in torch._C.PyTorchFileReader(str(path)).get_all_records()
    except Exception:
        return False


def _torch_load_weights(path: Path, *, trust: bool, what: str) -> Any:
    """``torch.load(weights_only=True)``; a full pickle needs ``trust`` (it runs code from the file)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="'torch.load' received a zip file that looks like a TorchScript")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except RuntimeError as exc:
        if "TorchScript" in str(exc):  # torch refuses TorchScript under weights_only before reading it
            if trust:
                raise UserError(f"{what} is a TorchScript archive, not a state_dict: open it as a model file") from None
            raise NeedsTrust(what, "TorchScript") from None
        raise UserError(f"{what} is not a readable PyTorch file ({_first_line(exc)}): it may be truncated or corrupt") from None
    except pickle.UnpicklingError as exc:
        if "global" not in str(exc).lower():  # not a disallowed class/function: a damaged file
            raise UserError(f"{what} is not a readable PyTorch file ({_first_line(exc)}): it may be truncated or corrupt") from None
        if not trust:
            raise NeedsTrust(what, "pickle") from None
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

    def no_constant(name: str):
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        if side.stat().st_size > MAX_SIDECAR_BYTES:
            raise UserError(f"{side.name} beside the model is larger than {MAX_SIDECAR_BYTES >> 20} MB: "
                            f"it is not a model sidecar; fix or remove it")
        data = json.loads(side.read_text(), parse_constant=no_constant)
    except (ValueError, UnicodeDecodeError, OSError, RecursionError) as exc:
        raise UserError(f"{side.name} beside the model is not valid JSON ({_first_line(exc)}): fix or remove it") from None
    if not isinstance(data, dict):
        raise UserError(f"{side.name} beside the model must hold a JSON object")
    for key, kind in (("architecture", str), ("dataset", str)):
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise UserError(f"{side.name}: {key} must be a string, not {json.dumps(data[key])[:40]}")
    return data


def _numbers(side: str, key: str, value: Any, count: int | None = None) -> list[float]:
    """A JSON list of finite numbers (bools are not numbers), ``count`` long if given."""
    ok = (isinstance(value, list) and (count is None or len(value) == count)
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
    if not ok:
        want = f"{count} finite numbers" if count else "a list of finite numbers"
        raise UserError(f"{side}: {key} must be {want}, not {json.dumps(value)[:60]}")
    return [float(v) for v in value]


def _sidecar_input_size(side: str, value: Any) -> tuple[int, int, int]:
    sizes = _numbers(side, "input_size", value, 3)
    if any(v != int(v) for v in sizes):
        raise UserError(f"{side}: input_size must be whole numbers [C, H, W], not {json.dumps(value)[:60]}")
    c, h, w = (int(v) for v in sizes)
    if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise UserError(f"{side}: input_size {c}x{h}x{w} is out of range: "
                        f"C from 1 to {MAX_CHANNELS}, H and W from 1 to {MAX_SIDE}")
    return c, h, w


def _io_spec(path: Path, module: nn.Module, arch: str | None, sidecar: dict | None):
    """Input size, mean, std, class names, a notice if they had to be guessed, and where the input
    size came from (the sidecar's name, "assumed", or None for the architecture's own)."""
    from workbench.data.digits import DIGITS_MEAN, DIGITS_STD

    entry = zoo.zoo_entry(arch) if arch else None
    guessed = origin = None
    if entry is not None:
        input_size, mean, std = entry.input_size, entry.mean, entry.std
        class_names = zoo.class_names_for(arch)
    else:
        first = next((p for p in module.parameters() if p.dim() == 4), None)  # the first conv's weight
        grey = first is not None and first.shape[1] == 1
        input_size = (1, 32, 32) if grey else (3, 224, 224)
        mean, std = (tuple(DIGITS_MEAN), tuple(DIGITS_STD)) if grey else (zoo.IMAGENET_MEAN, zoo.IMAGENET_STD)
        class_names = None
        origin = "assumed"
        guessed = (f"{path.name}: no sidecar {path.with_suffix('.json').name} and no --arch, so the input is assumed to be "
                   f"{'x'.join(map(str, input_size))} with {'digits' if grey else 'ImageNet'} normalization.")
    if sidecar:
        side = path.with_suffix(".json").name
        if "input_size" in sidecar:
            input_size = _sidecar_input_size(side, sidecar["input_size"])
            origin = side
        c = input_size[0]
        if "mean" in sidecar:
            mean = tuple(_numbers(side, "mean", sidecar["mean"]))
        if "std" in sidecar:
            std = tuple(_numbers(side, "std", sidecar["std"]))
        if len(mean) != c or len(std) != c or any(not 1e-6 <= s <= 1e6 for s in std) or any(abs(m) > 1e6 for m in mean):
            raise UserError(f"{side}: mean and std need one value per input channel ({c}), "
                            f"1e-6 <= std <= 1e6 and |mean| <= 1e6")
        if "class_names" in sidecar:
            names = sidecar["class_names"]
            if names is not None and not (isinstance(names, list)
                                          and all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names)):
                raise UserError(f"{side}: class_names must be a list of strings (or null), not {json.dumps(names)[:60]}")
            class_names = None if names is None else [str(n) for n in names]
        if {"input_size", "mean", "std"} <= set(sidecar) or entry is not None:
            guessed = None
    return input_size, tuple(mean), tuple(std), class_names, guessed, origin
