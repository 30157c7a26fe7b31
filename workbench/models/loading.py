"""Opening a model from a :class:`~workbench.config.model.ModelSpec`, never running code from a file unasked.

``load_model(spec)`` takes a spec (or the ``model`` string alone) whose ``model`` is

- a zoo name (``workbench zoo list``); ``weights`` loads a fine-tuned state_dict into it;
- a file: ``.safetensors`` (+ ``--arch`` or an ``arch`` entry in its metadata), a ``.pt``/``.pth``
  state_dict + architecture (``torch.load(weights_only=True)``), an ``.onnx`` graph (converted by
  onnx2torch: :func:`workbench.models.external.read_onnx`) and — only with ``trust=True`` —
  TorchScript and a full pickled ``nn.Module``: both are code (``torch.jit.load`` runs TorchScript
  methods such as ``__setstate__`` while loading), so without trust they are refused before a byte
  of them is deserialised (:class:`NeedsTrust`);
- ``package.module:callable``: imported with the current directory importable (as with
  ``python -m``; ``sys.path`` is put back afterwards), called with ``model_kwargs``, under the zoo's
  init seed; ``weights`` then loads into what it built. ``imports=False`` refuses it unless
  ``trust`` (a run folder naming a callable must not import it unasked);
- ``timm:NAME``: :func:`workbench.models.external.timm_model`, ``weights`` optional.

A state_dict whose classifier head differs from its architecture's (a resnet18 fine-tuned to 10
classes) rebuilds the architecture with that many classes; its class names are then unknown
unless given. Any other mismatch is refused in one line.

The input (size, mean, std on the [0, 1] scale, class names) comes from, lowest first: the
architecture's defaults (or a guess from the first convolution, with a notice), the ONNX graph's
static input shape, a sidecar ``<stem>.json`` beside the model or weights file, and the spec's own ``input_size``/``mean``/``std``/``class_names``. A size that is not the architecture's
own is tried with one forward pass before the model is handed out.

:func:`from_module` wraps an ``nn.Module`` the caller already has (the Python API).

torchvision's own cached-weights loader unpickles with ``weights_only=False`` and trusts any
file already in the cache, so it is never called: the cached file is found and checked here.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
import math
import operator
import os
import pickle
import re
import sys
import threading
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from workbench.config import to_dict
from workbench.config.model import ModelSpec, is_callable_spec
from workbench.errors import UserError, one_line
from workbench.models import zoo
from workbench.models.graph import InputMismatch, LayerInfo, first_line, layer_table
from workbench.models.truncate import truncate as _truncate

STATE_DICT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")

#: Sidecar limits: channels, height/width, the size of the file itself (and of a class-names file).
MAX_CHANNELS, MAX_SIDE, MAX_SIDECAR_BYTES = 64, 4096, 4 << 20

#: How :func:`from_module` names a module that was given no name; such a spec cannot be reopened.
IN_MEMORY = "<in-memory "


class NeedsTrust(UserError):
    """The model is code (a full pickle, TorchScript, or a Python callable to import): it loads only
    with ``trust=True``. ``kind`` is ``"TorchScript"``, ``"pickle"`` or ``"callable"``."""

    def __init__(self, what: str, kind: str) -> None:
        if kind == "callable":
            message = (f"{what} names Python code (package.module:callable): importing it runs that code: "
                       f"pass --trust only if you trust it")
        else:
            message = (f"{what} is {'a TorchScript archive' if kind == 'TorchScript' else 'a full pickle'}, "
                       f"which runs code from the file when loaded: pass --trust only if you trust the file")
        super().__init__(message)
        self.kind = kind


#: ``LoadedModel.classes_from`` for names given by :func:`imagenet_rule`.
IMAGENET_RULE = "ImageNet-1k (a 1000-way head on an ImageNet-normalised net; torchvision's weights metadata)"


@dataclass(frozen=True)
class Prediction:
    """One class of a prediction: its index, its name and its softmax probability."""

    index: int
    name: str
    probability: float


def _first_tensor(out: Any) -> torch.Tensor | None:
    """The tensor a forward gives, or the first of a tuple, list or dict result."""
    while isinstance(out, (tuple, list)) and out:
        out = out[0]
    if isinstance(out, dict) and out:
        out = next(iter(out.values()))
    return out if isinstance(out, torch.Tensor) else None


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
    #: where ``input_size`` came from: a sidecar's file name, "assumed", "--input-size", "input_size"
    #: (from_module), "the ONNX graph", or None (the architecture's own)
    input_from: str | None = None
    #: what reopens the model (files made absolute); ``facts()`` records it in run.json
    spec: ModelSpec | None = None
    #: where ``class_names`` came from: "the zoo", a sidecar's or --class-names file's name,
    #: "class_names" (from_module), or IMAGENET_RULE (a 1000-way head on an ImageNet-normalised net)
    classes_from: str | None = None
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
        try:
            return layer_table(self.module, self.input_size, aliases=self.aliases, device=self.device)
        except UserError as exc:
            if isinstance(self.module, torch.jit.ScriptModule) and "architecture" not in str(exc):
                raise UserError(f"{Path(self.name).name}: {exc}; pass --arch NAME to load its weights into "
                                f"a known architecture") from None
            raise
        except InputMismatch as exc:
            raise UserError(_misfit(self.name, self.input_size, self.input_from, str(exc))) from None
        except Exception as exc:
            if isinstance(self.module, torch.jit.ScriptModule):
                raise UserError(f"{Path(self.name).name} is TorchScript: its layers cannot be listed or truncated "
                                f"({type(exc).__name__}: {_first_line(exc)}); pass --arch NAME to load its weights "
                                f"into a known architecture") from None
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
        """What run.json records of the model: whether it is trained, where its weights came from,
        and the spec that opens it again (``from_dict(ModelSpec, facts["spec"])``)."""
        spec = self.spec if self.spec is not None else ModelSpec(model=self.name)
        facts = {"name": self.name, "trained": bool(self.trained), "source": self.source, "notice": self.notice,
                 "spec": to_dict(spec)}
        if self.class_names is not None:
            facts["classes"] = {"count": len(self.class_names), "from": self.classes_from}
        return facts

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (N, C, H, W) in [0, 1] -> the network's input, (p − mean) / std."""
        mean = torch.tensor(self.mean, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
        return (pixels - mean) / std

    def predict(self, pixels: torch.Tensor, k: int = 5) -> list[list[Prediction]]:
        """The ``k`` most probable classes of each image of ``pixels`` (N, C, H, W) in [0, 1], most
        probable first: softmax over the forward's output. A :class:`UserError` if the model has no
        class names (a feature extractor)."""
        if self.class_names is None:
            raise UserError(f"{self.name} has no classes (a feature extractor): pass --class-names FILE if it classifies")
        with torch.no_grad():
            logits = _first_tensor(self.module(self.normalize(pixels.to(self.device))))
        if logits is None or logits.dim() != 2 or logits.shape[1] != len(self.class_names):
            raise UserError(f"{self.name}: its output is not one score per class ({len(self.class_names)} names)")
        p = logits.float().softmax(1)
        top = p.topk(min(int(k), p.shape[1]), dim=1)
        return [[Prediction(int(i), self.class_names[int(i)], float(v)) for v, i in zip(values, indices)]
                for values, indices in zip(top.values.cpu(), top.indices.cpu())]

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


def _is_file_name(name: str) -> bool:
    """Whether a model's name is a file (so a sidecar beside it can describe it)."""
    return not (is_callable_spec(name) or name.startswith("timm:") or name.startswith(IN_MEMORY)
                or zoo.zoo_entry(name) is not None)


def _misfit(name: str, input_size: tuple[int, ...], origin: str | None, reason: str) -> str:
    size = "x".join(map(str, input_size))
    if origin == "assumed":
        if _is_file_name(name):
            return (f"{name}: the assumed input size {size} does not fit the network ({reason}): "
                    f"give input_size [C, H, W] in a sidecar {Path(name).with_suffix('.json').name} or pass --input-size CxHxW")
        return f"{name}: the assumed input size {size} does not fit the network ({reason}): pass --input-size CxHxW"
    if origin == "--input-size":
        return f"{name}: the input size {size} from --input-size does not fit the network ({reason}): pass one it accepts"
    if origin == "input_size":
        return f"{name}: input_size {size} does not fit the module ({reason}): pass an input_size=(C, H, W) it accepts"
    if origin == "the ONNX graph":
        return f"{name}: the input size {size} from the ONNX graph does not fit the converted network ({reason}): pass --input-size CxHxW"
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


def load_model(spec: str | ModelSpec, *, arch: str | None = None, trust: bool = False,
               device: str | torch.device = "cpu", imports: bool = True) -> LoadedModel:
    """The model a spec names (see the module docstring); a string is ``ModelSpec(model=spec, arch=arch)``.

    ``trust`` allows files that are code (TorchScript, full pickles) and callables when
    ``imports`` is False; ``imports=False`` is for a spec read from a run folder, which must not
    import Python code the user has not confirmed now."""
    from workbench.device import resolve_device

    device = resolve_device(device)
    spec = _as_spec(spec, arch)
    spec.validate()
    kind = spec.kind
    if kind == "callable":
        return _load_callable(spec, trust, imports, device)
    if kind == "timm":
        return _load_timm(spec, trust, device)
    name = spec.model
    if name.startswith(IN_MEMORY):
        raise UserError(f"{name} was a module handed to from_module(): a run cannot reopen it by name; "
                        f"pass the module to from_module() again")
    entry = zoo.zoo_entry(name)
    if entry is not None:
        if spec.arch is not None and spec.arch != name:
            raise UserError(f"--arch applies to model files only; '{name}' is a zoo model "
                            f"(to load a file into it, pass --weights FILE)")
        return _load_zoo(entry, spec, trust, device)
    from workbench import representations  # hog, hogb, dsift (@CELL): docs/representations.md

    if representations.is_representation(name):
        return representations.load_spec(spec, device=device)
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
    if spec.weights is not None:
        raise UserError(f"--weights applies to a zoo architecture, a package.module:callable or timm:NAME; "
                        f"{path.name} is a model file itself: pass --model ARCH --weights {path.name}, or --arch ARCH")
    return _load_file(path, spec, trust, device)


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


def _absolute(text: str | None) -> str | None:
    return None if text is None else os.path.abspath(os.path.expanduser(text))


def _recorded(spec: ModelSpec) -> ModelSpec:
    """The spec as a run folder records it: file paths made absolute, so it reopens from anywhere."""
    model = spec.model
    if spec.kind == "name_or_file" and zoo.zoo_entry(model) is None and not model.startswith(IN_MEMORY):
        model = _absolute(model)
    return replace(spec, model=model, weights=_absolute(spec.weights), class_names=_absolute(spec.class_names))


# --- the input description -----------------------------------------------------------------

@dataclass
class _Input:
    size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str] | None
    #: where ``size`` came from (LoadedModel.input_from)
    origin: str | None
    #: a notice naming what had to be assumed, or None
    notice: str | None
    #: the class-names file the user gave (its count is checked against the outputs)
    names_file: str | None = None
    #: where the class names came from (LoadedModel.classes_from)
    classes_from: str | None = None


