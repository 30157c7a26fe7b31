"""Issue 11, "Studies on the same executors": the deformation studies run their trainings and
measurements as tasks on the local, process or Ray executor and write the same metrics.json
numbers on each (the ``seconds`` they took aside), at a tiny size."""

from __future__ import annotations

import json

import pytest

from workbench.cli import main
from workbench.studies.deformation import run_study, synthetic_study
from workbench.jobs import CancelToken, run_job

SMOOTHING = dict(seeds=1, n=4)
SYNTHETIC = dict(seeds=2, epochs=1, per_class=16, strengths=(1.0, 4.0))


def _numbers(folder) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    assert json.loads((folder / "run.json").read_text())["status"] == "done"
    metrics.pop("seconds")
    return metrics


@pytest.fixture(scope="module")
def local_smoothing(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "local"
    run_job(run_study("smoothing", out=out, device="cpu", executor="local", **SMOOTHING))
    return _numbers(out)


def test_local_smoothing_is_the_sequential_study(local_smoothing):
    assert local_smoothing["complete"] and len(local_smoothing["sigmas"]) == 5
    ntv = [v["mean_ntv"] for v in local_smoothing["sigmas"].values()]
    assert ntv == sorted(ntv, reverse=True)  # smoother filters for larger σ


def test_process_executor_from_the_cli_gives_the_same_numbers(tmp_path, local_smoothing, capsys):
    out = tmp_path / "process"
    assert main(["study", "smoothing", "--seeds", "1", "--n", "4", "--device", "cpu", "--executor", "process",
                 "--workers", "2", "--quiet", "--out", str(out)]) == 0
    assert "smoothing study" in capsys.readouterr().out
    assert _numbers(out) == local_smoothing
    assert (out / "images" / "smoothing.png").is_file()


def test_ray_executor_gives_the_same_numbers(tmp_path, local_smoothing):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    run_job(run_study("smoothing", out=out, device="cpu", executor="ray", workers=2, **SMOOTHING))
    assert _numbers(out) == local_smoothing


def test_synthetic_trainings_match_on_local_and_process(tmp_path):
    for executor in ("local", "process"):
        run_job(synthetic_study(out=tmp_path / executor, device="cpu", executor={"executor": executor, "workers": 2},
                                **SYNTHETIC))
    local, process = _numbers(tmp_path / "local"), _numbers(tmp_path / "process")
    assert local == process
    assert list(local["strengths"]) == ["1", "4"] and len(local["strengths"]["1"]["per_seed"]) == 2


def test_cancel_keeps_the_run_folder_marked(tmp_path):
    cancel = CancelToken()
    cancel.cancel()
    metrics = run_job(run_study("smoothing", out=tmp_path / "c", device="cpu", cancel=cancel, **SMOOTHING))
    assert metrics["complete"] is False and metrics["sigmas"] == {}
    assert json.loads((tmp_path / "c" / "run.json").read_text())["status"] == "cancelled"


def test_executor_options_are_checked(tmp_path, capsys):
    assert main(["study", "smoothing", "--executor", "process", "--address", "auto", "--out", str(tmp_path / "a")]) == 2
    assert "--address is for --executor ray" in capsys.readouterr().err
    assert main(["study", "smoothing", "--executor", "process", "--workers", "0", "--out", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
