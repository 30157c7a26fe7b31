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

from workbench.config import to_dict
from workbench.jobs import CancelToken, Log
from workbench.runs import RunStore
from workbench.ui.worker import JobRunner

#: PreimageConfig's defaults (sect. 5.2 of the IJCV paper; None means "the per-layer preset").
DEFAULT_CONFIG: dict[str, Any] = {
    "model": "digits-vgg", "layer": "relu3", "method": "invert", "image": "digits:0", "channel": None,
    "neuron": None, "restarts": 4, "iters": 300, "fine_tune_iters": None, "seed": 0, "C": None,
    "alpha": 6.0, "beta": 2.0, "B": None, "B_plus": None, "V": None, "jitter": None, "mask_window": None,
    "mask_channels": None, "device": "auto", "schedule": "auto", "snapshot_every": 5, "frame_every": 10,
}

MAX_RECENT = 8

#: The type of each field when it is not None ("pair": two ints, "ints": a tuple of ints).
FIELD_TYPES: dict[str, Any] = {
    "model": str, "layer": str, "method": str, "image": str, "channel": int, "neuron": "pair", "restarts": int,
    "iters": int, "fine_tune_iters": int, "seed": int, "C": float, "alpha": float, "beta": float, "B": float,
    "B_plus": float, "V": float, "jitter": int, "mask_window": int, "mask_channels": "ints", "device": str,
    "schedule": str, "snapshot_every": int, "frame_every": int,
}
NULLABLE = {k for k, v in DEFAULT_CONFIG.items() if v is None} | {"image"}
METHODS = ("invert", "maximize", "caricature")
INT_LIMIT = 2**31 - 1  # what a spin box holds


def clean_config(config: Any) -> tuple[dict[str, Any], list[str]]:
    """The fields of ``config`` (a run.json's, saved settings) that the session can take, and the
    names of those it drops: unknown, wrong type, non-finite or out of range. Never raises."""
    import math

    if not isinstance(config, dict):
        return {}, ["the configuration"]

    def small_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and abs(v) <= INT_LIMIT

    def ok(key: str, v: Any) -> bool:
        kind = FIELD_TYPES[key]
        if v is None:
            return key in NULLABLE
        if kind is str:
            return isinstance(v, str) and (key != "method" or v in METHODS)
        if kind is int:
            return small_int(v)
        if kind is float:
            return (small_int(v) or isinstance(v, float)) and math.isfinite(v) and abs(v) < 1e12
        if kind == "pair":
            return isinstance(v, (list, tuple)) and len(v) == 2 and all(small_int(x) for x in v)
        return isinstance(v, (list, tuple)) and len(v) <= 4096 and all(small_int(x) for x in v)

    clean, dropped = {}, []
    for key, v in config.items():
        if key in FIELD_TYPES and ok(key, v):
            clean[key] = tuple(v) if isinstance(v, list) else (float(v) if FIELD_TYPES[key] is float and v is not None else v)
        elif key in FIELD_TYPES:
            dropped.append(key)
    return clean, dropped


def load_model_job(spec: str, device: str = "cpu", trust: bool = False, arch: str | None = None,
                   cancel: CancelToken | None = None):
    """Import torch and load ``spec`` (on a worker thread); returns the LoadedModel.

    A torch call cannot be interrupted: ``cancel`` is checked between the steps, so closing
    the window during start-up waits for one step at most."""
    cancel = cancel or CancelToken()
    yield Log(f"loading {spec}")
    cancel.check()
    from workbench.device import resolve_device
    from workbench.models import load_model

    cancel.check()
    model = load_model(spec, arch=arch, trust=trust, device=resolve_device(device))
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


