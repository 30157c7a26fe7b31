"""The Python API: the jobs the CLI and the window run, on a module in memory.

    import workbench
    result = workbench.invert(net, "layer3", "photo.png", input_size=(3, 64, 64))
    workbench.show(net, input_size=(3, 64, 64))          # the window, on the same module

``model`` is an ``nn.Module`` (described by ``input_size``, ``mean``, ``std`` and
``class_names``), a :class:`~workbench.models.LoadedModel` from :func:`open_model` (reuse it
across calls: its layer table and truncations are kept), a spec string (``"resnet18"``,
``"net.pt"``, ``"pkg.nets:Net"``, ``"timm:resnet50"``) or a
:class:`~workbench.config.model.ModelSpec`. The keyword arguments of each verb are the fields
of its config (:class:`~workbench.config.preimage.PreimageConfig`,
:class:`~workbench.config.deformation.DeformConfig`), the same names and defaults as the CLI's
options and the window's fields. Every verb writes a run folder, as the CLI does: ``out`` names
a new folder, else one is made in ``workspace`` (default: the per-user workspace of
``workbench runs``). Errors are :class:`~workbench.errors.UserError` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Callable

from workbench.config import from_dict
from workbench.config.deformation import DeformConfig
from workbench.config.preimage import PreimageConfig
from workbench.errors import UserError

#: What describes the input of a module in memory (the fields of ModelSpec that apply to one).
INPUT_FIELDS = ("input_size", "mean", "std", "class_names")


def open_model(model: Any, *, input_size: tuple[int, int, int] | None = None, mean: tuple[float, ...] | None = None,
               std: tuple[float, ...] | None = None, class_names: list[str] | str | None = None,
               name: str | None = None, device: str | None = None, trust: bool = False):
    """A :class:`~workbench.models.LoadedModel` for ``model`` (see the module docstring).

    An ``nn.Module`` stays on its device unless ``device`` is given (it is frozen in place:
    ``eval()``, no gradients; see :func:`workbench.models.loading.from_module`); a spec opens on
    ``device`` (default ``auto``). ``trust`` allows a TorchScript file or a full pickle, which run
    code from the file."""
    from workbench.config.model import model_request
    from workbench.device import resolve_device
    from workbench.models import load_model
    from workbench.models.loading import from_module

    kind, value, options = model_request(model, input_size=input_size, mean=mean, std=std, class_names=class_names,
                                         who="model")
    if kind == "loaded":
        return value if device is None else value.to(resolve_device(device))
    if kind == "module":
        check_module(value, name or type(value).__name__)
        return from_module(value, name=name, device=None if device is None else resolve_device(device), **options)
    loaded = load_model(value, trust=trust, device=resolve_device("auto" if device is None else device))
    check_module(loaded.module, loaded.name)
    return loaded


def check_module(module: Any, name: str) -> None:
    """Refuse a module the workbench cannot compute with, before any folder exists: parameters not
    yet created (a ``LazyConv2d`` before its first call), on the ``meta`` device (no data), or
    holding NaN or infinite weights (every result would be NaN: an ntv of 0.0, a ``done`` run of
    null means)."""
    import torch
    from torch.nn.parameter import is_lazy

    for pname, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if is_lazy(tensor):
            raise UserError(f"{name}: {pname} is not initialised yet (a lazy layer): run the module once on an "
                            f"input, then pass it")
        if tensor.is_meta:
            raise UserError(f"{name}: {pname} is on the meta device (it has no values): load its weights, e.g. "
                            f"module.to_empty(device='cpu') and load_state_dict")
        if tensor.is_floating_point() or tensor.is_complex():
            if not bool(torch.isfinite(tensor.detach()).all()):
                raise UserError(f"{name}: {pname} holds NaN or infinite values: its results would be NaN; "
                                f"check the weights")


def invert(model: Any, layer: str, image: Any, *, out: str | Path | None = None, workspace: str | Path | None = None,
           on_event: Callable | None = None, **options: Any):
    """Reconstruct ``image`` from the code of ``layer`` (IJCV eq. 2, 3); a ``PreimageResult``.

    ``image`` is a file, ``digits:N`` or a sample name; ``options`` are PreimageConfig fields."""
    return _preimage("invert", model, layer, image, out, workspace, on_event, options)


def maximize(model: Any, layer: str, channel: int, *, neuron: tuple[int, int] | None = None,
             out: str | Path | None = None, workspace: str | Path | None = None, on_event: Callable | None = None,
             **options: Any):
    """An image that maximally activates ``channel`` of ``layer`` (or one ``neuron`` (y, x) of it; eq. 4)."""
    return _preimage("maximize", model, layer, None, out, workspace, on_event,
                     {**options, "channel": channel, "neuron": neuron})


def caricature(model: Any, layer: str, image: Any, *, out: str | Path | None = None,
               workspace: str | Path | None = None, on_event: Callable | None = None, **options: Any):
    """Exaggerate what ``layer`` sees in ``image`` (sect. 7)."""
    return _preimage("caricature", model, layer, image, out, workspace, on_event, options)


def deformation_sensitivity(model: Any, *, out: str | Path | None = None, workspace: str | Path | None = None,
                            on_event: Callable | None = None, **options: Any) -> dict[str, Any]:
    """Normalized cosine distance per layer under random smooth deformations (Ruderman et al. 2018,
    sect. 2.1); the run's metrics (``layers``: layer, mean, std). ``options`` are DeformConfig fields."""
    from workbench.deformation.job import deform_job
    from workbench.jobs import run_job

    loaded_options, options = _split_model_options(options)
    loaded = open_model(model, **loaded_options)
    config = _config(DeformConfig, {**options, "model": loaded.name})
    return run_job(deform_job(config, model=loaded, out=_out(out), runs_root=_store(workspace).root), on_event)


