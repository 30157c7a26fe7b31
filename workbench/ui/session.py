"""The shared session model: current model, layer, reference image, method config, jobs.

Docks read and write the session and listen to its signals; they never talk to each other.
The session owns two job slots (:class:`~workbench.ui.worker.JobRunner`): one loads models,
one runs the pre-image job. Starting a pre-image job while one runs queues it (the latest
request wins) and starts it when the slot frees.

The method configuration is a plain dict of :class:`workbench.preimage.PreimageConfig`
fields, so the GUI thread never imports torch; the job builds the dataclass on its thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal

from workbench.config import clean, defaults, to_dict
from workbench.config.preimage import PreimageConfig
from workbench.config.model import ModelSpec
from workbench.jobs import CancelToken
from workbench.preview.models import (ModelFacts, RunModel, as_spec, load_with_facts_job, loaded_job, module_job,
                                      run_model_job, with_facts)
from workbench.preview.reopen import PREIMAGE_METHODS, ReopenedRun, read_run_job
from workbench.runs import RunStore
from workbench.ui.worker import JobRunner, LatestJobSlot, message as error_message

#: PreimageConfig's defaults (sect. 5.2 of the IJCV paper; None means "the per-layer preset").
DEFAULT_CONFIG: dict[str, Any] = defaults(PreimageConfig)

MAX_RECENT = 8
#: Config fields that belong to the window, not to a model: every other field (layer, reference,
#: method and its settings) is kept per model (:meth:`Session.model_config`).
WINDOW_FIELDS = ("model", "device")


def clean_config(config: Any) -> tuple[dict[str, Any], list[str]]:
    """The fields of ``config`` (a run.json's, saved settings) that the session can take, and the
    names of those it drops: unknown, wrong type, non-finite or out of range. Never raises."""
    return clean(PreimageConfig, config)


@dataclass(frozen=True)
class _LoadRequest:
    """One request for the loader slot (the latest wins while one is loading)."""

    spec: ModelSpec | None = None
    trust: bool = False
    imports: bool = False
    run: Path | None = None          # resolve the spec from this run folder first
    fallback: str | None = None      # ... or this name, when the run records none
    factory: Any = None              # an in-memory model: ``factory(cancel)`` makes the job
    label: str = ""


class Session(QObject):
    model_loading = Signal(str)
    model_changed = Signal(object)
    model_failed = Signal(str)
    layer_changed = Signal(str)
    reference_changed = Signal(str)
    config_changed = Signal(dict)
    recent_changed = Signal(list)
    message_logged = Signal(str, str)           # level, message
    job_started = Signal(dict)
    job_progressed = Signal(object)
    job_finished = Signal(object)
    job_cancelled = Signal()
    job_failed = Signal(str)
    job_stopped = Signal()
    runs_changed = Signal()
    maximize_requested = Signal(int)
    run_reopened = Signal(object)               # a ReopenedRun: Runs → Reopen's images, metrics, energies
    failure_reported = Signal(str, str)         # where (a dock's title), the one-line reason in the window's words
    failure_dismissed = Signal(str)             # where: the user dismissed it, or started again there
    load_declined = Signal()                    # the user said no to a load's question: the current model stays
    collection_reopened = Signal(str, str)      # kind ("sweep" or "atlas"), folder: Runs → Reopen of a sweep or an atlas

    def __init__(self, settings: QSettings, workspace: str | Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        from workbench.runs import default_workspace

        self.workspace = Path(workspace or settings.value("workspace", str(default_workspace())))
        self.model = None
        self.model_facts: ModelFacts | None = None
        self.model_spec: ModelSpec | None = None     # how to open the current model again (None: in memory)
        #: the consent the current model was opened with ({"trust", "imports"}): a sweep of it opens it again
        #: with the same, never more
        self.model_consent: dict[str, bool] = {"trust": False, "imports": False}
        self.config: dict[str, Any] = dict(DEFAULT_CONFIG)
        saved = settings.value("last/config", "")
        if saved:
            try:
                self.config.update(clean_config(json.loads(saved))[0])
            except (TypeError, ValueError, RecursionError):
                pass
        self.last_result = None
        self.last_config: dict[str, Any] | None = None
        self.reference_image = None
        self.load_error: str | None = None
        self.loading_spec: ModelSpec | None = None   # the spec of the latest load from a spec
        self.loading_trust = False                   # ... whether it may run a file's code
        self.loading_imports = False                 # ... whether it may import a callable
        #: why the latest load failed when the user's word can fix it: "TorchScript", "pickle" or "callable"
        self.trust_kind: str | None = None
        #: the latest load failed for want of an architecture (a weights-only file): the window asks which
        self.needs_architecture = False
        self.run_path: Path | None = None
        self._queued: dict[str, Any] | None = None
        self._pending_model: _LoadRequest | None = None
        self._in_memory = False                      # the model being loaded exists only in memory
        self.loader = JobRunner(self)
        self.loader.finished.connect(self._on_model_loaded)
        self.loader.errored.connect(self._on_model_failed)
        self.loader.logged.connect(self._on_logged)
        self.loader.stopped.connect(self._on_loader_stopped)
        self.runner = JobRunner(self)
        self.runner.progressed.connect(self.job_progressed)
        self.runner.logged.connect(self._on_logged)
        self.runner.artifact_written.connect(self._on_artifact)
        self.runner.finished.connect(self._on_job_finished)
        self.runner.cancelled.connect(self._on_job_cancelled)
        self.runner.failed.connect(self._on_job_failed)
        self.runner.stopped.connect(self._on_job_stopped)
        #: draws and writes the docks' plot exports (``export_plot(..., runner=...)``): never on the GUI thread
        self.plot_exporter = JobRunner(self, rate=0)
        self.plot_exporter.finished.connect(lambda written: self.log(f"{written[0]} exported to {written[1]}"))
        self.plot_exporter.failed.connect(lambda message: self.log(message, "error"))
        self._reopen_slot = LatestJobSlot(self)      # reads a reopened run's results
        self._reopen_slot.finished.connect(self._on_run_read)
        self._reopen_slot.failed.connect(lambda message: self.log(f"cannot reopen the run's results: {message}", "warning"))
        self._reopening: Path | None = None          # the run whose results are being read
        #: a reopened run's configuration, applied once its model is the current one (never to another)
        self._run_config: dict[str, Any] | None = None

    # --- state -----------------------------------------------------------------------
    @property
    def layer(self) -> str:
        return self.config["layer"]

    @property
    def reference(self) -> str | None:
        return self.config["image"]

    def set_workspace(self, path: str | Path) -> None:
        """Runs go to ``path`` from now on, and in later sessions."""
        self.workspace = Path(path)
        self.settings.setValue("workspace", str(self.workspace))
        self.log(f"workspace: {self.workspace}")
        self.runs_changed.emit()

    @property
    def store(self) -> RunStore:
        return RunStore(self.workspace)

    @property
    def busy(self) -> bool:
        return self.runner.running

    def log(self, message: str, level: str = "info") -> None:
        self.message_logged.emit(level, message)

    def report_failure(self, where: str, message: str) -> None:
        """A job started from ``where`` (a dock's title) failed: the Log records it, and the status bar
        shows it until dismissed (the dock shows it too, in its own banner)."""
        self.log(f"{where}: {message}", "error")
        self.failure_reported.emit(where, message)

    def dismiss_failure(self, where: str) -> None:
        self.failure_dismissed.emit(where)

    def set_layer(self, name: str) -> None:
        if name != self.config["layer"]:
            self.config["layer"] = name
            self._save_config()
            self.layer_changed.emit(name)

    def set_reference(self, spec: str) -> None:
        if spec != self.config["image"]:
            self.config["image"] = spec
            self._save_config()
            self.reference_changed.emit(spec)

    def update_config(self, **values: Any) -> None:
        """Set method parameters (PreimageConfig field names); emits config_changed."""
        unknown = set(values) - set(DEFAULT_CONFIG)
        if unknown:
            raise KeyError(f"unknown config field(s): {sorted(unknown)}")
        layer, image = values.pop("layer", None), values.pop("image", None)
        self.config.update(values)
        self._save_config()
        if layer is not None:
            self.set_layer(layer)
        if image is not None:
            self.set_reference(image)
        self.config_changed.emit(dict(self.config))

    def apply_config(self, config: dict[str, Any], run: str | Path | None = None) -> None:
        """Restore a run's configuration (Runs → Reopen); loads its model if it differs. Fields
        that do not fit (wrong type, out of range) keep their current values, with a warning.

        With ``run`` (the run's folder) the model is the spec its run.json records
        (``["model"]["spec"]``: weights, input size, ... as opened then), read on the loader thread;
        else ``config["model"]``. A model that is Python code is imported only after the user agrees."""
        known, dropped = clean_config(config)
        if dropped:
            self.log(f"ignored from the run's configuration (not valid values): {', '.join(dropped)}", "warning")
        known["neuron"] = known.get("neuron") or None
        known["mask_channels"] = known.get("mask_channels") or None
        spec = known.get("model")
        if spec and self.model is not None and spec != self.model.name:
            # another model's settings wait for that model: a refused or failed load leaves the
            # current model with its own layer and settings
            self._run_config = known
        else:
            self._run_config = None
            self.update_config(**known)
        if run is not None:
            self.reopen_model(run, spec)
            self.reopen_results(run)
        elif spec and not self._is_current(ModelSpec(model=spec)):
            self.load_model(spec)

    def reopen_model(self, run: str | Path, fallback: str | None = None) -> None:
        """Load the model the run folder ``run`` was made with, unless it is the current one
        (its run.json is read on the loader thread; ``fallback`` if it names none)."""
        self._request(_LoadRequest(run=Path(run), fallback=fallback, label=Path(run).name))

    def reopen_results(self, run: str | Path) -> None:
        """Read the run folder ``run``'s images, metrics and energy curves on a worker; then
        :attr:`last_result` is the run's (so it can be exported again) and ``run_reopened`` says so.
        A job started meanwhile wins: the run's results are then dropped."""
        path = self._reopening = Path(run)
        self._reopen_slot.request(lambda cancel: read_run_job(path, cancel))

    def _on_run_read(self, reopened: ReopenedRun) -> None:
        if reopened.path != self._reopening or self.busy:
            return
        self._reopening = None
        for note in reopened.notes:
            self.log(note, "warning")
        if reopened.result is not None:
            self.last_result = reopened.result
            self.last_config = {**reopened.config, "model": reopened.config.get("model") or reopened.result.metrics.get("model")}
        if reopened.result is not None or reopened.config.get("method") in PREIMAGE_METHODS:
            self.run_reopened.emit(reopened)  # another kind of run (deform, ...) leaves the views as they are

    def model_to_reopen(self) -> tuple[ModelSpec, dict[str, bool]]:
        """The full spec that opens the current model again (weights, model kwargs, input size, ...)
        and the consent it was opened with: what a sweep's or an atlas's cells open, never a bare
        name that may be another model. A model handed to the window in memory has no spec: refused."""
        from workbench.errors import UserError

        if self.model_spec is not None:
            return self.model_spec, dict(self.model_consent)
        if self._in_memory:
            raise UserError("this model was handed to the window in memory, and a sweep's cells open their model "
                            "again: open it from its file or name (Model dock) to sweep it")
        return ModelSpec(model=str(self.config.get("model") or "digits-vgg")), {"trust": False, "imports": False}

    def _is_current(self, spec: ModelSpec) -> bool:
        model = self.model
        if model is None:
            return False
        current = getattr(model, "spec", None)
        if isinstance(current, ModelSpec):
            return current == spec
        return spec == ModelSpec(model=model.name)

    def _save_config(self) -> None:
        self.settings.setValue("last/config", json.dumps(self.config))
        if self.model is not None and self.config.get("model") == self.model.name:
            kept = {k: v for k, v in self.config.items() if k not in WINDOW_FIELDS}
            self.settings.setValue(model_key(self.model.name), json.dumps(kept))

    def model_config(self, model) -> dict[str, Any]:
        """The settings ``model`` had when last used (layer, reference, method settings), else its
        own defaults: the paper's method settings, a digit for a digits net and a photo for any
        other, its middle ReLU. The device stays the window's."""
        config = dict(DEFAULT_CONFIG, image=default_reference(model), layer=_default_layer(model))
        saved = self.settings.value(model_key(model.name), "")
        if saved:
            try:
                config.update({k: v for k, v in clean_config(json.loads(saved))[0].items() if k not in WINDOW_FIELDS})
            except (TypeError, ValueError, RecursionError):
                pass
        config["device"] = self.config.get("device", DEFAULT_CONFIG["device"])
        config["model"] = model.name
        return config

    def decline_load(self) -> None:
        """The user said no to a load's question (trust a file, import code, an architecture): the
        current model stays, with its own settings, and no error is left behind."""
        self.load_error = None
        self.trust_kind = None
        self.needs_architecture = False
        self._run_config = None
        self.log("kept the current model: the other one was not loaded")
        self.load_declined.emit()

    # --- models ----------------------------------------------------------------------
    def recent_models(self) -> list[ModelSpec]:
        """The specs opened lately (files, callables, timm, zoo names with options), newest first."""
        value = self.settings.value("recent_models", [])
        if isinstance(value, str):
            value = [value] if value else []
        specs: list[ModelSpec] = []
        for item in value or []:
            spec = spec_from_json(item)
            if spec is not None and spec not in specs:
                specs.append(spec)
        return specs

    def _remember(self, spec: ModelSpec) -> None:
        """Put ``spec`` first in the recent models (a bare zoo name is in the model box already)."""
        if spec == ModelSpec(model=spec.model) and spec.kind == "name_or_file" and not Path(spec.model).suffix:
            return
        recent = [spec] + [r for r in self.recent_models() if r != spec]
        recent = recent[:MAX_RECENT]
        self.settings.setValue("recent_models", [spec_json(r) for r in recent])
        self.recent_changed.emit(recent)

    def load_model(self, spec: "str | ModelSpec", trust: bool = False, arch: str | None = None,
                   imports: bool = False) -> None:
        """Load ``spec`` on the loader thread; a second request while loading replaces the first.

        ``trust`` lets a TorchScript or full-pickle file run its code, ``imports`` lets a
        ``package.module:callable`` be imported: pass them only on the user's word (the window
        asks when a load fails for want of them, see :attr:`trust_kind`)."""
        spec = as_spec(spec, arch)
        self._request(_LoadRequest(spec=spec, trust=trust, imports=imports, label=spec.label()))

    def open_module(self, module, *, name: str | None = None, input_size=None, mean=None, std=None,
                    class_names=None) -> None:
        """Show an in-memory ``nn.Module``: it is wrapped and traced on the loader thread
        (:func:`workbench.models.loading.from_module` with these arguments)."""
        options = {"name": name, "input_size": input_size, "mean": mean, "std": std, "class_names": class_names}
        options = {k: v for k, v in options.items() if v is not None}
        label = name or type(module).__name__
        self._request(_LoadRequest(factory=lambda cancel: with_facts(module_job(module, options, cancel)), label=label))

    def open_loaded(self, model) -> None:
        """Show a LoadedModel made elsewhere (its layers are traced on the loader thread)."""
        self._request(_LoadRequest(factory=lambda cancel: with_facts(loaded_job(model, cancel)), label=str(model.name)))

    def _request(self, request: _LoadRequest) -> None:
        if self.loader.running:
            self._pending_model = request
            self.loader.cancel()
            return
        self.load_error = None
        self.trust_kind = None
        self.needs_architecture = False
        if request.run is not None:  # first find out which model; loading it is a second request
            run, fallback = request.run, request.fallback
            self.loader.start(lambda cancel: run_model_job(run, fallback, cancel))
            return
        self._in_memory = request.factory is not None
        if request.factory is not None:
            factory = request.factory
            self.loading_spec, self.loading_trust, self.loading_imports = None, False, False
        else:
            spec, trust, imports = request.spec, request.trust, request.imports
            self.loading_spec, self.loading_trust, self.loading_imports = spec, trust, imports
            device = self.config.get("device") or "auto"
            device = "cpu" if device == "auto" else device

            def factory(cancel):
                return load_with_facts_job(spec, device, trust, None, cancel, imports)
        self.model_loading.emit(request.label)
        self.loader.start(factory)

    def _on_model_loaded(self, result) -> None:
        if self._pending_model is not None:
            return
        if isinstance(result, RunModel):
            if not self._is_current(result.spec):
                self._pending_model = _LoadRequest(spec=result.spec, label=result.spec.label())  # starts once stopped
            elif self._run_config is not None:
                config, self._run_config = self._run_config, None
                self.update_config(**{k: v for k, v in config.items() if k != "model"})
            return
        if result is None:
            return  # a run that names no model: keep the current one
        model, self.model_facts = result
        previous = self.config.get("model")
        self.model = model
        run_config, self._run_config = self._run_config, None
        if run_config is not None and run_config.get("model") == model.name:
            self.config.update(run_config)            # a reopened run's settings, made for this model
        elif previous != model.name:
            self.config = self.model_config(model)    # this model's own settings, never another's
        self.config["model"] = model.name
        names = [l.name for l in model.layers()]
        aliases = {l.alias: l.name for l in model.layers() if l.alias}
        layer = aliases.get(self.config["layer"], self.config["layer"])
        if layer not in names:
            layer = _default_layer(model)
        self.config["layer"] = layer
        self._save_config()
        self.model_spec = None
        self.model_consent = {"trust": False, "imports": False}
        if not self._in_memory:
            spec = getattr(model, "spec", None)
            self.model_spec = spec if isinstance(spec, ModelSpec) else (self.loading_spec or ModelSpec(model=model.name))
            self.model_consent = {"trust": bool(self.loading_trust), "imports": bool(self.loading_imports)}
            self._remember(self.model_spec)
            self.settings.setValue("last/model", model.name)
        self.log(f"loaded {model.name}: {model.source}")
        if model.notice:
            self.log(model.notice, "warning")
        self.model_changed.emit(model)
        self.layer_changed.emit(layer)
        self.config_changed.emit(dict(self.config))

    def _on_model_failed(self, exc: BaseException) -> None:
        """A load ended in ``exc``: what the user can do about it is read from its type."""
        from workbench.errors import NeedsArchitecture
        from workbench.models.loading import NeedsTrust

        if self._pending_model is not None:
            return
        kind = exc.kind if isinstance(exc, NeedsTrust) else None
        self.needs_architecture = isinstance(exc, NeedsArchitecture)
        self._fail(error_message(exc), kind)

    def _fail(self, message: str, kind: str | None) -> None:
        self.load_error = message
        self.trust_kind = kind
        self.log(message, "warning" if kind else "error")
        self.model_failed.emit(message)

    def _on_loader_stopped(self) -> None:
        if self._pending_model is not None:
            request, self._pending_model = self._pending_model, None
            self._request(request)
        elif self._queued is not None and self.model is not None:
            config, self._queued = self._queued, None
            self.start_job(config)

    # --- pre-image jobs --------------------------------------------------------------------
    def start_job(self, config: dict[str, Any] | None = None) -> bool:
        """Run the pre-image job for ``config`` (default: the current one); True if started now."""
        config = dict(config or self.config)
        if self.model is None or self.loader.running or self.runner.running:
            self._queued = config
            if self.runner.running:
                self.log("a job is running: the new one is queued and starts when it ends")
            return False
        config["model"] = self.model.name
        if not self.runner.start(self.make_job(config, self.model, self.store)):
            return False  # shut down: the window is closing
        self._reopening = None  # a run being reopened is not shown over this job
        self.last_result = None
        self.run_path = None
        self.job_started.emit(config)
        return True

    def make_job(self, config: dict[str, Any], model, store: RunStore):
        """The job factory for a pre-image run of ``config`` (the config is built, and its ``--judge``
        model opened, on the worker)."""

        def factory(cancel: CancelToken):
            from workbench.config import from_dict
            from workbench.preimage import PreimageConfig, preimage_job
            from workbench.preimage.quality import open_judge

            cfg = from_dict(PreimageConfig, config)
            return preimage_job(cfg, cancel=cancel, runs=store, model=model, judge=open_judge(cfg, model))

        return factory

    def cancel_job(self) -> None:
        self._queued = None
        self.runner.cancel()

    @property
    def queued(self) -> bool:
        return self._queued is not None

    def _on_logged(self, level: str, message: str) -> None:
        self.message_logged.emit(level, message)

    def _on_artifact(self, name: str, path: str) -> None:
        if name == "run":
            self.run_path = Path(path)
            self.runs_changed.emit()

    def _on_job_finished(self, result) -> None:
        self.last_result = result
        self.log(f"done: {result.run.path if result.run else ''}")
        self.job_finished.emit(result)
        self.runs_changed.emit()

    def _on_job_cancelled(self) -> None:
        self.job_cancelled.emit()
        self.runs_changed.emit()

    def _on_job_failed(self, message: str) -> None:
        from workbench.ui.widgets.failure_banner import window_words

        self.report_failure("Method", window_words(message))
        self.job_failed.emit(message)
        self.runs_changed.emit()

    def _on_job_stopped(self) -> None:
        self.job_stopped.emit()
        if self._queued is not None:
            config, self._queued = self._queued, None
            self.start_job(config)

    def shutdown(self, timeout_ms: int | None = None) -> bool:
        """Cancel whatever runs and join the threads (window closing); nothing starts afterwards."""
        self._queued = None
        self._pending_model = None
        self._reopening = None
        return (self.runner.shutdown(timeout_ms) & self.loader.shutdown(timeout_ms)
                & self._reopen_slot.shutdown(timeout_ms) & self.plot_exporter.shutdown(timeout_ms))


def model_key(name: str) -> str:
    """The settings key of a model's own settings (a name may hold any character)."""
    import hashlib

    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
    return f"models/{slug}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def default_reference(model) -> str:
    """A reference image that suits ``model``: the first test digit for a digits net (trained on
    them, or a small grey input), else a photo."""
    channels, height = (tuple(model.input_size) + (3, 224))[:2]
    dataset = getattr(model, "dataset", None)
    if dataset == "digits" or (dataset is None and channels == 1 and height <= 64):
        return "digits:0"
    return "chelsea"


def _default_layer(model) -> str:
    """A meaningful first layer to invert: the middle ReLU (else the middle layer)."""
    layers = model.layers()
    relus = [l.name for l in layers if l.kind == "ReLU"]
    pick = relus or [l.name for l in layers]
    return pick[len(pick) // 2]


def spec_json(spec: ModelSpec) -> str:
    """``spec`` as the JSON the settings keep (the fields that differ from the defaults)."""
    default = ModelSpec()
    return json.dumps({k: v for k, v in to_dict(spec).items() if k == "model" or v != getattr(default, k)}, sort_keys=True)


def spec_from_json(text: Any) -> ModelSpec | None:
    """A spec :func:`spec_json` wrote, or a plain model path or name (settings before specs); None if unusable."""
    from workbench.config import from_dict
    from workbench.errors import UserError

    if not isinstance(text, str) or not text.strip():
        return None
    if not text.lstrip().startswith("{"):
        return ModelSpec(model=text)
    try:
        spec = from_dict(ModelSpec, json.loads(text))
        spec.validate()
    except (UserError, ValueError, TypeError, RecursionError):
        return None
    return spec


def config_json(config: Any) -> str:
    return json.dumps(to_dict(config) if not isinstance(config, dict) else config, indent=2)
