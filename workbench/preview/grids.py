"""What the Sweeps and Atlas docks show, read and computed without Qt (the window runs these on
its workers): a sweep folder's rows, cells and Fig. 6 figure; an atlas folder's cached tiles, the
state of each channel, and the atlas job with its grid events carrying the tiles read on the job
thread. Moved out of ``workbench/ui`` (issue 21: ui/ holds only Qt)."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from workbench.errors import UserError


# --- sweeps ---------------------------------------------------------------------------------

def executors() -> list[str]:
    """The executors this installation can run (ray only when it is importable)."""
    return ["local", "process"] + (["ray"] if importlib.util.find_spec("ray") is not None else [])


def outcome_row(outcome: Any) -> dict[str, Any]:
    """A cell's outcome (a :class:`~workbench.jobs.CellDone`, a summary dict or the exception) as the
    row fields the table shows."""
    from workbench.jobs import CellDone

    if isinstance(outcome, CellDone):
        if outcome.status == "done":
            return {"status": "done", **(outcome.summary or {})}
        return {"status": outcome.status, "error": outcome.error or outcome.status}
    if isinstance(outcome, BaseException):
        from workbench.jobs import Cancelled

        cancelled = isinstance(outcome, (Cancelled, KeyboardInterrupt))
        return {"status": "cancelled" if cancelled else "failed", "error": str(outcome) or type(outcome).__name__}
    return {"status": "done", **(outcome or {})}


def sweep_figure(out: Path, rows: list[dict[str, Any]]) -> np.ndarray | None:
    """The sweep's figure in the paper's Fig. 6 layout (error and consistency over layers, one
    line per C; :func:`workbench.sweep.tables.write_fig6`), written into ``out`` when missing, as
    an RGB array; None when the sweep has no finished inversion to draw. Runs on a worker."""
    from workbench.data.images import open_image
    from workbench.sweep.tables import write_fig6

    png = Path(out) / "fig6.png"
    inversions = [r for r in rows if r.get("status") == "done" and r.get("method", "invert") != "maximize"
                  and r.get("reconstruction_error_mean") is not None]
    if not png.is_file():
        if not inversions:
            return None
        write_fig6(Path(out), rows)
    if not png.is_file():
        return None
    with open_image(png) as image:
        return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def read_sweep_job(out: Path, cancel=None):
    """A sweep folder as ``(out, cells, rows, figure)``: its results.json rows, each cell's name,
    columns and configuration (from the cell's run.json), and :func:`sweep_figure`."""
    from workbench.runs import read_json

    try:
        rows = read_json(Path(out) / "results.json", "results.json")
    except UserError:
        rows = []
    rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    cells = []
    for row in rows:
        if cancel is not None:
            cancel.check()
        try:
            config = read_json(Path(out) / "cells" / str(row.get("cell")) / "run.json").get("config") or {}
        except (UserError, AttributeError):
            config = {}
        cells.append(SimpleNamespace(name=str(row.get("cell")), config=config, columns=row))
    figure = sweep_figure(out, rows) if rows else None
    return Path(out), cells, rows, figure


def figure_job(out: Path, rows, cancel=None):
    return sweep_figure(out, rows)


# --- atlases --------------------------------------------------------------------------------

#: A channel whose maximization reached this activation or less is dead: no input excites it.
DEAD_ACTIVATION = 1e-12


def channel_state(status: Any, activation: Any, dead: Any = None) -> str:
    """``done``, ``dead`` (its maximization reached activation 0: the channel never fires, the
    tile is no result), ``failed`` or ``pending``. ``dead`` is the atlas job's own mark when it
    records one; a done channel whose activation is 0 (or not finite) is dead all the same."""
    if status in ("dead", "failed"):
        return str(status)
    if status != "done":
        return "failed" if status in ("cancelled", "interrupted", "unreadable", "partial") else "pending"
    if dead:
        return "dead"
    try:
        value = float(activation)
    except (TypeError, ValueError):
        return "done"
    return "dead" if not math.isfinite(value) or value <= DEAD_ACTIVATION else "done"


def atlas_folder(root: Path, model: str, layer: str, options: dict | None = None) -> Path:
    """The workspace's atlas of ``layer`` of ``model``; a model with options (weights, kwargs, ...)
    gets a folder of its own per options (one model name, other weights: another atlas)."""
    import hashlib
    import json

    from workbench.sweep.grid import _slug

    tag = "" if not options else "-" + hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]
    return Path(root) / "atlases" / f"{_slug(model)}{tag}-{_slug(layer)}"