def _describe_input(label: str, spec: ModelSpec, module: nn.Module, *,
                    known: tuple[tuple[int, int, int], tuple[float, ...], tuple[float, ...], list[str] | None] | None,
                    sidecar: dict | None = None, side: str | None = None,
                    graph_size: tuple[int, int, int] | None = None, guess_hint: str | None = None) -> _Input:
    """Input size, mean, std and class names: ``known`` (an architecture's own) or a guess, then the
    ONNX graph's static size, then the sidecar (file name ``side``), then the spec's overrides."""
    from workbench.data.digits import DIGITS_MEAN, DIGITS_STD

    given: set[str] = set()
    origin: str | None = None
    classes_from: str | None = None
    if known is not None:
        size, mean, std, class_names = known
        given = {"input_size", "mean", "std"}
        classes_from = "the architecture" if class_names is not None else None
    else:
        first = next((p for p in module.parameters() if p.dim() == 4), None)  # the first conv's weight
        grey = first is not None and first.shape[1] == 1
        size, origin = ((1, 32, 32) if grey else (3, 224, 224)), "assumed"
        mean, std = (tuple(DIGITS_MEAN), tuple(DIGITS_STD)) if grey else (zoo.IMAGENET_MEAN, zoo.IMAGENET_STD)
        class_names = None
    from_spec: set[str] = set()
    if graph_size is not None:
        size, origin = graph_size, "the ONNX graph"
        given.add("input_size")
    if sidecar:
        if "input_size" in sidecar:
            size = _sidecar_input_size(side, sidecar["input_size"])
            origin = side
            given.add("input_size")
        if "mean" in sidecar:
            mean = tuple(_numbers(side, "mean", sidecar["mean"]))
            given.add("mean")
        if "std" in sidecar:
            std = tuple(_numbers(side, "std", sidecar["std"]))
            given.add("std")
        if "class_names" in sidecar:
            names = sidecar["class_names"]
            if names is not None and not (isinstance(names, list)
                                          and all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names)):
                raise UserError(f"{side}: class_names must be a list of strings (or null), not {json.dumps(names)[:60]}")
            class_names = None if names is None else [str(n) for n in names]
            classes_from = side if names is not None else None
    if spec.input_size is not None:
        size, origin = tuple(spec.input_size), "--input-size"
        from_spec.add("input_size")
    if spec.mean is not None:
        mean = tuple(float(v) for v in spec.mean)
        from_spec.add("mean")
    if spec.std is not None:
        std = tuple(float(v) for v in spec.std)
        from_spec.add("std")
    names_file = None
    if spec.class_names is not None:
        class_names, names_file = _read_class_names(spec.class_names), spec.class_names
        classes_from = f"--class-names {Path(names_file).name}"
    given |= from_spec
    c = size[0]
    guess = {1: (tuple(DIGITS_MEAN), tuple(DIGITS_STD)), 3: (zoo.IMAGENET_MEAN, zoo.IMAGENET_STD)}.get(
        c, ((0.0,) * c, (1.0,) * c))
    if "mean" not in given and len(mean) != c:  # a guess for another channel count
        mean = guess[0]
    if "std" not in given and len(std) != c:
        std = guess[1]
    if len(mean) != c or len(std) != c:
        if from_spec:
            if "input_size" in from_spec:
                where = "--input-size"
            elif origin is not None and origin in (side, "the ONNX graph"):
                where = origin
            else:
                where = "the architecture" if known is not None else "a guess from its first convolution"
            raise UserError(f"{label}: --mean and --std need one value per input channel: the input has {c} channel(s) "
                            f"(from {where}) but mean has {len(mean)} and std {len(std)}")
        raise UserError(f"{side}: mean and std need one value per input channel ({c}), "
                        f"1e-6 <= std <= 1e6 and |mean| <= 1e6")
    if any(not 1e-6 <= s <= 1e6 for s in std) or any(abs(m) > 1e6 for m in mean):
        raise UserError(f"{side}: mean and std need one value per input channel ({c}), "
                        f"1e-6 <= std <= 1e6 and |mean| <= 1e6")
    notice = None
    missing = [f for f in ("input_size", "mean", "std") if f not in given]
    if missing:
        parts = []
        if "input_size" in missing:
            parts.append(f"the input size {'x'.join(map(str, size))}")
        norm = "digits" if mean == tuple(DIGITS_MEAN) else "ImageNet" if mean == zoo.IMAGENET_MEAN else None
        if "mean" in missing or "std" in missing:
            which = " and ".join(f for f in ("mean", "std") if f in missing)
            parts.append(f"{norm} {which}" if norm else which)
        if guess_hint:
            why = guess_hint
        elif sidecar:
            why = f"{side} gives no {' or '.join(missing)}"
        else:
            why = f"no sidecar {side} and no --arch" if side else "nothing describes its input"
        notice = (f"{label}: {why}, so {' and '.join(parts)} {'are' if len(parts) > 1 or ' and ' in parts[0] else 'is'} assumed; "
                  f"pass --input-size CxHxW, --mean and --std if that is wrong.")
    return _Input(size, tuple(mean), tuple(std), class_names, origin, notice, names_file,
                  classes_from if class_names is not None else None)


