"""The filter-GAN's Fig. 2 (issue 22): filters drawn with one third of the input channels summed
into red, green and blue, beside the real ones; known answers on constructed filter banks, and
`workbench filtergan figure` on the shipped run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.cli import main
from workbench.filtergan.figure import relative_distances
from workbench.filtergan.plots import channel_thirds, filter_image, filters_figure, thirds_groups


def _bank(c_out: int, c_in: int, k: int = 3) -> np.ndarray:
    """Filter o, input channel c is the constant (o + 1) * (c + 1)."""
    o = np.arange(1, c_out + 1, dtype=np.float32)[:, None, None, None]
    c = np.arange(1, c_in + 1, dtype=np.float32)[None, :, None, None]
    return np.broadcast_to(o * c, (c_out, c_in, k, k)).copy()


def test_thirds_sum_the_first_middle_and_last_third_of_the_input_channels():
    w = _bank(2, 6)
    t = channel_thirds(w)
    assert t.shape == (2, 3, 3, 3)
    np.testing.assert_array_equal(t[0, :, 0, 0], [1 + 2, 3 + 4, 5 + 6])
    np.testing.assert_array_equal(t[1, :, 1, 2], [2 * (1 + 2), 2 * (3 + 4), 2 * (5 + 6)])
    # 7 channels: np.array_split's thirds 3 + 2 + 2, as thirds_groups names them
    t7 = channel_thirds(_bank(1, 7))
    np.testing.assert_array_equal(t7[0, :, 0, 0], [1 + 2 + 3, 4 + 5, 6 + 7])
    assert thirds_groups(7) == [(0, 3), (3, 5), (5, 7)] and thirds_groups(64) == [(0, 22), (22, 43), (43, 64)]
    # sets of banks (S, C_out, C_in, k, k) sum the same axis
    stacked = channel_thirds(np.stack([w, -w]))
    np.testing.assert_array_equal(stacked[1], -t)


def test_fewer_than_three_channels_are_grey_and_a_spatial_pattern_survives():
    grey = channel_thirds(_bank(1, 2))[0]
    assert np.all(grey[0] == grey[1]) and np.all(grey[1] == grey[2]) and grey[0, 0, 0] == 1 + 2
    w = np.zeros((3, 3, 3), np.float32)
    w[0, 0, 0] = 1.0   # red: top-left positive
    w[2, 2, 2] = -2.0  # blue: bottom-right negative
    img = filter_image(w)  # scaled by the largest |value| (2), 0 at mid-grey
    assert img[0, 0].tolist() == [0.75, 0.5, 0.5] and img[2, 2].tolist() == [0.5, 0.5, 0.0]
    assert img[1, 1].tolist() == [0.5, 0.5, 0.5]


def test_figure_rows_are_the_real_then_the_generated_filters_scaled_per_column():
    real = _bank(2, 6)
    generated = np.stack([real * 2.0, -real])
    grid = filters_figure(real, generated, channels=[5, 9])
    assert grid.row_labels == ["real", "z1", "z2"] and grid.col_labels == ["5", "9"]
    tiles = np.asarray([[np.asarray(t) for t in row] for row in grid.rows])  # (rows, cols, k, k, 3)
    # column 0's largest |value| is the doubled last third (2 * 11 = 22)
    np.testing.assert_allclose(tiles[0, 0, 0, 0], 0.5 + 0.5 * np.array([3, 7, 11]) / 22)
    np.testing.assert_allclose(tiles[1, 0, 0, 0, 2], 1.0)
    np.testing.assert_allclose(tiles[2, 0, 0, 0], 0.5 - 0.5 * np.array([3, 7, 11]) / 22)


def test_summing_hides_a_change_within_a_third_but_not_a_scaling():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(4, 6, 3, 3)).astype(np.float32)
    scaled = relative_distances(real, real[None] * 1.5)
    assert scaled["filter_distance_relative"] == pytest.approx(0.5, rel=1e-6)
    assert scaled["view_distance_relative"] == pytest.approx(0.5, rel=1e-6)
    swapped = real[:, [1, 0, 3, 2, 5, 4]][None]  # channels swapped inside each third
    d = relative_distances(real, swapped)
    assert d["filter_distance_relative"] > 0.5 and d["view_distance_relative"] == pytest.approx(0.0, abs=1e-6)


def test_filtergan_figure_command_on_the_shipped_run(tmp_path, capsys):
    import torch

    from workbench.filtergan.train import load_filter_gan
    from workbench.resources import shipped_filtergan_run

    out = tmp_path / "fig"
    assert main(["filtergan", "figure", "--samples", "2", "--channels", "4", "--seed", "1", "--device", "cpu",
                 "--figure-size", "column", "--quiet", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads((out / "run.json").read_text())["status"] == "done"
    assert (out / "images" / "filters_fig2.png").is_file() and (out / "images" / "filters_fig2.pdf").is_file()
    assert metrics["layer"] == "conv4" and metrics["filter_shape"] == [64, 64, 3, 3]
    assert metrics["channels_shown"] == [0, 1, 2, 3] and metrics["thirds"] == [[0, 22], [22, 43], [43, 64]]
    # the distances are those of the generator's filters for the seed's z, over all 64 channels
    fg = load_filter_gan(shipped_filtergan_run(), device="cpu")
    z = torch.randn(2, fg.config.latent_dim, generator=torch.Generator().manual_seed(1))
    want = relative_distances(fg.split.conv.weight.detach().numpy(), fg.filters(z)[0].numpy())
    assert metrics["filter_distance_relative"] == pytest.approx(want["filter_distance_relative"], rel=1e-6)
    assert printed["view_distance_relative"] == pytest.approx(want["view_distance_relative"], rel=1e-6)
    assert 0.05 < metrics["filter_distance_relative"] < 2.0  # G moves the filters, without leaving them


def test_filtergan_figure_refuses_bad_options_before_any_folder(tmp_path, capsys):
    assert main(["filtergan", "figure", "--samples", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--samples" in capsys.readouterr().err
    assert main(["filtergan", "figure", str(tmp_path), "--out", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_filtergan_figure_cli_follows_its_config():
    from workbench.cli import build_parser
    from workbench.config import defaults, options
    from workbench.config.filtergan_figure import FilterFigureConfig

    args = build_parser().parse_args(["filtergan", "figure"])
    assert args.run_dir is None  # the shipped run
    for f, meta in options(FilterFigureConfig):
        if meta["cli"] and f.name != "device":
            assert getattr(args, f.name) == defaults(FilterFigureConfig)[f.name], f.name
