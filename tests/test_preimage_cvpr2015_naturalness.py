"""Issue 22 (Mahendran & Vedaldi): IJCV Fig. 7's gradient-histogram intersection, a metric of every
inversion, and the CVPR 2015 formulation as printed (eq. 3, Tables 1 and 3's N_Φ error)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import workbench
from workbench.config.preimage import PreimageConfig
from workbench.errors import UserError
from workbench.preimage import cvpr2015
from workbench.preimage.naturalness import (HIST_BINS, gradient_histogram, gradient_histogram_intersection,
                                            gradient_magnitude, histogram_intersection, mean_confidence_interval)


@pytest.fixture(scope="module")
def vgg():
    return workbench.open_model("digits-vgg", device="cpu")


def test_histogram_intersection_known_answers():
    h = np.array([0.2, 0.3, 0.5])
    assert histogram_intersection(h, h) == pytest.approx(1.0)
    assert histogram_intersection([1, 1, 0, 0], [0, 0, 2, 5]) == 0.0          # disjoint supports
    assert histogram_intersection([1, 1, 0], [0, 1, 1]) == pytest.approx(0.5)  # counts are normalised first
    with pytest.raises(ValueError):
        histogram_intersection([1, 2], [1, 2, 3])


def test_gradient_histogram_of_known_images():
    flat = np.full((8, 8, 3), 0.3)
    assert gradient_magnitude(flat).max() == 0.0
    h = gradient_histogram(flat)
    assert h.shape == (HIST_BINS,) and h[0] == 1.0 and h.sum() == pytest.approx(1.0)
    # a vertical step of 0.25 in one grey channel: 8 of 64 pixels have |∇x| = 0.25 (bin 32 of 64 over [0, 0.5])
    step = np.zeros((8, 8, 1))
    step[:, 4:] = 0.25
    h = gradient_histogram(step)
    assert h[0] == pytest.approx(56 / 64) and h[32] == pytest.approx(8 / 64)
    # noise has far larger gradients than a flat image: their histograms barely meet
    noise = np.random.default_rng(0).uniform(0, 1, (16, 16, 3))
    assert gradient_histogram_intersection(noise[None], flat[:16, :16].repeat(2, 0).repeat(2, 1)[:16, :16])[0] < 0.05
    assert gradient_histogram_intersection(np.stack([noise, noise]), noise) == [pytest.approx(1.0)] * 2


def test_confidence_interval_is_students_t():
    mean, half = mean_confidence_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert math.isnan(mean_confidence_interval([0.5])[1])


def test_an_inversion_stores_the_histogram_intersection(vgg, tmp_path):
    result = workbench.invert(vgg, "relu2", "digits:0", iters=8, restarts=2, fine_tune_iters=0, device="cpu",
                              workspace=tmp_path)
    stored = json.loads((result.run.path / "metrics.json").read_text())
    hi = stored["gradient_histogram_intersection"]
    assert len(hi) == 2 and all(0.0 < v <= 1.0 for v in hi)
    assert stored["gradient_histogram_intersection_mean"] == pytest.approx(np.mean(hi))
    assert "formulation" not in stored  # the IJCV run is unchanged


def test_cvpr_priors_known_values():
    sigma, lam_a, lam_tv = 10.0, 2.0, 3.0
    terms = cvpr2015.priors(sigma, lam_a, lam_tv, alpha=6.0, beta=2.0)
    flat = torch.full((1, 1, 4, 4), 5.0)
    r_alpha, r_tv = terms(flat)
    assert float(r_alpha) == pytest.approx(lam_a * 16 * 0.5 ** 6) and float(r_tv) == 0.0
    ramp = torch.arange(4.0).repeat(4, 1)[None, None] * sigma  # x/σ rises by 1 a column
    _, r_tv = terms(ramp)
    assert float(r_tv) == pytest.approx(lam_tv * 4 * 3)  # 3 unit differences in each of 4 rows


def test_lambda_alpha_rule_gives_the_papers_value_on_cnn_a():
    # a pixel RMS of 48.6 over 227² × 3 gives σ ≈ 1.91e4; the printed rule then gives CNN-A's 2.16e8
    sigma = 48.6 * math.sqrt(227 * 227 * 3)
    assert cvpr2015.lambda_alpha_rule(sigma, 227, 227, 6.0) == pytest.approx(cvpr2015.LAMBDA_ALPHA, rel=0.02)


def test_preset_lambda_tv_reads_table_3s_bold_choices_from_the_receptive_field():
    # CNN-A's fields on 227 px (CVPR Table 2): bold λ1 for layers 1–6, λ2 for 7–12, λ3 for 13–20
    rfs = [11, 11, 19, 19, 51, 51, 67, 67, 99, 99, 131, 131, 163, 163, 195, 355, 355, 355, 355, 355]
    kinds = ["Conv2d", "ReLU", "MaxPool2d", "LocalResponseNorm", "Conv2d", "ReLU", "MaxPool2d", "LocalResponseNorm",
             "Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d", "Linear", "ReLU", "Linear", "ReLU",
             "Linear"]
    shapes = [(96, 55, 55)] * 14 + [(256, 6, 6)] + [(4096,)] * 5
    rows = [SimpleNamespace(rf_size=r, kind=k, shape=s, stride=1) for r, k, s in zip(rfs, kinds, shapes)]
    got = [cvpr2015.preset_lambda_tv(rows, i, 227) for i in range(20)]
    assert got == [0.5] * 6 + [5.0] * 6 + [50.0] * 8


def test_mean_pairwise_distance():
    codes = [torch.tensor([0.0]), torch.tensor([3.0]), torch.tensor([4.0])]
    assert cvpr2015.mean_pairwise_distance(codes) == pytest.approx(8 / 3)


def test_cvpr2015_run_records_its_objective_and_the_n_phi_error(vgg, tmp_path):
    runs = {lam: workbench.invert(vgg, "relu2", "digits:0", iters=15, restarts=1, fine_tune_iters=0, device="cpu",
                                  workspace=tmp_path, formulation="cvpr2015", lambda_tv=lam) for lam in (0.5, 500.0)}
    m = runs[0.5].metrics
    assert (m["formulation"], m["C"], m["jitter"], m["lambda_tv"]) == ("cvpr2015", 1.0, 1, 0.5)
    assert m["N_phi"] > 0 and 0 < m["reconstruction_error_nphi_mean"] < 2
    run_json = json.loads((runs[0.5].run.path / "run.json").read_text())
    assert json.dumps(run_json).count('"formulation": "cvpr2015"') >= 1
    # a stronger TV prior leaves a smoother pre-image, farther from the code
    smooth = runs[500.0].metrics
    assert smooth["reconstruction_error_nphi_mean"] > m["reconstruction_error_nphi_mean"]
    tv = [float(np.abs(np.diff(r.pixels[0], axis=0)).mean()) for r in (runs[0.5], runs[500.0])]
    assert tv[1] < tv[0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(formulation="cvpr2015", C=20.0), "weighs the priors"),
    (dict(lambda_tv=5.0), "add --formulation cvpr2015"),
    (dict(formulation="cvpr2015", method="maximize", channel=0, image=None), "inversion objective"),
    (dict(formulation="cvpr2016"), "formulation"),
])
def test_cvpr2015_options_are_checked(kwargs, match):
    with pytest.raises(UserError, match=match):
        PreimageConfig(**{"layer": "relu2", **kwargs}).validate()


TINY_SWEEP = dict(models=("digits-vgg",), restarts=2, iters=4, fine_tune_iters=0, device="cpu", images=("digits:0",))


def test_paper_fig6_sweep_has_the_fig7_column_and_figure(tmp_path):
    from workbench.config.sweep import SweepConfig
    from workbench.jobs import run_job
    from workbench.sweep.job import sweep_job

    config = SweepConfig(**TINY_SWEEP, preset="paper-fig6", layers=("relu1",), C=(20.0,), out=str(tmp_path / "s"))
    result = run_job(sweep_job(config))
    hi = result.rows[0]["per_restart"]["gradient_histogram_intersection"]
    assert len(hi) == 2 and result.rows[0]["gradient_histogram_intersection_mean"] == pytest.approx(np.mean(hi))
    table = (tmp_path / "s" / "table.md").read_text()
    mean, half = mean_confidence_interval(hi)
    assert "hist. ∩ C=20" in table and f"{mean:.3f} ± {half:.3f}" in table
    for name in ("fig7.png", "fig7.pdf", "fig7-column.png", "fig7-slide.png"):
        assert (tmp_path / "s" / name).stat().st_size > 1000


def test_paper_cvpr2015_sweep_makes_table_3_and_the_tv_figure(tmp_path):
    from workbench.config.sweep import SweepConfig
    from workbench.jobs import run_job
    from workbench.sweep.job import sweep_job

    config = SweepConfig(**TINY_SWEEP, preset="paper-cvpr2015", layers=("relu1",), lambda_tv=(0.5, 50.0),
                         out=str(tmp_path / "s"))
    result = run_job(sweep_job(config))
    assert [r["lambda_tv"] for r in result.rows] == [0.5, 50.0]
    assert all(r["status"] == "done" and r["reconstruction_error_nphi_mean"] > 0 for r in result.rows)
    table = (tmp_path / "s" / "table3.md").read_text()
    # relu1 of digits-vgg sees 3 of 32 px: Table 3's rule makes λ1 = 0.5 its bold value
    bold = 100 * np.mean(result.rows[0]["per_restart"]["reconstruction_error_nphi"])
    assert f"**{bold:.1f} ±" in table and table.count("**") == 2
    for name in ("table3.png", "table3-column.png", "table3-slide.png", "tv.png", "tv-slide.png"):
        assert (tmp_path / "s" / name).stat().st_size > 1000


def test_cell_keys_of_ijcv_sweeps_do_not_change_with_the_new_fields():
    from workbench.config import to_dict
    from workbench.sweep.grid import LATER_FIELDS, cell_key

    d = to_dict(PreimageConfig(layer="relu1", C=20.0))
    before = {k: v for k, v in d.items() if k not in LATER_FIELDS}
    assert cell_key(d) == cell_key(before)
    assert cell_key({**d, "formulation": "cvpr2015"}) != cell_key(d)


def test_a_cvpr2015_sweep_refuses_C():
    from workbench.config.sweep import SweepConfig

    with pytest.raises(UserError, match="--lambda-tv"):
        SweepConfig(preset="paper-cvpr2015", C=(1.0,), out="x").resolved().validate()
    with pytest.raises(UserError, match="add --formulation cvpr2015"):
        SweepConfig(lambda_tv=(1.0,), out="x").resolved().validate()


def test_the_cli_offers_the_formulation_to_invert_and_sweep():
    from workbench.cli import build_parser
    from workbench.cli.preimage_cmd import _config

    parser = build_parser()
    args = parser.parse_args(["invert", "--model", "digits-vgg", "--layer", "relu2", "--formulation", "cvpr2015",
                              "--lambda-tv", "5", "--lambda-alpha", "2.16e8"])
    args.method = "invert"
    config = _config(args)
    assert (config.formulation, config.lambda_tv, config.lambda_alpha) == ("cvpr2015", 5.0, 2.16e8)
    args = parser.parse_args(["sweep", "--model", "digits-vgg", "--preset", "paper-cvpr2015", "--lambda-tv", "0.5,50",
                              "--out", "x"])
    assert tuple(args.lambda_tv) == (0.5, 50.0)
    maximize = parser.parse_args(["maximize", "--model", "digits-vgg", "--layer", "relu2", "--channel", "0"])
    assert "formulation" not in vars(maximize) and "lambda_tv" not in vars(maximize)