def _read_class_names(text: str) -> list[str]:
    """A class-names file: one name per line, or a JSON list of names."""
    path = Path(text).expanduser()
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise UserError(f"--class-names {path} {what}: give a text file with one class name per line, or a JSON list")
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise UserError(f"--class-names {path.name} is larger than {MAX_SIDECAR_BYTES >> 20} MB: it is not a list "
                            f"of class names; give a text file with one name per line, or a JSON list")
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"--class-names {path} cannot be read ({_first_line(exc)})") from None
    try:
        if b"\0" in data:
            raise UnicodeDecodeError("utf-8", data[:1], 0, 1, "NUL byte")
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"--class-names {path.name} is a binary file, not text: give a text file with one "
                        f"class name per line, or a JSON list") from None
    stripped = content.strip()
    if stripped.startswith("["):
        try:
            names = json.loads(stripped, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except (ValueError, RecursionError) as exc:
            raise UserError(f"--class-names {path.name} starts like a JSON list but is not valid JSON "
                            f"({_first_line(exc)}): fix it, or give one name per line") from None
        if not (isinstance(names, list) and all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names)):
            raise UserError(f"--class-names {path.name} must be a JSON list of strings, e.g. [\"cat\", \"dog\"]")
        names = [str(n) for n in names]
    else:
        names = [line.strip() for line in stripped.splitlines()]
        blank = next((i for i, n in enumerate(names) if not n), None)
        if blank is not None:
            raise UserError(f"--class-names {path.name}: line {blank + 1} is blank: give one class name per line")
    if not names:
        raise UserError(f"--class-names {path.name} holds no class names: give one name per line, or a JSON list")
    return names


