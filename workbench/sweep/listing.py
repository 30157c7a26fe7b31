"""Every run of a workspace, the sweeps and atlases included.

:meth:`workbench.runs.RunStore.scan` lists the run folders directly in a workspace. The window
keeps its sweeps in ``<workspace>/sweeps/<stamp>/`` and its atlases in
``<workspace>/atlases/<model>-<layer>/`` (each a run folder of kind ``sweep``, with its cells
inside): :func:`scan_workspace` lists those too, an atlas as kind ``atlas``, so the Runs dock
and ``workbench runs`` show every run kind.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

#: Folders of a workspace that hold run folders of their own, with the kind their sweeps are
#: listed as (None: as recorded in run.json).
GROUPS: dict[str, str | None] = {"sweeps": None, "atlases": "atlas"}


def scan_workspace(store) -> list:
    """``store.scan()`` and the run folders of :data:`GROUPS`, newest first (RunSummary rows)."""
    from workbench.runs import RunStore

    rows = list(store.scan())
    for group, kind in GROUPS.items():
        for row in RunStore(Path(store.root) / group).scan():
            rows.append(dataclasses.replace(row, kind=kind) if kind and row.kind == "sweep" else row)
    return sorted(rows, key=lambda r: r.started, reverse=True)
