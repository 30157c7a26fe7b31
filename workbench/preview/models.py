"""Opening the window's model, Qt-free: the jobs the window's loader slot runs (a spec, an
in-memory module, a LoadedModel made elsewhere, the model a run folder names), each returning the
LoadedModel with its layers traced, and the :class:`ModelFacts` the docks show.

They run on a worker thread (torch calls and file I/O); the window's session only starts them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from workbench.config.model import ModelSpec
from workbench.jobs import CancelToken, Log


def as_spec(spec: "str | ModelSpec", arch: str | None = None) -> ModelSpec:
    """``spec`` as a :class:`ModelSpec` (a string is its ``model``); ``arch`` given overrides its own."""
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec(model=str(spec))
    return replace(spec, arch=arch) if arch else spec


def load_model_job(spec: "str | ModelSpec", device: str = "cpu", trust: bool = False, arch: str | None = None,
                   cancel: CancelToken | None = None, imports: bool = False):
    """Import torch and load ``spec`` (on a worker thread); returns the LoadedModel.

    ``trust`` lets a TorchScript archive or a full pickle load (they run code from the file),
    ``imports`` lets a ``package.module:callable`` be imported: each only on the user's word.
    A torch call cannot be interrupted: ``cancel`` is checked between the steps, so closing
    the window during start-up waits for one step at most."""
    cancel = cancel or CancelToken()
    spec = as_spec(spec, arch)
    yield Log(f"loading {spec.label()}")
    cancel.check()
    from workbench.device import resolve_device
    from workbench.models import load_model

    cancel.check()
    model = load_model(spec, trust=trust, device=resolve_device(device), imports=imports)
    return _prepare(model, cancel)


def module_job(module, options: dict[str, Any], cancel: CancelToken | None = None):
    """Wrap an in-memory ``nn.Module`` (:func:`workbench.models.loading.from_module` with
    ``options``) on a worker thread; returns the LoadedModel."""
    cancel = cancel or CancelToken()
    yield Log(f"opening {options.get('name') or type(module).__name__} (in memory)")
    from workbench.models.loading import from_module

    cancel.check()
    model = from_module(module, **options)  # no device: it stays where the caller put it
    return _prepare(model, cancel)


def loaded_job(model, cancel: CancelToken | None = None):
    """A LoadedModel made elsewhere, its layers traced on a worker thread."""
    cancel = cancel or CancelToken()
    yield Log(f"opening {model.name}")
    return _prepare(model, cancel)


def _prepare(model, cancel: CancelToken):
    cancel.check()
    model.layers()  # traced here, on the loader: the docks read the table at once
    cancel.check()
    import workbench.preimage  # noqa: F401  warm the engine so the first Run starts at once

    return model


@dataclass(frozen=True)
class ModelFacts:
    """What the docks show about a loaded model, gathered on the loader thread (counting
    parameters, probing devices and the zoo's files are torch calls and file I/O)."""

    parameters: int
    devices: tuple[str, ...]
    zoo: tuple = ()


@dataclass(frozen=True)
class RunModel:
    """The model a run folder was made with (read from its run.json on the loader thread)."""

    spec: ModelSpec
    run: Path


def load_with_facts_job(spec: "str | ModelSpec", device: str = "cpu", trust: bool = False, arch: str | None = None,
                        cancel: CancelToken | None = None, imports: bool = False):
    """:func:`load_model_job`, returning ``(model, ModelFacts)``; a model that is code which may run
    only on the user's word raises :class:`~workbench.models.NeedsTrust` (the window asks)."""
    model = yield from load_model_job(spec, device, trust, arch, cancel, imports)
    return model, model_facts(model)


def model_facts(model) -> ModelFacts:
    """The :class:`ModelFacts` of ``model`` (torch calls and file I/O: on a worker thread)."""
    from workbench.device import available_devices
    from workbench.models import zoo_entries

    return ModelFacts(sum(p.numel() for p in model.module.parameters()), tuple(available_devices()),
                      tuple(zoo_entries()))


def with_facts(job):
    """A job returning a LoadedModel, returning ``(model, ModelFacts)`` instead."""
    model = yield from job
    return model, model_facts(model)


def run_model_spec(run: str | Path, fallback: str | None = None) -> tuple[ModelSpec | None, str | None]:
    """The spec run.json records (``["model"]["spec"]``), else its ``config["model"]``, else
    ``fallback``; and a warning when the record is there but unusable. Reads the file: call it
    on a worker thread."""
    from workbench.config import from_dict
    from workbench.errors import UserError

    warning = None
    try:
        info = json.loads((Path(run) / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        info, warning = {}, f"cannot read {Path(run).name}/run.json ({type(exc).__name__}): using the model named in its configuration"
    info = info if isinstance(info, dict) else {}
    record = info.get("model") if isinstance(info.get("model"), dict) else {}
    if record.get("spec") is not None:
        try:
            spec = from_dict(ModelSpec, record["spec"])
            spec.validate()
            return spec, None
        except UserError as exc:
            warning = f"the model spec recorded in {Path(run).name} is not usable ({exc}): using the model named in its configuration"
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    name = config.get("model") if isinstance(config.get("model"), str) and config.get("model") else fallback
    return (ModelSpec(model=name) if name else None), warning


def run_model_job(run: str | Path, fallback: str | None = None, cancel: CancelToken | None = None):
    """:func:`run_model_spec` as a job: returns a :class:`RunModel` (None if the run names no model)."""
    spec, warning = run_model_spec(run, fallback)
    if warning:
        yield Log(warning, "warning")
    return RunModel(spec, Path(run)) if spec is not None else None