def _check_fits(module: nn.Module, name: str, input_size: tuple[int, int, int], origin: str | None,
                device: torch.device, names: list[str] | None = None, names_file: str | None = None) -> None:
    """One forward pass on zeros at ``input_size``: a size from a sidecar, an option or a guess must
    fit, and a class-names file must name each output of a classifier."""
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, *input_size, device=device))
    except (RuntimeError, ValueError, IndexError) as exc:
        raise UserError(_misfit(name, input_size, origin, first_line(exc))) from None
    if names_file is None or names is None:
        return
    out = _first_tensor(out)
    if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[1] != len(names):
        raise UserError(f"--class-names {Path(names_file).name} has {len(names)} name(s) but {name} gives "
                        f"{out.shape[1]} outputs: give one name per output")


def _finish(label: str, spec: ModelSpec, module: nn.Module, io: _Input, *, trained: bool, source: str,
            notices: Sequence[str | None], dataset: str | None, meta: dict, device: torch.device,
            aliases: str | None) -> LoadedModel:
    """Freeze the module, try the input if it is not the architecture's own, and build the LoadedModel."""
    module = _freeze(module, device)
    if io.origin is not None or io.names_file is not None:
        _check_fits(module, label, io.size, io.origin, device, io.class_names, io.names_file)
    class_names, classes_from = io.class_names, io.classes_from
    if class_names is None:
        class_names = imagenet_rule(module, io.size, io.mean, io.std, device)
        classes_from = IMAGENET_RULE if class_names is not None else None
    notice = " ".join(n for n in (*notices, io.notice) if n) or None
    return LoadedModel(label, module, io.size, io.mean, io.std, class_names, trained, source, notice, dataset,
                       meta, device, aliases, io.origin, _recorded(spec), classes_from)