def read_tile(folder: Path) -> np.ndarray | None:
    from workbench.sweep.atlas import _tile

    try:
        return _tile(Path(folder))
    except Exception:  # a damaged image is a missing tile
        return None


def cached_atlas_job(folder: Path, cancel=None):
    """The atlas cached in ``folder`` as {channel: (tile, activation, cell folder, config, state)}, or None
    (``state`` from :func:`channel_state`; dead and failed channels are listed with no tile)."""
    from workbench.runs import read_json

    index = folder / "index.json"
    if not index.is_file():
        return None
    try:
        channels = read_json(index).get("channels") or {}
    except Exception:
        return None
    out: dict[int, tuple] = {}
    for key, entry in channels.items():
        if cancel is not None:
            cancel.check()
        if not isinstance(entry, dict):
            continue
        state = channel_state(entry.get("status"), entry.get("activation"), entry.get("dead"))
        if state == "pending":
            continue
        cell = folder / str(entry.get("cell"))
        try:
            config = read_json(cell / "run.json").get("config")
        except Exception:
            config = None
        tile = read_tile(cell) if state == "done" else None
        out[int(key)] = (tile, entry.get("activation"), str(cell), config, state)
    return out


@dataclass(frozen=True)
class AtlasGrid:
    """The atlas's channels once the grid is expanded: their configs and the cached ones
    (``done``: {index: (tile, activation, folder)}, tiles read on the job thread)."""

    channels: list
    configs: list
    done: dict


@dataclass(frozen=True)
class AtlasTile:
    """One channel has ended: its tile (read on the job thread; None unless done), activation,
    cell folder ("" unless done) and :func:`channel_state`."""

    index: int
    tile: Any
    activation: Any
    folder: str
    state: str


def atlas_sweep_job(config, cancel, trust: bool = False, imports: bool = False):
    """:func:`~workbench.sweep.atlas.atlas_job`'s sweep, its grid events (:class:`~workbench.jobs.GridExpanded`,
    :class:`~workbench.jobs.CellDone`) relayed as :class:`AtlasGrid` and :class:`AtlasTile` with the
    tiles read here, on the job thread. ``trust``, ``imports``: the consent the window's model was
    opened with."""
    from workbench.jobs import Artifact, CellDone, GridExpanded, relay
    from workbench.sweep.atlas import write_atlas
    from workbench.sweep.job import sweep_job

    out = Path(config.out)

    def translate(event):
        if isinstance(event, GridExpanded):
            cells = event.cells
            return AtlasGrid([c.columns["channel"] for c in cells], [c.config for c in cells],
                             {i: (read_tile(out / "cells" / cells[i].name), s.get("activation"),
                                  str(out / "cells" / cells[i].name)) for i, s in event.done.items()})
        if isinstance(event, CellDone):
            row = outcome_row(event)
            state = channel_state(row["status"], row.get("activation"), row.get("dead"))
            return AtlasTile(event.index, read_tile(Path(event.folder)) if state == "done" else None,
                             row.get("activation"), event.folder if row["status"] == "done" else "", state)
        return event

    def after(result, run):
        for p in write_atlas(Path(result.path), config, result.rows):
            yield Artifact(p.name, str(p))

    job = sweep_job(config.sweep(), cancel=cancel, after=after, trust=trust, imports=imports)
    return (yield from relay(job, translate))
