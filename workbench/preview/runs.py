"""The Runs dock's data, Qt-free: the workspace's runs with the numbers the table shows
(:func:`scan_table`), and one folder's details and preview (:func:`run_details`). Read on a worker
thread; a damaged or hostile folder is a row or a note, never an error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.jobs import CancelToken


def scan_table(store, cache: dict) -> tuple[list, dict]:
    """The workspace's runs (:meth:`RunStore.scan`) and, per readable run, the numbers of its
    metrics.json the table shows: ``{path: (mtime_ns, {"C", "error", "model"})}``. ``cache`` is
    a previous answer: a metrics.json that has not changed is not read again. Never raises."""
    from workbench.errors import UserError
    from workbench.runs import read_json

    from workbench.sweep.listing import scan_workspace

    rows = scan_workspace(store)
    numbers: dict[str, tuple] = {}
    for r in rows:
        if not r.readable:
            continue
        file = r.path / "metrics.json"
        try:
            stamp = file.stat().st_mtime_ns
        except OSError:
            stamp = None
        key = str(r.path)
        if key in cache and cache[key][0] == stamp:
            numbers[key] = cache[key]
            continue
        found: dict = {}
        if stamp is not None:
            try:
                metrics = read_json(file, "metrics.json")
            except UserError:
                metrics = None
            if isinstance(metrics, dict):
                found = {k: metrics.get(src) for k, src in (("C", "C"), ("error", "reconstruction_error_mean"),
                                                            ("model", "model"))}
        numbers[key] = (stamp, found)
    return rows, numbers


def scan_table_job(store, cache: dict, cancel: CancelToken):
    cancel.check()
    return scan_table(store, cache)


#: What a run shows when it has no pre-image grid, first found first: an atlas's contact sheet,
#: a sweep's figure, a measurement's plot.
PREVIEWS = ("atlas.png", "fig6.png", "images/sensitivity.png", "images/smoothness.png")
#: A run stopped before its grid was drawn shows its restarts side by side, at most this many.
MAX_RESTART_PREVIEWS = 8


def run_details(path: str | Path) -> dict:
    """:func:`workbench.preview.compute.run_details`, and for a run without a pre-image grid the
    first of :data:`PREVIEWS`, else its restarts side by side (a cancelled run keeps them)."""
    from workbench.data.images import open_image
    from workbench.errors import UserError
    from workbench.preview.compute import PREVIEW_PIXELS, run_details as details

    found = details(path)
    if found["grid"] is not None or (Path(path) / "images" / "grid.png").exists():
        return found
    folder = Path(path)
    files = [folder / name for name in PREVIEWS if (folder / name).is_file()][:1]
    if not files:
        for k in range(1, MAX_RESTART_PREVIEWS + 1):
            if not (folder / "images" / f"restart_{k}.png").is_file():
                break
            files.append(folder / "images" / f"restart_{k}.png")
    parts = []
    try:
        for file in files:
            if file.is_symlink():
                raise UserError("it is a link")
            with open_image(file, PREVIEW_PIXELS) as image:
                parts.append(np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8)))
    except (UserError, OSError, ValueError) as exc:
        return {**found, "note": f"{files[len(parts)].relative_to(folder)} cannot be shown: {' '.join(str(exc).split())[:160]}"}
    if parts:
        found = {**found, "grid": side_by_side(parts), "note": ""}
    return found


def details_job(path, cancel: CancelToken):
    cancel.check()
    return run_details(path)


def side_by_side(parts: list[np.ndarray], gap: int = 4) -> np.ndarray:
    """RGB images next to each other on white, at the first one's height (others cropped or padded)."""
    h = parts[0].shape[0]
    out = []
    for p in parts:
        q = np.full((h, p.shape[1], 3), 255, np.uint8)
        q[:min(h, p.shape[0])] = p[:h]
        out += [q, np.full((h, gap, 3), 255, np.uint8)]
    return np.ascontiguousarray(np.concatenate(out[:-1], axis=1))
