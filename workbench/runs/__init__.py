"""Run folders: everything a job produced, written atomically as it is produced.

::

    runs/<yyyymmdd-hhmmss>-<kind>-<short>/
      run.json      kind, config, status (running|done|cancelled|failed), versions, device,
                    started, finished, error, and the owner: pid, host, heartbeat
      metrics.json  numbers the job computed
      images/       PNGs, one per result image, plus grid.png
      tensors/      safetensors of raw results

Every write goes to a temporary file in the same folder and is renamed into place, so a
folder never holds a half-written file, whatever happens to the process. A folder is claimed
exclusively (its run.json is created with a hard link, which fails if it exists), so two
processes given the same new folder can never both write into it.

Every job ends through :func:`finalise`, the one place that turns how a job stopped into
``done``, ``cancelled`` or ``failed``. A run whose process died without finishing (``kill -9``,
power loss) still says ``running`` on disk; :attr:`Run.status` reads it as ``interrupted``
because its owner process is gone or its heartbeat has gone stale.

This package holds the run itself (:class:`Run`, :class:`RunStore`, :func:`copy_run`,
:class:`RunBackup`) and :func:`finalise`; :mod:`workbench.runs.files` the atomic writes and checked
reads, :mod:`workbench.runs.owner` who owns a running run, :mod:`workbench.runs.folders` a folder on
disk (claimed once, contained, locked). Their names are importable from here too.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from workbench.errors import UserError
# the pieces (run folders on disk, their owners, atomic files) are read here by the names older code imports
from workbench.runs.files import _dumps, _json_default, _reason, atomic_path, read_json, save_png, write_json  # noqa: F401
from workbench.runs.folders import (FolderTaken, MAX_RUN_ENTRIES, RunClaim, check_contained,  # noqa: F401
                                    check_new_folder, claim_folder, claim_run, read_only_reason, remove_tree,
                                    safe_child)
from workbench.runs.owner import (PID_MAX, STALE_SECONDS, STATUSES, _host, _now, _pid_alive,  # noqa: F401
                                  _process_start, clean_text, live_owner, owner_alive, owner_fields, status_of)

#: What :attr:`Run.status` may also say: derived when listing, never written.
DERIVED_STATUSES = ("interrupted", "unreadable")
#: Environment variable that moves the default workspace.
WORKSPACE_ENV = "WORKBENCH_WORKSPACE"
#: Seconds between heartbeats of a running job.
HEARTBEAT_SECONDS = 10.0
#: The most a run.json may hold (its config, owner and facts: a few kB in practice).
RUN_JSON_BYTES = 16 * 2**20


def versions() -> dict[str, str]:
    import torch

    from workbench.version import __version__

    out = {"workbench": __version__, "python": platform.python_version(),
           "torch": torch.__version__, "numpy": np.__version__}
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__
    except Exception:  # pragma: no cover - torchvision is a dependency
        pass
    return out


class Run:
    """An open run folder. Use :meth:`RunStore.create` to make one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        #: a job that stops early but returns what it has sets this to "cancelled" (see finalise)
        self.outcome: str | None = None

    @property
    def info(self) -> dict[str, Any]:
        info = read_json(self.path / "run.json", f"{self.path.name}/run.json", limit=RUN_JSON_BYTES)
        if not isinstance(info, dict) or not isinstance(info.get("status"), str):
            raise UserError(f"{self.path.name}/run.json does not describe a run (no status): the folder is damaged")
        return info

    @property
    def status(self) -> str:
        """The recorded status, or ``interrupted`` for a run whose owner died while running."""
        return status_of(self.info)

    def metrics(self) -> dict[str, Any]:
        p = self.path / "metrics.json"
        if not p.exists():
            return {}
        data = read_json(p, f"{self.path.name}/metrics.json")
        if not isinstance(data, dict):
            raise UserError(f"{self.path.name}/metrics.json does not hold a JSON object: the folder is damaged")
        return data

    def _update(self, **fields: Any) -> None:
        with self._lock:
            info = self.info
            info.update(fields)
            write_json(self.path / "run.json", info)

    def beat(self) -> None:
        """Refresh the heartbeat (and the owner: a resumed run has a new one)."""
        self._update(**owner_fields())

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.path / "metrics.json", metrics)

    def update_metrics(self, **metrics: Any) -> None:
        current = self.metrics()
        current.update(metrics)
        self.write_metrics(current)

    def save_image(self, name: str, image: np.ndarray) -> Path:
        path = self.path / "images" / name
        save_png(path, image)
        return path

    def save_tensors(self, name: str, tensors: dict[str, Any]) -> Path:
        from safetensors.torch import save_file

        path = self.path / "tensors" / name
        with atomic_path(path) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        return path

    def finish(self, status: str, error: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        fields: dict[str, Any] = {"status": status, "finished": _now()}
        if error is not None:
            fields["error"] = error
        try:
            self._update(**fields)
        except UserError:  # a full disk: no room for a new file, but run.json can still say how it ended
            with self._lock:
                info = self.info
                info.update(fields)
                if not _rewrite_in_place(self.path / "run.json", info):
                    raise


def _rewrite_in_place(path: Path, info: dict[str, Any]) -> bool:
    """Overwrite ``path`` with ``info`` as compact JSON, in place: the last resort of a run ending
    on a full disk, where no temporary file can be made. Only when the compact text is no longer
    than the file (so no new block is needed); a crash meanwhile leaves a damaged run.json, which
    listing shows as unreadable rather than forever running."""
    text = json.dumps(info, separators=(",", ":"), default=_json_default).encode()
    try:
        if len(text) > path.stat().st_size:
            return False
        with open(path, "r+b") as f:
            f.write(text)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        return False
    return True


@dataclass
class RunSummary:
    """One row of :meth:`RunStore.scan`: never raises, whatever the folder holds."""

    path: Path
    status: str                                  # a STATUS, "interrupted" or "unreadable"
    kind: str = "?"
    started: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def readable(self) -> bool:
        return self.status != "unreadable"


def default_workspace() -> Path:
    """Where runs go when no folder is given: ``$WORKBENCH_WORKSPACE``, else ``runs`` in the
    user's data folder (platformdirs) — never the current directory, which a launcher sets."""
    env = os.environ.get(WORKSPACE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    from workbench.resources import user_data_dir

    return user_data_dir() / "runs"


class RunStore:
    """A folder of run folders (the workspace; :func:`default_workspace` when none is given)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_workspace()

    def create(self, kind: str, config: dict[str, Any], device: str = "cpu", folder: str | Path | None = None,
               model: dict[str, Any] | None = None) -> Run:
        """Claim a new run folder; ``folder`` forces its exact path (the CLI's ``--out``).

        ``model`` is what run.json records of the model (``LoadedModel.facts()``: trained or
        not, and where its weights came from).

        The folder must be new or empty; a folder another process has claimed, a file, or a
        place that cannot be written is a one-line :class:`UserError`, and nothing is left
        behind.
        """
        info = {"kind": kind, "config": config, "status": "running", "versions": versions(),
                "device": device, "started": _now(), "finished": None, **owner_fields()}
        if model is not None:
            info["model"] = model
        text = _dumps(info)
        if folder is not None:
            return Run(claim_folder(Path(folder), text))
        for _ in range(100):
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            path = self.root / f"{stamp}-{kind}-{secrets.token_hex(2)}"
            if not path.exists():
                try:
                    return Run(claim_folder(path, text))
                except FolderTaken:
                    continue
        raise UserError(f"cannot make a new run folder in {self.root}: choose another workspace")

    def scan(self) -> list[RunSummary]:
        """Every run folder under the root, newest first; damaged ones as ``unreadable``."""
        try:
            folders = [p for p in self.root.iterdir() if not p.name.startswith(".") and (p / "run.json").is_file()]
        except OSError:
            return []
        rows = [summarise(p) for p in folders]
        return sorted(rows, key=lambda r: r.started, reverse=True)

    def list(self) -> list[Run]:
        """The readable run folders under the root, newest first."""
        return [Run(r.path) for r in self.scan() if r.readable]

    def open(self, path: str | Path) -> Run:
        path = Path(path)
        if not (path / "run.json").is_file():
            raise UserError(f"{path} is not a run folder (no run.json): pick a folder made by a workbench job")
        check_contained(path)  # a received folder: no link out of it, nothing that blocks a read
        run = Run(path)
        run.info  # a damaged run.json is reported here, in one line
        return run


def summarise(path: Path) -> RunSummary:
    """A :class:`RunSummary` of one folder; never raises, whatever the folder holds. Its kind,
    start and error are :func:`clean_text` (safe to print: they come from a file)."""
    run = Run(path)
    try:
        info = run.info
        status = status_of(info)
    except Exception as exc:  # noqa: BLE001 - one hostile folder is listed, never hides the others
        try:
            started = _dt.datetime.fromtimestamp((path / "run.json").stat().st_mtime).isoformat(timespec="seconds")
        except (OSError, ValueError, OverflowError):
            started = ""
        return RunSummary(path, "unreadable", started=started, error=clean_text(describe_error(exc)))
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    started = clean_text(info["started"], 40) if isinstance(info.get("started"), str) else ""
    error = clean_text(info["error"]) if isinstance(info.get("error"), str) else None
    return RunSummary(path, status, clean_text(info.get("kind", "?"), 40) or "?", started, config, error)


def copy_run(source: Run, store: RunStore, folder: str | Path | None = None) -> Run:
    """A new run folder holding a copy of ``source`` and saying where it came from.

    For adding results (an evaluation, new plots) to a run that must not change: the copy is
    a complete run of the same kind, claimed exclusively like any new folder.
    """
    import shutil

    hold = claim_run(source.path, "copy", write=False)  # contained, and nobody is writing it
    info = dict(source.info)
    info.update(derived_from=str(source.path), copied=_now(), **owner_fields())
    text = _dumps(info)
    if folder is not None:
        path = claim_folder(Path(folder), text)
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = claim_folder(store.root / f"{stamp}-{info.get('kind', 'run')}-{secrets.token_hex(2)}", text)
    try:
        shutil.copytree(source.path, path, symlinks=True, dirs_exist_ok=True, ignore=lambda d, names: (
            ["run.json"] if Path(d) == source.path else []) + [n for n in names if n.endswith(".part")])
    except OSError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise UserError(f"cannot copy {source.path} to {path}: {_reason(exc)}: free some space") from None
    finally:
        hold.release()
    return Run(path)


class RunBackup:
    """A copy of a finished run's files, put back if continuing it (``--resume``) fails.

    Kept in a hidden sibling folder so the run itself is never the worse for a failed
    resume: a failed job restores every file as it was and removes the ones it added; a job
    that finishes or is cancelled keeps its progress, and the copy is dropped.
    """

    def __init__(self, path: Path) -> None:
        import shutil

        self.path = check_contained(path)
        self.copy = self.path.parent / f".{self.path.name}.resume-{secrets.token_hex(3)}"
        try:
            shutil.copytree(self.path, self.copy, symlinks=True)
        except OSError as exc:
            shutil.rmtree(self.copy, ignore_errors=True)
            raise UserError(f"cannot back up {self.path} before resuming: {_reason(exc)}: free some space") from None

    def restore(self) -> None:
        """Put every file back as it was; a link found in the run (none should be) is removed,
        never followed. A restore that fails keeps the backup and says where it is."""
        import shutil

        try:
            for p in sorted(self.path.rglob("*"), reverse=True):  # rglob does not descend into links
                rel = p.relative_to(self.path)
                kept = self.copy / rel
                if p.is_symlink() or (not p.is_dir() and kept.is_dir()):
                    p.unlink()
                elif not (kept.exists() or kept.is_symlink()):
                    p.unlink() if not p.is_dir() else shutil.rmtree(p)
            for q in sorted(self.copy.rglob("*")):
                target = self.path / q.relative_to(self.copy)
                if q.is_symlink() or not q.is_file():
                    continue
                if target.is_symlink() or target.is_file():
                    target.unlink()  # a new file, never a write into whatever the old name points at
                elif target.is_dir():
                    shutil.rmtree(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(q, target, follow_symlinks=False)
        except OSError as exc:
            self.keep = True
            raise UserError(f"cannot put {self.path} back as it was ({_reason(exc)}): its files are kept in "
                            f"{self.copy}") from None

    keep = False  # set when a restore failed: the copy is then the only whole version

    def drop(self) -> None:
        import shutil

        if not self.keep:
            shutil.rmtree(self.copy, ignore_errors=True)

    def restoring(self, job, run: "Run"):
        """Drive ``job`` (a :func:`finalise` of ``run``); a run it leaves ``failed`` is restored."""
        try:
            return (yield from job)
        finally:
            try:
                failed = run.info.get("status") == "failed"
            except UserError:
                failed = True
            if failed:
                self.restore()
            self.drop()


# --- the one way a job ends ------------------------------------------------------------------

class _Heartbeat:
    """A thread that refreshes ``run.json``'s heartbeat while a job runs; joined on stop."""

    def __init__(self, run: Run, interval: float | None = None) -> None:
        self.run = run
        self.interval = HEARTBEAT_SECONDS if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat {run.path.name}", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run.beat()
            except (UserError, OSError):  # a full disk must not kill the job; listing will say stale
                pass

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def finalise(run: Run, body, *, on_stop: Callable[[str], None] | None = None, threads: int | None = None):
    """Drive the job ``body`` inside ``run`` and mark the folder with how it ended.

    The one finalisation path of every job kind: a normal return is ``done`` (or the
    ``run.outcome`` a job set when it returned partial results); :class:`Cancelled`, a
    ``KeyboardInterrupt`` on the main thread (Ctrl+C) and the driver closing the job are
    ``cancelled``; anything else the body raises — ``SystemExit``, ``GeneratorExit``, a
    ``KeyboardInterrupt`` raised by code on a worker thread — is ``failed`` with its message.
    ``on_stop(status)`` runs before the folder is marked when the job did not finish, to keep
    partial results. ``threads`` fixes the intra-op thread count while the job computes
    (:func:`workbench.threads.job_threads`); a job is stepped by one thread (the CLI's, or its
    worker's), which the count belongs to. Returns the body's result; re-raises whatever
    stopped it.
    """
    from contextlib import nullcontext

    from workbench.jobs import Cancelled, relay

    if threads is not None:
        from workbench.threads import torch_threads

        scope = torch_threads(threads)  # entered on the thread that steps the job, once
    else:
        scope = nullcontext()
    status, error = "failed", None
    closed = False

    def driver_closed() -> None:  # the driver stopped the job: Esc in the window, Ctrl+C in a loop
        nonlocal closed
        closed = True

    with _Heartbeat(run), scope:
        try:
            result = yield from relay(body, on_close=driver_closed)
            status = run.outcome or "done"
            return result
        except BaseException as exc:
            if closed or isinstance(exc, Cancelled):  # whatever closing the body raised, the driver stopped it
                status = "cancelled"
            elif isinstance(exc, KeyboardInterrupt):
                on_main = threading.current_thread() is threading.main_thread()
                status, error = ("cancelled", None) if on_main else ("failed", "KeyboardInterrupt raised by the job")
            else:
                error = describe_error(exc)
            raise
        finally:
            if status != "done" and on_stop is not None:
                try:
                    on_stop(status)
                except Exception as exc:  # the partial results are a bonus; the status is not
                    error = error or f"partial results not saved: {describe_error(exc)}"
            try:
                run.finish(status, error=error)
            except UserError:
                pass


def describe_error(exc: BaseException) -> str:
    """One line for run.json: a UserError's own message, otherwise ``Type: message``."""
    from workbench.errors import one_line

    return str(exc) if isinstance(exc, UserError) else one_line(exc)
