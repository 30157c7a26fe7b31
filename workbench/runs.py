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
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import platform
import secrets
import socket
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from workbench.errors import UserError

STATUSES = ("running", "done", "cancelled", "failed")
#: What :attr:`Run.status` may also say: derived when listing, never written.
DERIVED_STATUSES = ("interrupted", "unreadable")
#: Environment variable that moves the default workspace.
WORKSPACE_ENV = "WORKBENCH_WORKSPACE"
#: Seconds between heartbeats of a running job.
HEARTBEAT_SECONDS = 10.0
#: A running run whose owner cannot be asked (another host) is interrupted after this silence.
STALE_SECONDS = 120.0
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


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place if the block succeeds.

    An OSError (read-only or full file system, no permission) becomes a one-line
    :class:`UserError`; the temporary file is removed either way.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp_path, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {_reason(exc)}: free some space or choose a writable folder") from None
    except Exception as exc:  # safetensors' Rust writer reports a full disk as its own error, not OSError
        if type(exc).__name__ != "SafetensorError":
            raise
        raise UserError(f"cannot write {path}: {' '.join(str(exc).split())[:160]}: free some space or choose a "
                        f"writable folder") from None
    finally:
        if tmp_path is not None and tmp_path.exists():
            try:
                tmp_path.unlink()
            except OSError:
                pass


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default) + "\n"


def write_json(path: Path, data: Any) -> None:
    text = _dumps(data)  # serialise first: a value that cannot be written leaves no file behind
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: Path, what: str = "", limit: int | None = None) -> Any:
    """``json.loads`` of a file; unreadable or invalid JSON is a one-line :class:`UserError`.

    The file must be a regular file (a FIFO or a device would block or never end) of at most
    ``limit`` bytes (:data:`workbench.limits.MAX_JSON_BYTES`): its size is checked before it is read."""
    from workbench.limits import MAX_JSON_BYTES, read_regular

    path = Path(path)
    try:
        data = read_regular(path, MAX_JSON_BYTES if limit is None else limit, what or str(path))
        return json.loads(data.decode())
    except FileNotFoundError:
        raise UserError(f"{what or path} is missing ({path})") from None
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, text or a 5000-digit number
        detail = ("empty" if isinstance(exc, json.JSONDecodeError) and not exc.doc.strip()
                  else (str(exc).splitlines() or [type(exc).__name__])[0][:120])
        raise UserError(f"{what or path} is not valid JSON ({detail}): the file is damaged") from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def save_png(path: Path, image: np.ndarray) -> None:
    """Save a float image in [0, 1] (H, W) or (H, W, C) or a uint8 array as PNG, atomically."""
    from PIL import Image

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


# --- the owner of a running run --------------------------------------------------------------