def imagenet_rule(module: nn.Module, input_size: tuple[int, ...], mean: Sequence[float], std: Sequence[float],
                  device: torch.device) -> list[str] | None:
    """The ImageNet-1k class names for a net that reads as an ImageNet classifier: ImageNet's mean
    and std on three channels, and a forward whose output is one row of 1000 scores. None otherwise
    (the forward pass is tried only when some Linear or Conv2d has 1000 outputs)."""
    if len(mean) != 3 or not (_close(mean, zoo.IMAGENET_MEAN) and _close(std, zoo.IMAGENET_STD)):
        return None
    heads = [m for m in module.modules() if (isinstance(m, nn.Linear) and m.out_features == 1000)
             or (isinstance(m, nn.Conv2d) and m.out_channels == 1000)]
    if not heads:
        return None
    try:
        with torch.no_grad():
            out = _first_tensor(module(torch.zeros(1, *input_size, device=device)))
    except Exception:  # noqa: BLE001 - the layer table reports a forward that fails; no names here
        return None
    if out is None or out.dim() != 2 or out.shape[1] != 1000:
        return None
    return zoo.imagenet_classes()


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(abs(float(x) - float(y)) < 1e-3 for x, y in zip(a, b))


# --- the zoo -------------------------------------------------------------------------------

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


