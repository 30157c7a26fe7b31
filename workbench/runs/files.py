"""Writes that never leave a half-written file, and reads that check what they read: atomic
renames, JSON (NaN-free, size-limited), PNGs. Used by run folders and everything they hold."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from workbench.errors import UserError


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