def smoothness(model: Any, *, init: str | None = None, seed: int = 0, **model_options: Any) -> list[dict[str, Any]]:
    """TV(W)/‖W‖₁ of every conv layer (Ruderman et al. 2018, sect. 4.1): ``[{layer, ntv}]``;
    ``init`` measures a fresh initialization (truncnormal, default or gaussian:SIGMA) instead."""
    from workbench import limits
    from workbench.deformation.job import initialized, smoothness_report
    from workbench.deformation.smoothness import parse_init

    limits.seed("seed", seed)
    if init is not None:
        parse_init(init)
    loaded_options, rest = _split_model_options(model_options)
    if rest:
        raise UserError(f"smoothness() got unknown option(s) {', '.join(sorted(rest))}: it takes init and seed")
    return smoothness_report(initialized(open_model(model, **loaded_options), init, seed))


def show(model: Any = None, **kwargs: Any):
    """Open the window on ``model`` (see :func:`workbench.ui.show.show`)."""
    from workbench.ui.show import show as _show

    return _show(model, **kwargs)


# --- one path for the three pre-image verbs ------------------------------------------------

def _preimage(method, model, layer, image, out, workspace, on_event, options):
    from workbench.jobs import run_job
    from workbench.preimage import preimage_job
    from workbench.preimage.quality import open_judge

    loaded_options, options = _split_model_options(options)
    if image is not None and not isinstance(image, (str, Path)):
        raise UserError(f"image must be a file path, digits:N or a sample name, not {type(image).__name__}")
    loaded = open_model(model, **loaded_options)
    config = _config(PreimageConfig, {**options, "method": method, "model": loaded.name, "layer": layer,
                                      "image": None if image is None else str(image)})
    config.validate()
    judge = open_judge(config, loaded)
    return run_job(preimage_job(config, out=_out(out), runs=_store(workspace), model=loaded, judge=judge), on_event)


def _split_model_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    model = {k: options[k] for k in (*INPUT_FIELDS, "device", "trust", "name") if k in options and k != "device"}
    if "device" in options:
        model["device"] = options["device"]
    rest = {k: v for k, v in options.items() if k not in model or k == "device"}
    return model, rest


def _config(cls, options: dict[str, Any]):
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in options if k not in names]
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown option {unknown[0]!r}{hint}: {cls.__name__} takes {', '.join(names)}")
    return from_dict(cls, {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()})


def _out(out):
    from workbench.runs import check_new_folder

    return check_new_folder(out) if out is not None else None


def _store(workspace):
    from workbench.runs import RunStore

    return RunStore(workspace)