def load_with_facts_job(spec: str, device: str = "cpu", trust: bool = False, arch: str | None = None,
                        cancel: CancelToken | None = None):
    """:func:`load_model_job`, returning ``(model, ModelFacts)``."""
    model = yield from load_model_job(spec, device, trust, arch, cancel)
    from workbench.device import available_devices
    from workbench.models import zoo_entries

    facts = ModelFacts(sum(p.numel() for p in model.module.parameters()), tuple(available_devices()),
                       tuple(zoo_entries()))
    return model, facts


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

    def __init__(self, settings: QSettings, workspace: str | Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        from workbench.runs import default_workspace

        self.workspace = Path(workspace or settings.value("workspace", str(default_workspace())))
        self.model = None
        self.model_facts: ModelFacts | None = None
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
        self.loading_spec: str | None = None
        self.run_path: Path | None = None
        self._queued: dict[str, Any] | None = None
        self._pending_model: tuple[str, bool, str | None] | None = None
        self.loader = JobRunner(self)
        self.loader.finished.connect(self._on_model_loaded)
        self.loader.failed.connect(self._on_model_failed)
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

    def apply_config(self, config: dict[str, Any]) -> None:
        """Restore a run's configuration (Runs → Reopen); loads its model if it differs. Fields
        that do not fit (wrong type, out of range) keep their current values, with a warning."""
        known, dropped = clean_config(config)
        if dropped:
            self.log(f"ignored from the run's configuration (not valid values): {', '.join(dropped)}", "warning")
        known["neuron"] = known.get("neuron") or None
        known["mask_channels"] = known.get("mask_channels") or None
        spec = known.get("model")
        self.update_config(**known)
        if spec and (self.model is None or self.model.name != spec):
            self.load_model(spec)

    def _save_config(self) -> None:
        self.settings.setValue("last/config", json.dumps(self.config))

    # --- models ----------------------------------------------------------------------
    def recent_models(self) -> list[str]:
        value = self.settings.value("recent_models", [])
        if isinstance(value, str):
            value = [value] if value else []
        return list(value or [])

    def load_model(self, spec: str, trust: bool = False, arch: str | None = None) -> None:
        """Load ``spec`` on the loader thread; a second request while loading replaces the first."""
        if self.loader.running:
            self._pending_model = (spec, trust, arch)
            self.loader.cancel()
            return
        self.load_error = None
        self.loading_spec = spec
        self.model_loading.emit(spec)
        device = self.config.get("device") or "auto"
        device = "cpu" if device == "auto" else device
        self.loader.start(lambda cancel: load_with_facts_job(spec, device, trust, arch, cancel))

    def _on_model_loaded(self, result) -> None:
        if self._pending_model is not None:
            return
        model, self.model_facts = result
        self.model = model
        self.config["model"] = model.name
        names = [l.name for l in model.layers()]
        aliases = {l.alias: l.name for l in model.layers() if l.alias}
        layer = aliases.get(self.config["layer"], self.config["layer"])
        if layer not in names:
            layer = _default_layer(model)
        self.config["layer"] = layer
        self._save_config()
        if Path(model.name).suffix:
            recent = [model.name] + [r for r in self.recent_models() if r != model.name]
            self.settings.setValue("recent_models", recent[:MAX_RECENT])
            self.recent_changed.emit(recent[:MAX_RECENT])
        self.settings.setValue("last/model", model.name)
        self.log(f"loaded {model.name}: {model.source}")
        if model.notice:
            self.log(model.notice, "warning")
        self.model_changed.emit(model)
        self.layer_changed.emit(layer)
        self.config_changed.emit(dict(self.config))

    def _on_model_failed(self, message: str) -> None:
        if self._pending_model is not None:
            return
        self.load_error = message
        self.log(message, "error")
        self.model_failed.emit(message)

    def _on_loader_stopped(self) -> None:
        if self._pending_model is not None:
            spec, trust, arch = self._pending_model
            self._pending_model = None
            self.load_model(spec, trust, arch)
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
        self.last_result = None
        self.run_path = None
        self.job_started.emit(config)
        return True

    def make_job(self, config: dict[str, Any], model, store: RunStore):
        """The job factory for a pre-image run of ``config`` (the config is built on the worker)."""

        def factory(cancel: CancelToken):
            from workbench.config import from_dict
            from workbench.preimage import PreimageConfig, preimage_job

            return preimage_job(from_dict(PreimageConfig, config), cancel=cancel, runs=store, model=model)

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
        self.log(message, "error")
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
        return self.runner.shutdown(timeout_ms) & self.loader.shutdown(timeout_ms)


def _default_layer(model) -> str:
    """A meaningful first layer to invert: the middle ReLU (else the middle layer)."""
    layers = model.layers()
    relus = [l.name for l in layers if l.kind == "ReLU"]
    pick = relus or [l.name for l in layers]
    return pick[len(pick) // 2]


def config_json(config: Any) -> str:
    return json.dumps(to_dict(config) if not isinstance(config, dict) else config, indent=2)
