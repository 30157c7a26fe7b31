"""IJCV Fig. 15 (workbench.studies.hog_template) at a tiny size: the template is a trained classifier that
beats chance on held-out windows, its network computes ⟨w, Φ_HOG(x)⟩/M, M follows eq. 9, training is
seeded, and the study writes its run folder and figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from workbench.errors import UserError
from workbench.jobs import run_job
from workbench.representations.hoggle import HoggleSpec, PairedDictionaryCache
from workbench.studies.hog_template import (TemplateNet, activation_range, hog_template_study, scores,
                                            train_template)

SMALL = dict(cells=4, negatives=60, seed=0)
TINY_HOGGLE = HoggleSpec(atoms=16, window=3, sides=(96,), max_windows=400, batch=64, photos=("rocket", "china"))


@pytest.fixture(scope="module")
def template():
    return train_template(**SMALL)


def test_template_is_a_trained_classifier_that_beats_chance_on_held_out_windows(template):
    m = template.metrics
    assert template.w.shape == (27, 4, 4) and template.side == 32
    assert m["test"] == {"faces": 30, "negatives": 48} and m["chance_accuracy"] == pytest.approx(48 / 78)
    assert m["test_balanced_accuracy"] > 0.8 and m["test_accuracy"] > m["chance_accuracy"] + 0.1
    assert m["test_face_recall"] > 0.7 and m["test_negative_recall"] > 0.7


def test_training_is_seeded(template):
    again = train_template(**SMALL)
    np.testing.assert_array_equal(again.w, template.w)
    other = train_template(**{**SMALL, "seed": 1})
    assert not np.array_equal(other.w, template.w)


def test_template_network_is_the_score_over_M(template):
    rng = np.random.default_rng(3)
    images = rng.random((3, 32, 32), dtype=np.float32)
    M = activation_range(template)
    net = TemplateNet(template, M).eval()
    with torch.no_grad():
        out = net(torch.from_numpy(255.0 * (images - 0.5))[:, None]).flatten().double().numpy()
    assert out.shape == (3,)  # one score per image: the template covers the whole window
    np.testing.assert_allclose(out * M, scores(template, images) - template.b, rtol=1e-4, atol=1e-4)
    # eq. 9: M = <|w|, HOG(noise)> for a white-noise image; HOG cells are >= 0, so |<w, HOG(x)>| <= M there
    noise = np.random.default_rng(0).random((1, 32, 32), dtype=np.float32)
    abs_template = type(template)(w=np.abs(template.w), b=0.0, cell_size=8, metrics={})
    assert M == pytest.approx(float(scores(abs_template, noise)[0]))
    assert abs(float(scores(template, noise)[0]) - template.b) <= M


def test_study_writes_metrics_template_and_figures(tmp_path):
    out = tmp_path / "study"
    metrics = run_job(hog_template_study(out=out, restarts=1, iters=20, hoggle=TINY_HOGGLE, figure_sizes=("column",),
                                         hoggle_cache=PairedDictionaryCache(tmp_path / "cache"), **SMALL))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["complete"] and json.loads((out / "run.json").read_text())["status"] == "done"
    assert saved["template"]["test_balanced_accuracy"] > 0.8
    am, hoggle = saved["activation_maximisation"]["score"], saved["hoggle"]["score"]
    assert len(am) == 1 and np.isfinite(hoggle)
    assert am[0] > saved["template"]["b"]  # maximisation raised the score above an empty image's (b)
    for name in ("hog_template_column.png", "hog_template_column.pdf", "hoggle.png"):  # the slide: the study's default
        assert (out / "images" / name).is_file()
    assert (out / "tensors" / "template.safetensors").is_file() and (out / "maximisation" / "run.json").is_file()
    assert metrics["maximisation_beats_hoggle"] == (am[0] > hoggle)


@pytest.mark.parametrize("bad", [dict(cells=1), dict(negatives=0), dict(restarts=0), dict(iters=0),
                                 dict(figure_sizes=("poster",)), dict(hoggle="big")])
def test_bad_options_are_refused_before_a_folder_exists(tmp_path, bad):
    with pytest.raises(UserError):
        run_job(hog_template_study(out=tmp_path / "study", **{**SMALL, **bad}))
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("extra", [["--n", "3"], ["--seeds", "2"], ["--executor", "process"]])
def test_cli_refuses_the_deformation_studies_options_in_one_line(tmp_path, capsys, extra):
    from workbench.cli import main

    assert main(["study", "hog-template", "--out", str(tmp_path / "s"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "hog-template" in err and not (tmp_path / "s").exists()
