"""The loaded model every analysis takes: :class:`LoadedModel` (the module, its input, its classes,
its layer table and its Φ_ℓ cache), :class:`NeedsTrust` and named predictions."""

from __future__ import annotations

import difflib
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from workbench.config import to_dict
from workbench.config.model import ModelSpec, is_callable_spec
from workbench.errors import NeedsArchitecture, UserError
from workbench.models import zoo
from workbench.models.graph import InputMismatch, LayerInfo, first_line, layer_table
from workbench.models.truncate import truncate as _truncate


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
        except NeedsArchitecture:
            raise  # already says to pass --arch
        except UserError as exc:
            if isinstance(self.module, torch.jit.ScriptModule):
                raise NeedsArchitecture(f"{Path(self.name).name}: {exc}; pass --arch NAME to load its weights into "
                                f"a known architecture") from None
            raise
        except InputMismatch as exc:
            raise UserError(_misfit(self.name, self.input_size, self.input_from, str(exc))) from None
        except Exception as exc:
            if isinstance(self.module, torch.jit.ScriptModule):
                raise NeedsArchitecture(f"{Path(self.name).name} is TorchScript: its layers cannot be listed or truncated "
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

    def with_module(self, module: nn.Module, **changes: Any) -> "LoadedModel":
        """This model around another ``module`` of the same architecture (e.g. freshly initialised
        weights): the same input, normalisation, classes and spec, ``changes`` to the other fields
        (name, source, trained, ...), and its own layer table and truncations (Φ_ℓ of ``module``,
        never of this model's)."""
        return replace(self, module=module, _layers=None, _truncations={}, _lock=threading.RLock(), **changes)

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
