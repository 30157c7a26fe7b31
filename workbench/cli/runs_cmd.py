"""``workbench runs``: the run folders of a workspace with their status, damaged ones included."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("runs", help="list the run folders in a folder: kind, status, start time",
                       description="List the run folders directly inside FOLDER, newest first. A run whose "
                                   "process died (kill -9, power loss) is shown as interrupted; a damaged "
                                   "folder as unreadable.")
    p.add_argument("folder", nargs="?", default=None, metavar="FOLDER",
                   help="the workspace (default: $WORKBENCH_WORKSPACE, else runs/ in your user data folder)")
    p.add_argument("--json", action="store_true", help="print a JSON list of {path, kind, status, started, error}")
    p.set_defaults(func=_runs)


def _runs(args) -> int:
    from workbench.errors import UserError
    from workbench.runs import RunStore, clean_text

    root = RunStore(args.folder).root
    if args.folder is None and not root.exists():
        print(f"no run folders yet in the workspace {root}")
        return 0
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: give the folder that holds the run folders")
    from workbench.sweep.listing import scan_workspace

    rows = scan_workspace(RunStore(root))
    if args.json:
        print(json.dumps([{"path": str(r.path), "kind": r.kind, "status": r.status, "started": r.started,
                           "error": r.error} for r in rows]))
        return 0
    if not rows:
        print(f"no run folders in {root}")
        return 0
    # sweeps/… and atlases/… by their folder; a folder's name is a file's text too (kind, start and
    # error are cleaned by runs.summarise)
    names = {r.path: clean_text(r.path.relative_to(root), 120) for r in rows}
    width = max(len(name) for name in names.values())
    for r in rows:
        note = f"  {r.error}" if r.error and r.status in ("failed", "unreadable") else ""
        print(f"{names[r.path]:<{width}}  {r.kind:<18} {r.status:<11} {r.started}{note}")
    return 0
