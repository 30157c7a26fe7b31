"""What a model takes and gives, and the finished :class:`~workbench.models.sources.loaded.LoadedModel`.

The input (size, mean, std on the [0, 1] scale, class names) comes from, lowest first: the
architecture's defaults (or a guess from the first convolution, with a notice), the ONNX graph's
static input shape, a sidecar ``<stem>.json`` beside the model or weights file, and the spec's own
``input_size``/``mean``/``std``/``class_names``. A size that is not the architecture's own is tried
with one forward pass before the model is handed out. A net without class names that reads as an
ImageNet classifier (ImageNet's mean and std, 1000 outputs) gets the ImageNet-1k names
(:func:`imagenet_rule`)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from workbench.config.model import ModelSpec
from workbench.config.parse import MAX_CHANNELS, MAX_SIDE
from workbench.errors import UserError
from workbench.models import zoo
from workbench.models.graph import first_line
from workbench.models.sources.loaded import IMAGENET_RULE, IN_MEMORY, LoadedModel, _first_line, _first_tensor, _misfit


#: A sidecar's size limit (and a class-names file's); its input size has --input-size's limits (config.parse).
MAX_SIDECAR_BYTES = 4 << 20


def _freeze(module: nn.Module, device: torch.device) -> nn.Module:
    module = module.to(device).eval()
    for p in module.parameters():
        if p.is_leaf:
            p.requires_grad_(False)
        else:  # a trusted TorchScript file may hand over computed tensors
            p.detach_()
    return module


def _absolute(text: str | None) -> str | None:
    return None if text is None else os.path.abspath(os.path.expanduser(text))


def _recorded(spec: ModelSpec) -> ModelSpec:
    """The spec as a run folder records it: file paths made absolute, so it reopens from anywhere."""
    model = spec.model
    if spec.kind == "name_or_file" and zoo.zoo_entry(model) is None and not model.startswith(IN_MEMORY):
        model = _absolute(model)
    return replace(spec, model=model, weights=_absolute(spec.weights), class_names=_absolute(spec.class_names),
                   path=_absolute(spec.path))


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
        what = ("is a folder" if path.is_dir() else "is not a regular file (a FIFO or a device)" if path.exists()
                else "does not exist")
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
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own code (a callable's forward may raise anything)
        raise UserError(_misfit(name, input_size, origin, f"{type(exc).__name__}: {first_line(exc)}")) from None
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
