"""Issue 11: the same 2×2×2 sweep (layers × C × seeds) on digits-vgg gives identical results.csv
metrics on the local, process and Ray executors (timing columns aside)."""

from __future__ import annotations

import csv

import pytest

from workbench.config.sweep import SweepConfig
from workbench.jobs import run_job
from workbench.sweep.job import TIMING_COLUMNS, sweep_job

GRID = dict(models=("digits-vgg",), layers=("relu1", "relu3"), C=(1.0, 20.0), seeds=(0, 1), images=("digits:0",),
            restarts=1, iters=10, fine_tune_iters=0, device="cpu", threads=1)


def _table(folder):
    with open(folder / "results.csv") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for k in TIMING_COLUMNS:
            row.pop(k)
    return sorted(rows, key=lambda r: r["cell"])


def _sweep(tmp_path, executor, **kw):
    out = tmp_path / executor
    result = run_job(sweep_job(SweepConfig(**GRID, executor=executor, out=str(out), **kw)))
    assert result.counts["done"] == 8, result.rows
    return _table(out)


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    return _sweep(tmp_path_factory.mktemp("sweep"), "local")


def test_local_sweep_has_one_row_per_cell(local_table):
    assert len(local_table) == 8
    assert {(r["layer"], r["C"], r["seed"]) for r in local_table} == {
        (l, c, s) for l in ("relu1", "relu3") for c in ("1.0", "20.0") for s in ("0", "1")}
    errors = [float(r["reconstruction_error_mean"]) for r in local_table]
    assert all(0.0 < e < 2.0 for e in errors)
    assert len(set(errors)) == 8  # different seeds and C give different numbers
    assert all(r["iterations_used"] == "10" and r["status"] == "done" for r in local_table)


def test_process_executor_gives_the_same_numbers(tmp_path, local_table):
    assert _sweep(tmp_path, "process", workers=2) == local_table


def test_ray_executor_gives_the_same_numbers(tmp_path, local_table):
    pytest.importorskip("ray")
    assert _sweep(tmp_path, "ray", workers=2) == local_table