# --- package.module:callable and timm:NAME -------------------------------------------------

def _load_callable(spec: ModelSpec, trust: bool, imports: bool, device: torch.device) -> LoadedModel:
    text = spec.model
    if not imports and not trust:
        raise NeedsTrust(text, "callable")
    if spec.arch is not None:
        raise UserError(f"--arch applies to model files; {text} builds its own module: drop --arch "
                        f"(pass --weights FILE to load weights into it)")
    factory = _import_callable(text)
    module = _call_factory(text, factory, spec.kwargs())
    sidecar = side = None
    meta: dict[str, Any] = {}
    if spec.weights is not None:
        path, state, kind = _read_weights(spec.weights, trust)
        _load_state(module, state, path, text, hint="check --weights and --model-kwargs")
        sidecar, side = _read_sidecar(path), path.with_suffix(".json").name
        meta = dict(sidecar or {})
        source = f"{path} ({kind} into callable {text})"
    else:
        source = f"callable {text} (its own initialisation)"
    io = _describe_input(text, spec, module, known=None, sidecar=sidecar, side=side,
                         guess_hint=None if sidecar else f"no sidecar {side} beside the weights" if side
                         else "nothing describes its input")
    # Without --weights the module is as the callable built it: it may have loaded trained weights
    # itself, and nothing here can tell; run.json says so in the source.
    return _finish(text, spec, module, io, trained=True, source=source, notices=[], dataset=meta.get("dataset"),
                   meta=meta, device=device, aliases=None)


def _import_callable(text: str) -> Any:
    """``package.module:attr`` imported with the current directory on ``sys.path`` (for the import only)."""
    import importlib

    module_name, _, attr_path = text.partition(":")
    saved = list(sys.path)
    try:
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)
        importlib.invalidate_caches()
        try:
            mod = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or module_name
            if module_name == missing or module_name.startswith(missing + "."):
                top = module_name.split(".")[0]
                raise UserError(f"cannot import {module_name} for {text} ({_first_line(exc)}): "
                                f"run from the folder that holds {top}, or install it") from None
            raise UserError(f"cannot import {module_name} for {text} ({_first_line(exc)}): "
                            f"install {missing.split('.')[0]}, which it imports") from None
        except ImportError as exc:
            raise UserError(f"cannot import {module_name} for {text} ({_first_line(exc)}): "
                            f"fix the module or its installation") from None
        except (Exception, SystemExit) as exc:
            raise UserError(f"importing {module_name} for {text} raised {type(exc).__name__}: {_first_line(exc)}; "
                            f"fix the module") from None
    finally:
        sys.path[:] = saved
    obj: Any = mod
    where = module_name
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3, cutoff=0.6)
            hint = f"did you mean {_or_list(close)}? " if close else ""
            raise UserError(f"{where} has no attribute '{part}' (for {text}): {hint}"
                            f"check the name after the colon") from None
        except Exception as exc:
            raise UserError(f"reading {part} of {where} for {text} raised {one_line(exc)}") from None
        where = f"{where}.{part}"
    return obj


def _call_factory(text: str, factory: Any, kwargs: dict[str, Any]) -> nn.Module:
    """The module a callable builds with ``kwargs``, under the zoo's init seed (global RNG left alone)."""
    shown = json.dumps(kwargs)[:80]
    if isinstance(factory, nn.Module):  # a module object defined at module level: used as it is
        if kwargs:
            raise UserError(f"{text} is an nn.Module object, not a class or factory: it takes no --model-kwargs ({shown})")
        return factory
    if not callable(factory):
        raise UserError(f"{text} is a {type(factory).__name__}, not a class or function: it must be an nn.Module "
                        f"class or a function that returns one")
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            raise UserError(f"{text} does not take --model-kwargs {shown} ({exc}); its parameters are "
                            f"({_parameters(signature)})") from None
    try:
        with zoo.seeded_init():
            module = factory(**kwargs)
    except TypeError as exc:
        raise UserError(f"calling {text} with --model-kwargs {shown} raised TypeError: {_first_line(exc)}; "
                        f"check --model-kwargs") from None
    except (Exception, SystemExit) as exc:
        raise UserError(f"calling {text} raised {type(exc).__name__}: {_first_line(exc)}") from None
    if not isinstance(module, nn.Module):
        raise UserError(f"{text} returned a {type(module).__name__}, not an nn.Module: it must be an nn.Module class "
                        f"or a function that returns one")
    return module


