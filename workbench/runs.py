"""Run folders: everything a job produced, written atomically as it is produced.

::

    runs/<yyyymmdd-hhmmss>-<kind>-<short>/
      run.json      kind, config, status (running|done|cancelled|failed), versions, device,
                    started, finished, error
      metrics.json  numbers the job computed
      images/       PNGs, one per result image, plus grid.png
      tensors/      safetensors of raw results

Every write goes to a temporary file in the same folder and is renamed into place, so a
folder never holds a half-written file, whatever happens to the process.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import secrets
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

STATUSES = ("running", "done", "cancelled", "failed")


def versions() -> dict[str, str]:
    import torch
    import workbench

    out = {"workbench": workbench.__version__, "python": platform.python_version(),
           "torch": torch.__version__, "numpy": np.__version__}
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__
    except Exception:  # pragma: no cover - torchvision is a dependency
        pass
    return out


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


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


class Run:
    """An open run folder. Use :meth:`RunStore.create` to make one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def info(self) -> dict[str, Any]:
        return json.loads((self.path / "run.json").read_text())

    @property
    def status(self) -> str:
        return self.info["status"]

    def metrics(self) -> dict[str, Any]:
        p = self.path / "metrics.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def _update(self, **fields: Any) -> None:
        info = self.info
        info.update(fields)
        write_json(self.path / "run.json", info)

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
        self._update(**fields)


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


class RunStore:
    """A folder of run folders (the workspace)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def create(self, kind: str, config: dict[str, Any], device: str = "cpu", folder: str | Path | None = None) -> Run:
        """Make a new run folder; ``folder`` forces its exact path (the CLI's ``--out``)."""
        if folder is None:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            path = self.root / f"{stamp}-{kind}-{secrets.token_hex(2)}"
        else:
            path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        run = Run(path)
        write_json(path / "run.json", {
            "kind": kind, "config": config, "status": "running", "versions": versions(),
            "device": device, "started": _now(), "finished": None,
        })
        return run

    def list(self) -> list[Run]:
        """Run folders under the root, newest first."""
        if not self.root.exists():
            return []
        runs = [Run(p) for p in self.root.iterdir() if (p / "run.json").is_file()]
        return sorted(runs, key=lambda r: r.info.get("started") or "", reverse=True)

    def open(self, path: str | Path) -> Run:
        path = Path(path)
        if not (path / "run.json").is_file():
            from workbench.errors import UserError

            raise UserError(f"{path} is not a run folder (no run.json): pick a folder made by a workbench job")
        return Run(path)
