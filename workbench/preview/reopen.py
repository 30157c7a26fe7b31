"""Runs → Reopen, Qt-free: a pre-image run folder's results read back (:func:`read_run`), on a
worker thread. A received folder is hostile input: nothing is read through a link out of it, and
a damaged file is a note, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.jobs import CancelToken


PREIMAGE_METHODS = ("invert", "maximize", "caricature")


@dataclass(frozen=True)
class ReopenedRun:
    """What Runs → Reopen brings back from a pre-image run folder (read on a worker thread):
    ``result`` a :class:`~workbench.preimage.solve.PreimageResult` rebuilt from its tensors, images
    and metrics (None when it kept no images), ``history`` its energies.json (``{"iterations": [...],
    "values": {key: [...]}}``, None for runs made before it was written), and ``notes`` on what
    could not be read."""

    path: Path
    config: dict
    status: str
    result: Any = None
    history: dict | None = None
    notes: tuple[str, ...] = ()


def read_run(path: str | Path) -> ReopenedRun:
    """A run folder's pre-image results as a :class:`ReopenedRun`. Reads files: call it on a
    worker. A damaged run.json is a :class:`~workbench.errors.UserError`; any other damaged file
    is a note, and what it held is left out."""
    import numpy as np

    from workbench.errors import UserError
    from workbench.runs import Run, check_contained, read_json, status_of

    path = Path(path)
    info = read_json(path / "run.json", f"{path.name}/run.json")
    check_contained(path)  # a received folder: nothing is read through a link out of it, or from a FIFO
    if not isinstance(info, dict) or not isinstance(info.get("status"), str):
        raise UserError(f"{path.name}/run.json does not describe a run (no status): the folder is damaged")
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    notes: list[str] = []
    metrics: dict = {}
    if (path / "metrics.json").is_file():
        try:
            metrics = read_json(path / "metrics.json", f"{path.name}/metrics.json")
            metrics = metrics if isinstance(metrics, dict) else {}
        except UserError as exc:
            notes.append(str(exc))
    method = config.get("method") if config.get("method") in PREIMAGE_METHODS else metrics.get("method")
    result = None
    if method in PREIMAGE_METHODS:
        images = _read_array(path / "tensors" / "preimages.safetensors", "images", notes)
        if images is None or images.ndim != 4:
            images = _read_restart_pngs(path, notes)
        if images is not None:
            from workbench.preimage.solve import PreimageResult

            reference = _read_png(path / "images" / "reference.png", notes)
            frames = _read_array(path / "tensors" / "frames.safetensors", "frames", notes)
            frames = [] if frames is None or frames.ndim != 5 else [np.float32(1 / 255) * f for f in frames]
            metrics = {"method": method, "layer": config.get("layer"), "model": config.get("model"), **metrics}
            from workbench.preimage.solve import view_images

            pixels = np.clip(images.astype(np.float32), 0.0, 1.0)  # the optimised images; shown as the run showed them
            result = PreimageResult(Run(path), view_images(pixels, metrics.get("view")), reference, metrics, frames, pixels)
        else:
            notes.append(f"{path.name} kept no images")
    history = None
    if (path / "energies.json").is_file():
        try:
            history = read_json(path / "energies.json", f"{path.name}/energies.json")
            if not (isinstance(history, dict) and isinstance(history.get("iterations"), list)
                    and isinstance(history.get("values"), dict)):
                raise UserError(f"{path.name}/energies.json does not hold energy curves")
        except UserError as exc:
            notes.append(str(exc))
            history = None
    return ReopenedRun(path, config, status_of(info), result, history, tuple(notes))


def read_run_job(path: str | Path, cancel: CancelToken | None = None) -> ReopenedRun:
    """:func:`read_run` once ``cancel`` has not been set (the window reads run folders on workers only)."""
    (cancel or CancelToken()).check()
    return read_run(path)


def _read_array(file: Path, key: str, notes: list[str]):
    """``key`` of a safetensors file as a numpy array; None (and a note) when missing or damaged."""
    if not file.is_file():
        return None
    try:
        from safetensors.numpy import load_file

        return load_file(str(file))[key]
    except Exception as exc:  # safetensors raises its own error types for damaged files
        notes.append(f"{file.parent.parent.name}/tensors/{file.name} cannot be read ({type(exc).__name__})")
        return None


def _read_png(file: Path, notes: list[str]):
    """A PNG as float32 (H, W, C) in [0, 1]; None (and a note) when missing or damaged."""
    import numpy as np

    if not file.is_file():
        return None
    from workbench.data.images import open_image
    from workbench.errors import UserError

    try:
        with open_image(file) as image:
            array = np.asarray(image.convert("L" if image.mode in ("L", "I", "I;16", "1") else "RGB"), dtype=np.float32)
    except UserError as exc:
        notes.append(f"images/{file.name} cannot be read ({' '.join(str(exc).split())[:160]})")
        return None
    array = array[:, :, None] if array.ndim == 2 else array
    return np.ascontiguousarray(array / 255.0, dtype=np.float32)


def _read_restart_pngs(path: Path, notes: list[str]):
    """images/restart_<k>.png stacked (K, H, W, C), for a run whose tensors are missing."""
    import numpy as np

    images, k = [], 1
    while (path / "images" / f"restart_{k}.png").is_file():
        image = _read_png(path / "images" / f"restart_{k}.png", notes)
        if image is None or (images and image.shape != images[0].shape):
            return None
        images.append(image)
        k += 1
    return np.stack(images) if images else None
