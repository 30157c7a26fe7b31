"""The network atlas: every selected channel of a layer maximized through the sweep machinery
(IJCV sect. 6, Figs. 16–21), as a contact sheet with channel numbers.

::

    DIR/atlas.png, atlas.pdf   the contact sheet (first restart of each channel, stretched as in the paper)
    DIR/index.json             model, layer, and per channel: its cell folder and reached activation
    DIR/cells/, results.*      the sweep itself (so --resume and every executor work)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from workbench.config.sweep import AtlasConfig
from workbench.jobs import Artifact, CancelToken, Job
from workbench.runs import atomic_path, write_json


def atlas_job(config: AtlasConfig, *, cancel: CancelToken | None = None, executor=None, trust: bool = False,
              imports: bool = True) -> Job:
    """The atlas of ``config`` through :func:`~workbench.sweep.job.sweep_job` (``trust`` and ``imports``:
    the consent to open its model, as there)."""
    from workbench.sweep.job import sweep_job

    def after(result, run):
        paths = write_atlas(Path(result.path), config, result.rows)
        for p in paths:
            yield Artifact(p.name, str(p))

    return (yield from sweep_job(config.sweep(), cancel=cancel, executor=executor, after=after, trust=trust,
                                 imports=imports, redo=unreadable_tile))


def unreadable_tile(folder: Path) -> str | None:
    """Why a finished cell's tile cannot be drawn (:func:`_tile`'s one line), or None: on ``--resume`` of a
    received atlas such a cell runs again instead of failing the whole atlas."""
    from workbench.errors import UserError

    try:
        _tile(folder)
    except UserError as exc:
        return f"its tile cannot be read ({exc})"
    return None


def _tile(folder: Path) -> np.ndarray | None:
    """A cell's first restart, read like any image (:func:`~workbench.data.images.open_image`) and
    never through a symbolic link (the cell, ``cells/`` or a file in the cell being one)."""
    from workbench.data.images import open_image
    from workbench.errors import UserError
    from workbench.runs import safe_child

    if folder.is_symlink() or folder.parent.is_symlink():
        raise UserError(f"{folder} is a symbolic link: a run folder made by the workbench has none")
    path = safe_child(folder, "images/restart_1.png")
    if not path.is_file():
        return None
    with open_image(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def is_dead(row: dict[str, Any]) -> bool:
    """A dead channel: its activation stayed at 0 (or below) in every restart — after a ReLU such a unit
    gets no gradient, so its "result" is the starting noise (issue 19)."""
    values = (row.get("per_restart") or {}).get("activation")
    if not values:
        values = [row["activation"]] if row.get("activation") is not None else []
    return bool(values) and all(v is not None and v <= 0.0 for v in values)


def tile_quality(row: dict[str, Any]) -> str:
    """What is written under a tile (issue 19), in two short lines — a tile is an inch wide: the target's
    probability (a class) or activation (a hidden channel), then its quality checks
    (:func:`~workbench.export.figures.quality_checks`: blurred and half-resolution p, or the fraction of the
    activation kept) of the first restart, the one the tile shows; '' where the cell has no checks."""
    from workbench.export.figures import quality_checks

    per = row.get("per_restart") or {}
    q = quality_checks(per, 0)
    if q["blur"] is None:
        return ""

    def first(name):
        values = per.get(name) or []
        return values[0] if values and isinstance(values[0], (int, float)) else None

    p, act = first("p_target"), first("activation")
    head = f"p {p:.2f}" if q["what"] == "p" and p is not None else (f"act {act:.3g}" if act is not None else "")
    checks = f"{q['what']} blurred {q['blur']:.2f}" + (f" · half {q['half']:.2f}" if q["half"] is not None else "")
    return f"{head}\n{checks}" if head else checks


def write_atlas(out: Path, config: AtlasConfig, rows: list[dict[str, Any]]) -> list[Path]:
    """The contact sheet and index.json of ``rows``; a tile that cannot be read (a received folder's,
    changed after the cell ran) is that channel ``failed`` with why, drawn as 'unreadable'."""
    import matplotlib

    from workbench.errors import UserError

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    entries = []
    for row in rows:
        folder = out / "cells" / row["cell"]
        dead = row["status"] == "done" and is_dead(row)
        entry = {"channel": row["channel"], "cell": f"cells/{row['cell']}", "status": row["status"],
                 "activation": row.get("activation"), "dead": dead, "tile": None, "quality": tile_quality(row)}
        if row["status"] == "done" and not dead:
            try:
                entry["tile"] = _tile(folder)
            except UserError as exc:  # one bad tile is one failed channel, not a failed atlas
                entry.update(status="failed", error=f"its tile cannot be read ({exc})")
        entries.append(entry)
    entries.sort(key=lambda e: e["channel"])
    channels = {str(e["channel"]): {k: e[k] for k in ("cell", "activation", "status", "dead", "error") if k in e}
                for e in entries}
    write_json(out / "index.json", {"model": config.model, "layer": config.layer, "channels": channels})
    n = len(entries)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows_n = math.ceil(n / cols)
    fig = Figure(figsize=(cols * 1.0 + 0.2, rows_n * 1.2 + 0.4), layout="constrained")
    fig.suptitle(f"{config.model} {config.layer}: channels maximized", fontsize=9, wrap=True)  # fits a 3-wide sheet
    axes = fig.subplots(rows_n, cols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    for ax, e in zip(axes.flat, entries):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if e["tile"] is not None:
            ax.imshow(e["tile"], interpolation="nearest")
            ax.set_xlabel(e["quality"], fontsize=5, labelpad=1.0)
        elif e["dead"] or "error" in e:   # the optimiser's starting noise is no result: say so instead of drawing it
            ax.text(0.5, 0.5, "dead" if e["dead"] else "unreadable", ha="center", va="center", fontsize=7,
                    color="0.45", transform=ax.transAxes)
        ax.set_title(str(e["channel"]), fontsize=7, pad=1.5)
    paths = [out / "atlas.png", out / "atlas.pdf"]
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], dpi=150)
    return paths + [out / "index.json"]