def _parameters(signature: inspect.Signature) -> str:
    """``num_classes=10, width=8, **kwargs``: names and defaults, without annotations."""
    parts = []
    for p in signature.parameters.values():
        prefix = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
        default = "" if p.default is p.empty else f"={p.default!r}"[:40]
        parts.append(f"{prefix}{p.name}{default}")
    return ", ".join(parts)


def _load_timm(spec: ModelSpec, trust: bool, device: torch.device) -> LoadedModel:
    from workbench.models.external import timm_model

    text, name, kwargs = spec.model, spec.model[len("timm:"):].strip(), spec.kwargs()
    if spec.arch is not None:
        raise UserError(f"--arch applies to model files; {text} is its own architecture: drop --arch")
    with zoo.seeded_init():
        module, trained, source, notice, input_size, mean, std = timm_model(name, kwargs)
    sidecar = side = None
    meta: dict[str, Any] = {}
    if spec.weights is not None:
        path, state, kind = _read_weights(spec.weights, trust)
        classes = _head_classes(module, state)
        if classes is not None and "num_classes" not in kwargs:
            with zoo.seeded_init():
                module = timm_model(name, {**kwargs, "num_classes": classes})[0]
        _load_state(module, state, path, text, hint="check --weights and --model-kwargs")
        sidecar, side = _read_sidecar(path), path.with_suffix(".json").name
        meta = dict(sidecar or {})
        trained, notice = True, None
        source = f"{path} ({kind} into {text}{f', {classes} classes' if classes is not None else ''})"
    io = _describe_input(text, spec, module, known=(tuple(input_size), tuple(mean), tuple(std), None),
                         sidecar=sidecar, side=side)
    return _finish(text, spec, module, io, trained=bool(trained), source=source, notices=[notice],
                   dataset=meta.get("dataset"), meta=meta, device=device, aliases=None)


# --- in-memory modules ---------------------------------------------------------------------

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
    except TypeError as exc:
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- files ---------------------------------------------------------------------------------

def _load_file(path: Path, spec: ModelSpec, trust: bool, device: torch.device) -> LoadedModel:
    arch = spec.arch
    if path.suffix == ".json":
        raise UserError(f"{path.name} is metadata, not weights: give the .safetensors or .pt file beside it")
    sidecar = _read_sidecar(path)
    side = path.with_suffix(".json").name
    if path.suffix.lower() == ".onnx":
        return _load_onnx(path, spec, sidecar, device)
    notices: list[str] = []
    classes = None
    if path.suffix == ".safetensors":
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


def _load_onnx(path: Path, spec: ModelSpec, sidecar: dict | None, device: torch.device) -> LoadedModel:
    from workbench.models.external import read_onnx

    if spec.arch is not None:
        raise UserError(f"--arch applies to weight files; {path.name} is an ONNX graph, its own architecture: drop --arch")
    module = read_onnx(path)
    static, shown = _onnx_input_shape(path)
    if static is None and spec.input_size is None and not (sidecar and "input_size" in sidecar):
        raise UserError(f"{path.name}: the ONNX graph's input shape {shown} is not fixed: "
                        f"pass --input-size CxHxW (e.g. 3x224x224)")
    side = path.with_suffix(".json").name
    io = _describe_input(str(path), spec, module, known=None, sidecar=sidecar, side=side, graph_size=static,
                         guess_hint=None if sidecar else f"no sidecar {side}")
    meta = dict(sidecar or {})
    return _finish(str(path), spec, module, io, trained=True, source=f"{path} (ONNX)", notices=[],
                   dataset=meta.get("dataset"), meta=meta, device=device, aliases=None)


