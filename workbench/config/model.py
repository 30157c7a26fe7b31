"""How to open a model: one spec, shared by the CLI (``--model SPEC`` and its options), the
window's model box and Open dialog, the Python API and run folders (``run.json["model"]["spec"]``).

``model`` is one of

- a zoo name (``workbench zoo list``): ``digits-vgg``, ``resnet18``, ...;
- a file: ``.safetensors``, a ``.pt``/``.pth`` state_dict, an ``.onnx`` graph, or (trusted) a
  TorchScript archive or a full pickle;
- a Python callable ``package.module:callable`` (a class or a factory returning an ``nn.Module``),
  called with ``model_kwargs``; imported from ``path`` (``--path DIR``) first, then the installed
  packages, then the current directory (which never shadows an installed package);
- a timm architecture ``timm:NAME``;
- a hand-crafted representation built as a network: ``hog``, ``hogb`` or ``dsift`` (``cell_size``).

``weights`` loads a safetensors file or a state_dict (``weights_only=True``) into the module that
``model`` built; ``input_size``, ``mean``, ``std`` and ``class_names`` describe the input of a model
that has no sidecar JSON, and override the sidecar when given. Trust is never part of a spec:
nothing in a run folder grants it.

No torch here: the window reads and writes specs on its GUI thread.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any

from workbench.config import option
from workbench.config.parse import MAX_CHANNELS, MAX_SIDE, check_input_size, parse_floats, parse_input_size  # noqa: F401 - the spec's parsers
from workbench.errors import UserError

#: ``package.module:callable`` (dotted on both sides of the colon; no path separators).
CALLABLE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
TIMM_PREFIX = "timm:"
#: Suffixes of a state_dict or a (trusted) pickle / TorchScript file (workbench.models.sources.weights).
STATE_DICT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")
#: Every suffix of a model file the file sources open: the one table for a file dialog's filter and a drop.
MODEL_FILE_SUFFIXES = (".safetensors", *STATE_DICT_SUFFIXES, ".onnx")
#: The hand-crafted representations built as networks (workbench.representations): --model NAME[@CELL].
REPRESENTATIONS = ("hog", "hogb", "dsift")


@dataclass(frozen=True)
class ModelSpec:
    model: str = option("digits-vgg", "a zoo name (see `workbench zoo list`), a model file (.safetensors, .pt, "
                        ".onnx, TorchScript), package.module:callable or timm:NAME", required=True)
    arch: str | None = option(None, "architecture for a weights file (.safetensors, .pt state_dict)")
    weights: str | None = option(None, "weights to load into the model (safetensors or a state_dict)",
                                 metavar="FILE")
    model_kwargs: str | None = option(None, "keyword arguments of a package.module:callable or timm model, "
                                      "as a JSON object, e.g. '{\"num_classes\": 10}'", metavar="JSON")
    input_size: tuple[int, int, int] | None = option(None, "the model's input CxHxW, e.g. 3x64x64 "
                                                     "(overrides a sidecar JSON)", metavar="CxHxW",
                                                     parse="input_size")
    mean: tuple[float, ...] | None = option(None, "per-channel input mean on the [0, 1] scale, e.g. 0.5,0.5,0.5",
                                            metavar="M1,M2,..", parse="floats")
    std: tuple[float, ...] | None = option(None, "per-channel input std on the [0, 1] scale, e.g. 0.5,0.5,0.5",
                                           metavar="S1,S2,..", parse="floats")
    class_names: str | None = option(None, "a text file of class names, one per line (or a JSON list)",
                                     metavar="FILE")
    cell_size: int | None = option(None, "cell size in pixels of hog, hogb or dsift (default 8, as in the papers)",
                                   metavar="PIXELS")
    path: str | None = option(None, "a folder to import package.module:callable from, searched before the "
                              "installed packages (without it the current folder is searched only after them)",
                              metavar="DIR")

    @property
    def kind(self) -> str:
        """``timm``, ``callable``, or ``name_or_file`` (a zoo name or a file: told apart on load)."""
        if self.model.startswith(TIMM_PREFIX):
            return "timm"
        if is_callable_spec(self.model):
            return "callable"
        return "name_or_file"

    def kwargs(self) -> dict[str, Any]:
        """``model_kwargs`` parsed: a JSON object (``{}`` when not given)."""
        return parse_kwargs(self.model_kwargs)

    def validate(self) -> None:
        """Every field well formed (nothing is opened or imported here)."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise UserError("--model needs a zoo name, a model file, package.module:callable or timm:NAME")
        if self.kind == "timm" and not self.model[len(TIMM_PREFIX):].strip():
            raise UserError("--model timm:NAME needs an architecture name, e.g. timm:resnet50")
        self.kwargs()
        if self.model_kwargs is not None and self.kind not in ("callable", "timm"):
            raise UserError(f"--model-kwargs applies to a package.module:callable or timm:NAME model, not '{self.model}'")
        if self.path is not None and self.kind != "callable":
            raise UserError(f"--path applies to a package.module:callable model, not '{self.model}'")
        if self.cell_size is not None and self.model.partition("@")[0].strip().lower() not in REPRESENTATIONS:
            raise UserError(f"--cell-size applies to {', '.join(REPRESENTATIONS)}, not '{self.model}'")
        if self.input_size is not None:
            check_input_size(self.input_size)
        c = self.input_size[0] if self.input_size is not None else None
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is None:
                continue
            if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                     for v in values):
                raise UserError(f"--{name} needs finite numbers, one per input channel, e.g. 0.5,0.5,0.5")
            if c is not None and len(values) != c:
                raise UserError(f"--{name} has {len(values)} value(s) but --input-size has {c} channel(s): give one per channel")
        if self.std is not None and any(not 1e-6 <= s <= 1e6 for s in self.std):
            raise UserError("--std values must lie between 1e-6 and 1e6 (on the [0, 1] pixel scale, e.g. 0.229)")
        if self.mean is not None and any(abs(m) > 1e6 for m in self.mean):
            raise UserError("--mean values must lie between -1e6 and 1e6 (on the [0, 1] pixel scale, e.g. 0.485)")
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise UserError(f"--mean has {len(self.mean)} values but --std has {len(self.std)}: give one per channel")

    def with_model(self, model: str) -> "ModelSpec":
        return replace(self, model=model)

    def label(self) -> str:
        """A short name for titles and logs."""
        return self.model


