"""Run folders as places on disk: a new folder claimed by exactly one run, a received folder that
cannot reach outside itself (no links, only plain files and folders), deletions that never pass
through a link, and the lock that makes a folder a live process writes read-only to every other
command."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

from workbench.errors import UserError
from workbench.runs.files import _reason, _umask, read_json
from workbench.runs.owner import live_owner


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