def _onnx_input_shape(path: Path) -> tuple[tuple[int, int, int] | None, str]:
    """The graph input's (C, H, W) when fixed (the batch may be dynamic), else None; and the shape as text."""
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except ImportError:
        raise UserError(f"{path.name}: reading ONNX files needs the onnx package: pip install 'cnn-workbench[onnx]'") from None
    except Exception as exc:
        raise UserError(f"{path.name} is not a readable ONNX file ({_first_line(exc)})") from None
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UserError(f"{path.name}: the ONNX graph takes {len(inputs)} inputs "
                        f"({', '.join(i.name for i in inputs[:4]) or 'none'}); the workbench feeds it one image batch")
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in inputs[0].type.tensor_type.shape.dim]
    shown = "x".join(str(d) for d in dims) or "(unknown)"
    if len(dims) == 4 and all(isinstance(d, int) and d > 0 for d in dims[1:]):
        c, h, w = dims[1:]
        if 1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE:
            return (c, h, w), shown
    if len(dims) != 4:
        raise UserError(f"{path.name}: the ONNX graph's input has shape {shown}, not an image batch N x C x H x W")
    return None, shown


def _jit_load(path: Path) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise UserError(f"{path.name} is not a readable TorchScript file ({_first_line(exc)})") from None


def _read_weights(text: str, trust: bool) -> tuple[Path, dict[str, torch.Tensor], str]:
    """``--weights``: a safetensors file or a state_dict (``weights_only``); TorchScript and full
    pickles only with ``trust``. The path, the tensors and what kind of file it was."""
    path = Path(text).expanduser()
    if not path.is_file():
        what = "is a folder: give a weights file" if path.is_dir() else "does not exist: check the path"
        raise UserError(f"--weights {path} {what} (.safetensors or a .pt state_dict)")
    if path.suffix.lower() == ".onnx":
        raise UserError(f"--weights {path.name} is an ONNX graph, not weights: open it as --model {path.name}")
    if path.suffix == ".json":
        raise UserError(f"--weights {path.name} is metadata, not weights: give the .safetensors or .pt file beside it")
    if path.suffix == ".safetensors":
        return path, _read_safetensors(path)[0], "safetensors"
    if _is_torchscript(path):
        if not trust:
            raise NeedsTrust(str(path), "TorchScript")
        return path, dict(_jit_load(path).state_dict()), "TorchScript (trusted)"
    obj = _torch_load_weights(path, trust=trust, what=str(path))
    if isinstance(obj, nn.Module):
        return path, dict(obj.state_dict()), "pickled module (trusted)"
    return path, _unwrap_state_dict(obj, path), "state_dict"


def _head_key(module: nn.Module) -> str | None:
    """The name of the last Linear or Conv2d (the classifier head: ``fc``, ``classifier.6``, ``classifier.1``)."""
    last = None
    for name, sub in module.named_modules():
        if isinstance(sub, (nn.Linear, nn.Conv2d)) and name:
            last = name
    return last


def _head_classes(module: nn.Module, state: dict[str, torch.Tensor]) -> int | None:
    """How many classes ``state``'s head has, when only that differs from ``module``'s head; else None."""
    head = _head_key(module)
    if head is None:
        return None
    expected = module.state_dict()
    state = _strip_prefix(state, expected)
    w_key, b_key = f"{head}.weight", f"{head}.bias"
    got = state.get(w_key)
    if not isinstance(got, torch.Tensor) or w_key not in expected:
        return None
    want = expected[w_key]
    if got.dim() != want.dim() or got.shape == want.shape or got.shape[1:] != want.shape[1:] or got.shape[0] < 1:
        return None
    n = int(got.shape[0])
    if b_key in expected and (b_key not in state or tuple(state[b_key].shape) != (n,)):
        return None
    return n


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


def _strip_prefix(state: dict[str, torch.Tensor], expected: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Keys saved from a DataParallel wrapper (``module.``) under their own names."""
    return {k[len("module."):] if k.startswith("module.") and k not in expected else k: v for k, v in state.items()}


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str,
                hint: str = "check --arch") -> None:
    """Strict load with a one-line account of what does not fit."""
    expected = module.state_dict()
    state = _strip_prefix(state, expected)
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
                        + f" keys; {hint}")
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