def is_callable_spec(text: str) -> bool:
    """Whether ``text`` reads as ``package.module:callable`` (a Windows path ``C:...`` does not)."""
    return bool(CALLABLE.match(text)) and not re.match(r"^[A-Za-z]:[\\/]", text)


def parse_kwargs(text: str | None) -> dict[str, Any]:
    if text is None or text == "":
        return {}
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise UserError(f"--model-kwargs must be a JSON object, e.g. '{{\"num_classes\": 10}}' ({exc})") from None
    if not isinstance(value, dict):
        raise UserError(f"--model-kwargs must be a JSON object, e.g. '{{\"num_classes\": 10}}', not {text[:40]}")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def model_request(model: Any, *, input_size=None, mean=None, std=None, class_names=None,
                  who: str = "a model argument") -> tuple[str, Any, dict[str, Any]]:
    """What a model argument is: the one table of the Python API (``workbench.open_model``),
    ``workbench.show()`` and the window. Returns

    - ``("module", module, options)``: an ``nn.Module`` in memory, with the description given
      (``input_size``, ``mean``, ``std``, ``class_names`` — a list of names or a file of them);
    - ``("loaded", model, {})``: a ``LoadedModel``, open already (a description is refused: it has one);
    - ``("spec", spec, {})``: a zoo name, a file, ``package.module:callable`` or ``timm:NAME`` (a string,
      a path or a :class:`ModelSpec`) with the description folded into the spec and checked
      (``class_names`` then is a file).

    Imports no torch: a module or a LoadedModel is recognised only once torch or the model sources
    are loaded — neither can exist before. Bad arguments are a UserError naming ``who``."""
    import os
    import sys

    given = {k: v for k, v in (("input_size", input_size), ("mean", mean), ("std", std), ("class_names", class_names))
             if v is not None}
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        if class_names is not None and not isinstance(class_names, (str, os.PathLike)) and not (
                isinstance(class_names, (list, tuple)) and all(isinstance(n, str) for n in class_names)):
            kinds = (" of " + ", ".join(sorted({type(n).__name__ for n in class_names}))
                     if isinstance(class_names, (list, tuple)) else "")
            raise UserError(f"class_names must be a list of names (strings) or a file of names, "
                            f"not {type(class_names).__name__}{kinds}")
        return "module", model, given
    loaded = sys.modules.get("workbench.models.sources.loaded")
    if loaded is not None and isinstance(model, loaded.LoadedModel):
        if given:
            raise UserError(f"{', '.join(given)}: a LoadedModel describes its input already; pass its module "
                            f"(model.module) to describe it anew")
        return "loaded", model, {}
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if isinstance(model, str):
        spec = ModelSpec(model=model)
    elif isinstance(model, ModelSpec):
        spec = model
    else:
        raise UserError(f"{who} is an nn.Module, a LoadedModel or a model spec (a zoo name, a file, "
                        f"package.module:callable, timm:NAME), not a {type(model).__name__}")
    if class_names is not None and not isinstance(class_names, (str, os.PathLike)):
        raise UserError("class_names for a model spec is a file (one class name a line); "
                        "a list of names goes with an in-memory module")
    try:
        spec = replace(spec,
                       input_size=tuple(input_size) if input_size is not None else spec.input_size,
                       mean=tuple(float(v) for v in mean) if mean is not None else spec.mean,
                       std=tuple(float(v) for v in std) if std is not None else spec.std,
                       class_names=os.fspath(class_names) if class_names is not None else spec.class_names)
    except (TypeError, ValueError) as exc:
        raise UserError(f"input_size is (C, H, W) and mean/std are sequences of numbers ({exc})") from None
    spec.validate()
    return "spec", spec, {}
