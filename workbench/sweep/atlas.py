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


def atlas_job(config: AtlasConfig, *, cancel: CancelToken | None = None, executor=None) -> Job:
    from workbench.sweep.job import sweep_job

    def after(result, run):
        paths = write_atlas(Path(result.path), config, result.rows)
        for p in paths:
            yield Artifact(p.name, str(p))

    return (yield from sweep_job(config.sweep(), cancel=cancel, executor=executor, after=after))


def _tile(folder: Path) -> np.ndarray | None:
    """A cell's first restart, read like any image (:func:`~workbench.data.images.open_image`)."""
    from workbench.data.images import open_image

    path = folder / "images" / "restart_1.png"
    if not path.is_file():
        return None
    with open_image(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def write_atlas(out: Path, config: AtlasConfig, rows: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    entries = []
    for row in rows:
        folder = out / "cells" / row["cell"]
        entries.append({"channel": row["channel"], "cell": f"cells/{row['cell']}", "status": row["status"],
                        "activation": row.get("activation"), "tile": _tile(folder) if row["status"] == "done" else None})
    entries.sort(key=lambda e: e["channel"])
    write_json(out / "index.json", {"model": config.model, "layer": config.layer,
                                    "channels": {str(e["channel"]): {k: e[k] for k in ("cell", "activation", "status")}
                                                 for e in entries}})
    n = len(entries)
    cols = max(1, math.ceil(math.sqrt(n)))
    rows_n = math.ceil(n / cols)
    fig = Figure(figsize=(cols * 0.9 + 0.2, rows_n * 1.0 + 0.4), layout="constrained")
    fig.suptitle(f"{config.model} {config.layer}: channels maximized", fontsize=9)
    axes = fig.subplots(rows_n, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, e in zip(axes.flat, entries):
        if e["tile"] is not None:
            ax.imshow(e["tile"], interpolation="nearest")
        ax.set_title(str(e["channel"]), fontsize=7, pad=1.5)
    paths = [out / "atlas.png", out / "atlas.pdf"]
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], dpi=150)
    return paths + [out / "index.json"]
