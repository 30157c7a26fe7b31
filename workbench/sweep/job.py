"""The sweep job: expand the grid, skip finished cells (``--resume``), run the rest on an executor,
and keep ``results.csv`` / ``results.json`` up to date as cells finish.

::

    DIR/run.json          kind "sweep", its config and status (finalise, like every job)
    DIR/cells/<cell>/     one ordinary pre-image run folder per cell, named <model>-<layer>-C-s-<image|ch>-<hash>
    DIR/results.csv       one row per cell: config columns, metrics, status
    DIR/results.json      the same rows with the per-restart values
    DIR/metrics.json      counts: cells, done, failed, cancelled, skipped (finished before a resume)

A cell is finished when its run.json says ``done`` and its metrics.json is complete; with
``--resume`` every other cell (failed, cancelled, interrupted: its owner died, partial) is removed
and run again. Ctrl+C or a cancel stops the running cells (each marked ``cancelled`` by its own
job) and keeps every finished one.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.config import to_dict
from workbench.config.sweep import SweepConfig
from workbench.errors import UserError
from workbench.jobs import Artifact, Cancelled, CancelToken, CellDone, GridExpanded, Job, Log, Step, Throttle
from workbench.runs import (Run, RunStore, atomic_path, claim_run, finalise, owner_fields, read_json, remove_tree,
                            status_of, write_json)
from workbench.sweep.cell import ROW_METRICS, summary
from workbench.sweep.grid import Cell, expand

CONFIG_COLUMNS = ("model", "layer", "method", "C", "seed", "image", "channel")
COLUMNS = ("cell", *CONFIG_COLUMNS, "reconstruction_error_mean", "reconstruction_error_std",
           "classification_consistency", "activation", "restart_rms_mean", "iterations_used", "seconds",
           "gradient_histogram_intersection_mean", "lambda_tv_used", "reconstruction_error_nphi_mean",
           "status", "error")
#: Columns that are measurements of this machine, not results: they differ between executors.
TIMING_COLUMNS = ("seconds",)


@dataclass
class SweepResult:
    path: Path
    rows: list[dict[str, Any]]
    ran: int = 0                    # cells run this time
    skipped: int = 0                # cells finished before (--resume)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def cell_state(folder: Path) -> tuple[str, dict[str, Any] | None]:
    """(status, metrics) of a cell folder: ``missing``, ``done`` with its metrics, or why it is unfinished."""
    if not (folder / "run.json").is_file():
        return ("missing" if not folder.exists() else "unreadable"), None
    try:
        info = read_json(folder / "run.json")
        status = status_of(info)
        metrics = read_json(folder / "metrics.json") if (folder / "metrics.json").is_file() else None
    except (UserError, KeyError, TypeError):
        return "unreadable", None
    if status == "done" and isinstance(metrics, dict) and not metrics.get("partial"):
        return "done", metrics
    return (status if status != "done" else "partial"), None


def make_row(cell: Cell, result: dict[str, Any] | None, status: str, error: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"cell": cell.name, **cell.columns}
    result = result or {}
    if row["C"] is None and result.get("C_used") is not None:
        row["C"] = result["C_used"]
    for name in ROW_METRICS:
        row[name] = result.get(name)
    row.update(status=status, error=error)
    row["per_restart"] = result.get("per_restart", {})
    row["reference_prediction"] = result.get("reference_prediction")
    return row


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else repr(row[k]) if isinstance(row[k], float) else row[k])
                         for k in COLUMNS})
    with atomic_path(path / "results.csv") as tmp:
        tmp.write_text(buffer.getvalue())
    write_json(path / "results.json", {"columns": list(COLUMNS), "rows": rows})


def sweep_job(config: SweepConfig, *, cancel: CancelToken | None = None, executor=None, cells: list[Cell] | None = None,
              after=None, trust: bool = False, imports: bool = True, redo=None) -> Job:
    """Run the grid of ``config``; yields a Step per finished cell (ETA in its values), returns a
    :class:`SweepResult`. ``executor`` overrides the config's (tests, benchmarks); ``after(result,
    run)`` runs when every cell has finished (tables, figures); ``redo(folder)`` says why a cell that
    finished before must run again (what ``after`` reads of it is unreadable), or None.

    The models are ``config.model_specs()``, opened with the caller's consent as everywhere
    (:func:`workbench.models.load_model`): ``imports`` (a config handed here or typed on the command
    line names code the user chose; False for one read from a sweep folder), ``trust`` (code in files,
    and callables when ``imports`` is False)."""
    from workbench.sweep.cell import CellModels

    config = config.resolved()
    config.validate()
    cancel = cancel or CancelToken()
    models = CellModels()  # the expansion and the local executor's cells share each open model
    consent = {"trust": trust, "imports": imports}
    if cells is None:
        cells = expand(config, open_model=lambda spec: models.open(spec, "cpu", **consent))
    out = Path(config.out).expanduser()
    claim = None
    if config.resume and (out / "run.json").is_file():
        run = RunStore(out.parent).open(out)  # a received folder: no links (runs.check_contained)
        if run.info.get("kind") != "sweep":
            raise UserError(f"{out} is a {run.info.get('kind')} run, not a sweep: --resume continues a sweep folder")
        claim = claim_run(out, "resume")  # exclusive: no other process resumes or writes it meanwhile
        run._update(status="running", finished=None, error=None, resumed=True, **owner_fields())
    else:
        run = RunStore(out.parent).create("sweep", to_dict(config), device=config.device, folder=out)
    try:
        yield Artifact("run", str(out))
        return (yield from finalise(run, _sweep(config, cells, run, cancel, executor, after, models, consent, redo)))
    finally:
        if claim is not None:
            claim.release()


def _sweep(config: SweepConfig, cells: list[Cell], run: Run, cancel: CancelToken, executor, after, models,
           consent: dict[str, bool], redo=None):
    from functools import partial

    from workbench.sweep.cell import run_cell, task
    from workbench.sweep.executors import make_executor

    t0 = time.monotonic()
    out = run.path
    rows: list[dict[str, Any]] = []
    todo = []
    finished: dict[int, dict[str, Any]] = {}
    for i, cell in enumerate(cells):
        folder = out / "cells" / cell.name
        state, metrics = cell_state(folder)
        why = redo(folder) if state == "done" and redo is not None else None
        if why is not None:  # finished, but what the sweep reads of it is unreadable (a received folder)
            yield Log(f"cell {cell.name}: {why}; it runs again", "warning")
        elif state == "done":
            finished[i] = summary(metrics)
            rows.append(make_row(cell, finished[i], "done"))
            continue
        if folder.exists() or folder.is_symlink():  # failed, cancelled, interrupted or partial: run it again
            remove_tree(out, Path("cells") / cell.name)  # from scratch; never through a link
        rows.append(make_row(cell, None, "pending"))
        spec = getattr(cell, "spec", None) or {"model": cell.config["model"]}
        todo.append((i, task(cell.config, spec, **consent), str(folder)))
    skipped = len(cells) - len(todo)
    yield GridExpanded(tuple(cells), finished, str(out))
    yield Log(f"sweep of {len(cells)} cell(s)" + (f", {skipped} finished before" if skipped else "")
              + f", {len(todo)} to run on the {config.executor} executor")
    (out / "cells").mkdir(exist_ok=True)
    write_results(out, rows)
    ran = 0
    throttle = Throttle(1.0)
    if todo:
        owned = executor is None
        if owned:
            # the local executor runs the cells here: they share the models the expansion opened
            # (a pool worker or a Ray task gets its cell's spec and opens the model itself)
            function = partial(run_cell, models=models) if config.executor == "local" else None
            executor = make_executor(config.executor, threads=config.threads, workers=config.workers,
                                     address=config.address, device=config.device, function=function)
        results = executor.run(todo, cancel)
        start = time.monotonic()
        try:
            for index, outcome in results:
                cell = cells[index]
                folder = str(out / "cells" / cell.name)
                if isinstance(outcome, BaseException):
                    status = "cancelled" if isinstance(outcome, (Cancelled, KeyboardInterrupt)) else "failed"
                    rows[index] = make_row(cell, None, status, error=_describe(outcome))
                    yield CellDone(index, folder, status, error=_describe(outcome))
                    yield Log(f"cell {cell.name} {status}: {_describe(outcome)}", "warning")
                else:
                    rows[index] = make_row(cell, outcome, "done")
                    yield CellDone(index, folder, "done", summary=outcome)
                ran += 1
                elapsed = time.monotonic() - start
                rate = ran / elapsed if elapsed > 0 else 0.0
                eta = (len(todo) - ran) / rate if rate > 0 else float("nan")
                if throttle() or ran == len(todo):
                    write_results(out, rows)
                yield Step(skipped + ran, len(cells), {"cells_per_s": rate, "eta_s": eta}, stage="cells")
        finally:
            results.close()
            for i, row in enumerate(rows):  # cells stopped mid-way say so (their folders do too)
                if row["status"] == "pending":
                    state, _ = cell_state(out / "cells" / cells[i].name)
                    row["status"] = "cancelled" if state in ("cancelled", "interrupted", "running") else "pending"
            write_results(out, rows)
            if owned:
                executor.close()
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "cancelled", "pending")}
    seconds = time.monotonic() - t0
    run.write_metrics({"cells": len(cells), "ran": ran, "skipped": skipped, **counts, "seconds": round(seconds, 3),
                       "cells_per_s": ran / seconds if seconds > 0 else None})
    yield Artifact("results", str(out / "results.csv"))
    result = SweepResult(out, rows, ran, skipped, counts, seconds)
    if after is not None:
        yield from after(result, run) or ()
    elif config.preset in ("paper-fig6", "paper-cvpr2015"):
        from workbench.sweep.tables import write_cvpr2015, write_fig6

        for path in (write_fig6 if config.preset == "paper-fig6" else write_cvpr2015)(out, rows):
            yield Artifact(path.name, str(path))
    return result


def _describe(exc: BaseException) -> str:
    from workbench.runs import describe_error

    return describe_error(exc) if str(exc) else type(exc).__name__
