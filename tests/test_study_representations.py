"""The representations study job (workbench.studies.representations) on tiny photos: its run folder, table.md,
metrics.json and figure with all three representations; cancellation; bad options refused up front."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.errors import UserError
from workbench.jobs import CancelToken, Step, run_job
from workbench.studies.representations import representations_study

# HOGgle (a learned dictionary) has its own tests with a tiny dictionary: tests/test_hoggle.py
TINY = dict(photos=("astronaut", "coins"), size=48, iters=8, normaliser_photos=("astronaut", "coins", "camera"),
            representations=("hog", "hogb", "dsift"))


def test_study_writes_table_metrics_and_figure(tmp_path):
    out = tmp_path / "study"
    metrics = run_job(representations_study(out=out, **TINY))
    assert json.loads((out / "run.json").read_text())["status"] == "done"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["complete"] and set(saved["representations"]) == {"hog", "hogb", "dsift"}
    for rep, m in saved["representations"].items():
        assert [row["photo"] for row in m["photos"]] == ["astronaut", "coins"]
        assert m["N_phi"] > 0 and np.isfinite(m["error_mean"]) and m["error_std"] >= 0
        assert m["engine"] == {"C": 100.0, "jitter": 1, "B": 80.0, "B_plus": 160.0, "V": pytest.approx(80 / 6.5)}
        for row in m["photos"]:
            assert 0 < row["error_percent"][0] < row["initial_error_percent"]  # 8 iterations already help
            assert (out / row["run"] / "run.json").is_file()
            assert json.loads((out / row["run"] / "run.json").read_text())["model"]["spec"]["model"] == rep
    # the papers' own numbers, typed from the papers (CVPR 2015 Table 1: mean ± std; IJCV 2016 Table 2: mean
    # ± 95 % interval of the mean), not read back from the module that writes them
    assert saved["paper_cvpr2015_table1"] == {"hoggle": [66.20, 13.7], "hog": [28.10, 7.9], "hogb": [10.67, 5.2],
                                              "dsift": [10.89, 7.5]}
    assert saved["paper_ijcv2016_table2"] == {"hoggle": [60.1, 2.3], "hog": [36.6, 3.4], "hogb": [11.6, 0.9],
                                              "dsift": [9.4, 1.7]}
    table = (out / "table.md").read_text()
    for text in ("| HOG |", "| HOGb |", "| DSIFT |", "28.10 ± 7.9", "10.67 ± 5.2", "10.89 ± 7.5", "66.20 ± 13.7",
                 "HOGgle (not run here)"):
        assert text in table
    from PIL import Image

    with Image.open(out / "images" / "representations.png") as figure:
        width, height = figure.size
    assert width > 4 * 48 and height > 2 * 48  # 2 photos x (original + 3 inverses)
    assert metrics["representations"]["hog"]["error_mean"] == saved["representations"]["hog"]["error_mean"]


def test_study_cancelled_keeps_what_it_has(tmp_path):
    cancel = CancelToken()
    out = tmp_path / "study"
    steps = []

    def on_event(event):
        if isinstance(event, Step):
            steps.append(event)
            if event.stage.startswith("hogb"):
                cancel.cancel()

    metrics = run_job(representations_study(out=out, cancel=cancel, **TINY), on_event)
    assert json.loads((out / "run.json").read_text())["status"] == "cancelled"
    assert not metrics["complete"] and set(metrics["representations"]) == {"hog"}
    assert "| HOG |" in (out / "table.md").read_text()
    assert steps[-1].total == 3 * 2 * 8


@pytest.mark.parametrize("bad", [dict(photos=("nosuchphoto",)), dict(photos=()), dict(size=8), dict(size=32), dict(iters=0),
                                 dict(representations=("hog", "sift")), dict(representations=("hog@4",)),
                                 dict(normaliser_photos=("astronaut",)), dict(C=-1.0)])
def test_study_refuses_bad_options_before_a_folder_exists(tmp_path, bad):
    options = {**TINY, **bad}
    with pytest.raises(UserError):
        run_job(representations_study(out=tmp_path / "study", **options))
    assert not (tmp_path / "study").exists()