def _host() -> str:
    return socket.gethostname()


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` (psutil: the kernel's, in seconds since the epoch), so a reused pid
    is not taken for the owner; None where it cannot be read."""
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.Error, OSError, OverflowError, ValueError):
        return None


#: The largest process id any kernel hands out (Linux's pid_max is at most 2**22).
PID_MAX = 2**22


def _pid_alive(pid: Any, start: Any) -> bool:
    """Whether process ``pid`` runs and started at ``start``; a pid that is not a process id
    (0 or -1 would ask about a whole process group, 2**70 does not fit) is a dead owner."""
    import psutil

    if isinstance(pid, bool) or not isinstance(pid, int) or not 1 <= pid <= PID_MAX:
        return False
    try:
        if not psutil.pid_exists(pid):
            return False
    except (psutil.Error, OSError, OverflowError, ValueError):
        return False
    if start is not None:
        now = _process_start(pid)
        if now is not None and now != start:
            return False
    return True


def owner_fields() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "pid_start": _process_start(pid), "host": _host(), "heartbeat": _now()}


def status_of(info: dict[str, Any]) -> str:
    """A run.json's status, read as ``interrupted`` when it says running but its owner is gone.
    A status that is not one of :data:`STATUSES` is a UserError (the folder is damaged)."""
    status = info.get("status") if isinstance(info, dict) else None
    if not isinstance(status, str) or status not in STATUSES:
        raise UserError(f"run.json has no valid status ({clean_text(repr(status), 40)}): the folder is damaged")
    if status == "running" and not owner_alive(info):
        return "interrupted"
    return status


def owner_alive(info: dict[str, Any]) -> bool:
    """Whether the process that wrote a ``running`` run.json can still be running it: its pid on
    this host, else a heartbeat younger than :data:`STALE_SECONDS` (with or without a time zone)."""
    pid = info.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and info.get("host") == _host():
        return _pid_alive(pid, info.get("pid_start"))
    beat = info.get("heartbeat")
    if not isinstance(beat, str) or len(beat) > 64:
        return False
    try:
        when = _dt.datetime.fromisoformat(beat)
        now = _dt.datetime.now(when.tzinfo) if when.tzinfo is not None else _dt.datetime.now()
        age = (now - when).total_seconds()
    except (ValueError, TypeError, OverflowError):
        return False
    return -STALE_SECONDS < age < STALE_SECONDS


def clean_text(text: Any, most: int = 200) -> str:
    """``text`` safe to print on a terminal: control characters (ANSI and OSC escapes, newlines,
    carriage returns, bells) become spaces or are dropped, and it is cut to ``most`` characters."""
    import re
    import unicodedata

    text = re.sub(r"(\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"            # CSI: colours, cursor moves, clear screen
                  r"|(\x1b\]|\x9d)[^\x07\x1b\x9c]*(\x07|\x1b\\|\x9c)?"  # OSC: window title, hyperlinks
                  r"|\x1b[@-Z\\-_]", "", str(text)[: most * 4])  # other escapes
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\t\n\r\v\f":
            out.append(" ")
        elif cat in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            continue
        else:
            out.append(ch)
    cleaned = " ".join("".join(out).split())
    return cleaned if len(cleaned) <= most else cleaned[: most - 1] + "…"


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


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


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


class FolderTaken(UserError):
    """The folder exists and holds something (or another process claimed it first)."""


def check_new_folder(path: str | Path) -> Path:
    """Fail early, before any work, if ``path`` cannot become a new run folder.

    :meth:`RunStore.create` checks again when it claims the folder: this is the cheap early
    refusal, not the guarantee.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file: give a new folder for the run")
    try:
        if path.is_dir() and any(path.iterdir()):
            raise FolderTaken(f"{path} is not empty: choose a new folder so no earlier run is overwritten")
    except OSError as exc:
        raise UserError(f"cannot use {path} as a run folder: {_reason(exc)}") from None
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"cannot make {path}: {parent} is a file, not a folder")
            break
    return path


def claim_folder(path: Path, run_json: str) -> Path:
    """Create ``path`` (or take it if empty) and its run.json, atomically and exclusively."""
    check_new_folder(path)
    made: list[Path] = []
    try:
        for p in reversed([path, *path.parents]):
            if not p.exists():
                try:
                    p.mkdir()
                    made.append(p)
                except FileExistsError:
                    pass
        if any(path.iterdir()):
            raise FolderTaken(f"{path} is not empty: choose a new folder so no earlier run is overwritten")
        _create_exclusive(path / "run.json", run_json)
    except FileExistsError:
        _remove_made(made)
        raise FolderTaken(f"{path} was just claimed by another run: choose a new folder") from None
    except OSError as exc:
        _remove_made(made)
        raise UserError(f"cannot write the run folder {path}: {_reason(exc)}: choose a writable folder") from None
    except BaseException:
        _remove_made(made)
        raise
    return path


def _create_exclusive(target: Path, text: str) -> None:
    """Write ``target`` whole, failing with FileExistsError if it exists (hard link, or O_EXCL)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.link(tmp, target)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS):
                raise
            with open(target, "x") as f:  # the file system has no hard links: O_EXCL instead
                f.write(text)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _remove_made(made: list[Path]) -> None:
    """Remove the folders this claim made, if they are still empty.

    Never anything inside them: a folder that is not empty holds another claimant's files
    (its temporary run.json, about to be linked), and deleting those would make it lose too.
    """
    for p in reversed(made):
        try:
            p.rmdir()
        except OSError:
            pass


def read_only_reason(path: str | Path) -> str | None:
    """Why the run folder ``path`` must not be written to, or None: shipped resources are read-only."""
    from workbench.resources import resources_root

    try:
        Path(path).resolve().relative_to(resources_root().resolve())
    except ValueError:
        pass
    else:
        return "it is shipped with the workbench"
    if not os.access(path, os.W_OK):
        return "it is not writable"
    return None


# --- a received folder cannot reach outside itself -----------------------------------------

#: Most entries :func:`check_contained` walks before it refuses a folder as too large to be a run.
MAX_RUN_ENTRIES = 1_000_000


def check_contained(root: str | Path) -> Path:
    """Refuse the run folder ``root`` if anything in it is a symbolic link or not a plain file or folder.

    Run folders are sent between people, so each is hostile input: a link in one (``cells`` → the
    user's thesis folder, ``images`` → their photos, a file → a secret) would make a resume delete
    or overwrite what it points at and a copy carry it away, and a FIFO would block a reader. The
    workbench never makes links in a run folder, so any link is refused, wherever it points.
    ``root`` itself may be a link the user typed; it is resolved. Returns the resolved folder.
    """
    root = Path(root)
    real = root.resolve()
    count = 0
    stack = [real]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as exc:
            raise UserError(f"cannot read the run folder {root}: {_reason(exc)}") from None
        for entry in listed:
            count += 1
            if count > MAX_RUN_ENTRIES:
                raise UserError(f"{root} holds more than {MAX_RUN_ENTRIES:,} files: it is not a run folder")
            rel = Path(entry.path).relative_to(real)
            if entry.is_symlink():
                raise UserError(f"{root} holds a symbolic link ({rel}): a run folder made by the workbench has none, "
                                f"and nothing is done through one; remove the link or use the original folder")
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif not entry.is_file(follow_symlinks=False):
                raise UserError(f"{root} holds {rel}, which is not a regular file (a FIFO, socket or device): "
                                f"remove it or use the original folder")
    return real


def safe_child(root: str | Path, relative: str | Path) -> Path:
    """``root / relative``, refused (one line) if any part of it below ``root`` is a symbolic link
    or it resolves outside ``root`` (``..``, an absolute path). The path need not exist."""
    root = Path(root).resolve()
    relative = Path(relative)
    path = root
    for part in relative.parts:
        if part in ("", ".", "..") or Path(part).is_absolute():
            raise UserError(f"'{relative}' is not a plain path inside the run folder {root}")
        path = path / part
        if path.is_symlink():
            raise UserError(f"{root} holds a symbolic link ({path.relative_to(root)}): a run folder made by the "
                            f"workbench has none, and nothing is done through one; remove the link")
    if root != path.resolve() and root not in path.resolve().parents:  # pragma: no cover - the parts are plain
        raise UserError(f"{relative} leads outside the run folder {root}")
    return path


def remove_tree(root: str | Path, relative: str | Path) -> None:
    """Delete ``root / relative`` (a file or a folder), never through a symbolic link: a link on
    the way is refused (:func:`safe_child`), a link inside the folder is removed, not followed."""
    import shutil

    path = safe_child(root, relative)
    if not path.exists():
        return
    try:
        if path.is_dir():
            shutil.rmtree(path)  # unlinks links inside it rather than following them
        else:
            path.unlink()
    except OSError as exc:
        raise UserError(f"cannot remove {path}: {_reason(exc)}") from None


# --- a folder owned by a live process is read-only to every other command ---------------------

class RunClaim:
    """One process's hold on an existing run folder, for as long as a command writes (or reads) it.

    Taken by :func:`claim_run`; released by :meth:`release`, by leaving the ``with`` block, or
    by the process ending (the kernel drops the lock: a killed process leaves no stale claim).
    """

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "RunClaim":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def live_owner(info: dict[str, Any]) -> str | None:
    """Who is still writing a run whose run.json is ``info`` (``process N on HOST``), or None."""
    if not isinstance(info, dict) or info.get("status") != "running" or not owner_alive(info):
        return None
    pid, host = info.get("pid"), info.get("host")
    return f"process {pid if isinstance(pid, int) else '?'} on {host if isinstance(host, str) else 'another host'}"


def claim_run(path: str | Path, doing: str, write: bool = True) -> RunClaim:
    """Claim the existing run folder ``path`` before ``doing`` something to it (resuming it,
    evaluating into it, copying it): exclusively to write, shared to read.

    A folder whose run.json says ``running`` while its owner lives (:func:`owner_alive`: the
    process on this host, or a fresh heartbeat from another) is refused, and so is one that
    another command holds: two ``--resume`` of one run, an evaluation during a resume. The hold
    is an advisory lock on the folder (``flock``; where the system has none, the run.json owner
    check alone), taken before run.json is read, so two claimants cannot both pass the check.
    The folder is checked by :func:`check_contained` first. Refusals are one line.
    """
    path = Path(path)
    if not (path / "run.json").is_file():
        raise UserError(f"{path} is not a run folder (no run.json): pick a folder made by a workbench job")
    check_contained(path)
    fd = _lock_folder(path, write, doing)
    claim = RunClaim(path, fd)
    try:
        info = read_json(path / "run.json", f"{path.name}/run.json")
    except UserError:
        claim.release()
        raise
    owner = live_owner(info)
    if owner is not None:
        claim.release()
        raise UserError(f"cannot {doing} {path}: it is still being written by {owner}; wait for it to finish or stop it")
    return claim


def _lock_folder(path: Path, write: bool, doing: str) -> int | None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the run.json owner check alone
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise UserError(f"cannot {doing} {path}: {_reason(exc)}") from None
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if write else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise UserError(f"cannot {doing} {path}: another workbench command is using it right now; "
                            f"wait for it to finish") from None
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
            return None  # a file system without locks: the run.json owner check alone
        raise UserError(f"cannot {doing} {path}: {_reason(exc)}") from None
    return fd


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
