"""Issue 11: sweeps as jobs — the grid, results.csv, --resume after a kill, cancel, the paper-fig6
table, and the --tol stopping rule."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from workbench.config.sweep import SweepConfig
from workbench.errors import UserError
from workbench.jobs import Cancelled, CancelToken, CellDone, GridExpanded, Step, run_job
from workbench.runs import read_json, write_json
from workbench.sweep.grid import expand, expand_layers
from workbench.sweep.job import cell_state, sweep_job

TINY = dict(models=("digits-vgg",), restarts=1, iters=10, fine_tune_iters=0, device="cpu")


def test_sweep_config_imports_no_torch():
    code = ("import sys\nfrom workbench.config.sweep import SweepConfig, AtlasConfig\n"
            "SweepConfig(out='x').validate()\nassert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_grid_expansion_and_keys():
    from workbench.models import load_model

    model = load_model("digits-vgg", device="cpu")
    assert expand_layers(("all-conv",), model.layers()) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert expand_layers(("relu2..conv3",), model.layers()) == ["relu2", "pool2", "conv3"]
    with pytest.raises(UserError):
        expand_layers(("nope",), model.layers())
    config = SweepConfig(**TINY, layers=("relu1", "relu3"), C=(1.0, 20.0), seeds=(0, 1), images=("digits:0-2",),
                         out="x")
    cells = expand(config)
    assert len(cells) == 2 * 2 * 2 * 3
    assert len({c.name for c in cells}) == len(cells)
    assert [c.name for c in expand(config)] == [c.name for c in cells]  # the same config, the same keys
    maxi = expand(SweepConfig(**TINY, method="maximize", layers=("conv1",), channels=(0, 1, 2, 3), images=(), out="x"))
    assert [c.config["channel"] for c in maxi] == [0, 1, 2, 3]
    assert not maxi[0].config["channel_mean"]  # the centre neuron, sect. 6.2
    with pytest.raises(UserError):
        expand(SweepConfig(**TINY, method="maximize", layers=("conv1",), channels=(40,), images=(), out="x"))


def test_cli_parses_the_issue_syntax():
    from workbench.cli import build_parser
    from workbench.config import from_args

    args = build_parser().parse_args(["sweep", "--model", "digits-vgg", "--method", "maximize", "--layers",
                                      "all-conv", "--channels", "0-7", "--neuron-centre", "--C", "1,20,300",
                                      "--seeds", "0,1", "--restarts", "2", "--iters", "5", "--tol", "1e-3",
                                      "--executor", "process", "--workers", "2", "--out", "d"])
    config = from_args(SweepConfig, args)
    assert config.channels == tuple(range(8)) and config.C == (1.0, 20.0, 300.0) and config.seeds == (0, 1)
    assert config.layers == ("all-conv",) and config.workers == 2 and config.tol == 1e-3
    config.validate()


def test_resume_reruns_only_unfinished_cells(tmp_path):
    out = tmp_path / "s"
    config = SweepConfig(**TINY, layers=("relu1", "relu3"), C=(1.0,), seeds=(0, 1), images=("digits:0",),
                         out=str(out))
    first = run_job(sweep_job(config))
    assert first.ran == 4 and first.counts["done"] == 4
    before = {r["cell"]: r["reconstruction_error_mean"] for r in first.rows}
    cells = sorted((out / "cells").iterdir())
    # a simulated kill: one cell still says running, its owner a dead process; another lost its metrics
    killed = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    info = read_json(cells[0] / "run.json")
    info.update(status="running", pid=int(killed.stdout), pid_start=None, finished=None)
    write_json(cells[0] / "run.json", info)
    os.unlink(cells[1] / "metrics.json")
    assert cell_state(cells[0])[0] == "interrupted" and cell_state(cells[1])[0] == "partial"
    with pytest.raises(UserError):  # without --resume the folder is not reused
        run_job(sweep_job(config))
    from dataclasses import replace

    events = []
    again = run_job(sweep_job(replace(config, resume=True)), events.append)
    assert again.ran == 2 and again.skipped == 2 and again.counts["done"] == 4
    # the typed grid events (issue 21): the grid once, before any cell, with the two reused cells'
    # summaries; then one CellDone per cell run, naming its folder
    grids = [e for e in events if isinstance(e, GridExpanded)]
    assert len(grids) == 1 and [c.name for c in grids[0].cells] == [r["cell"] for r in again.rows]
    assert sorted(grids[0].done) == [2, 3] and grids[0].folder == str(out)
    assert grids[0].done[2]["reconstruction_error_mean"] == before[again.rows[2]["cell"]]
    done = [e for e in events if isinstance(e, CellDone)]
    assert events.index(grids[0]) < events.index(done[0])
    assert [(e.index, e.status, e.error) for e in done] == [(0, "done", None), (1, "done", None)]
    assert done[0].folder == str(out / "cells" / again.rows[0]["cell"])
    assert done[1].summary["reconstruction_error_mean"] == before[again.rows[1]["cell"]]
    assert {r["cell"]: r["reconstruction_error_mean"] for r in again.rows} == before  # same seeds, same numbers
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert read_json(out / "run.json")["status"] == "done"
    nothing = run_job(sweep_job(replace(config, resume=True)))
    assert nothing.ran == 0 and nothing.skipped == 4


def test_cancel_keeps_finished_cells_and_resume_finishes(tmp_path):
    out = tmp_path / "s"
    config = SweepConfig(**TINY, layers=("relu1",), C=(1.0, 20.0), seeds=(0, 1), images=("digits:0",), out=str(out))
    token = CancelToken()
    steps = []

    def on_event(event):
        if isinstance(event, Step):
            steps.append(event)
            assert "eta_s" in event.values and event.total == 4
            if event.iteration == 2:
                token.cancel()

    with pytest.raises(Cancelled):
        run_job(sweep_job(config, cancel=token), on_event)
    assert read_json(out / "run.json")["status"] == "cancelled"
    rows = read_json(out / "results.json")["rows"]
    assert [r["status"] for r in rows].count("done") == 2
    states = sorted(cell_state(p)[0] for p in (out / "cells").iterdir())
    assert states.count("done") == 2 and set(states) <= {"done", "cancelled"}
    from dataclasses import replace

    again = run_job(sweep_job(replace(config, resume=True)))
    assert again.ran == 2 and again.skipped == 2


def test_paper_fig6_preset_writes_table_and_figure(tmp_path):
    out = tmp_path / "f6"
    config = SweepConfig(**TINY, preset="paper-fig6", layers=("relu1", "pool5"), C=(1.0, 20.0), images=("digits:0",),
                         out=str(out))
    result = run_job(sweep_job(config))
    assert result.counts["done"] == 4
    table = (out / "table.md").read_text()
    assert "relu1" in table and "pool5" in table and "C=20" in table and "±" in table
    with open(out / "table.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["layer"] for r in rows} == {"relu1", "pool5"}
    assert (out / "fig6.png").stat().st_size > 1000 and (out / "fig6.pdf").is_file()
    # the default C values of the preset are the paper's (sect. 5.2.1)
    assert SweepConfig(preset="paper-fig6", out="x").resolved().C == (1.0, 20.0, 100.0, 300.0)


def test_tol_stops_early_within_the_error_bound(tmp_path):
    from workbench.config.preimage import PreimageConfig
    from workbench.models import load_model
    from workbench.preimage.solve import preimage_job

    model = load_model("digits-vgg", device="cpu")
    base = dict(layer="relu1", iters=300, fine_tune_iters=0, restarts=1, device="cpu", frame_every=0)
    fixed = run_job(preimage_job(PreimageConfig(**base), out=tmp_path / "fixed", model=model)).metrics
    early = run_job(preimage_job(PreimageConfig(**base, tol=1e-3), out=tmp_path / "tol", model=model)).metrics
    assert fixed["iterations_used"] == 300
    assert 50 <= early["iterations_used"] < 300
    # stated bound: the early stop's error stays within 25 % (relative) + 0.01 of the full schedule's
    assert early["reconstruction_error_mean"] <= 1.25 * fixed["reconstruction_error_mean"] + 0.01
