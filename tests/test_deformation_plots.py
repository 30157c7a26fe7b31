"""The deformation and smoothness figures (matplotlib): curves and bands where the data are, the
dotted initialization level, NaN gaps, displacement arrows as vector paths."""

import numpy as np
import torch
from matplotlib.collections import PolyCollection
from matplotlib.quiver import Quiver

from workbench.deformation.job import (example_pairs, deformation_examples, pairs_figure, sensitivity_plot,
                                       smoothness_plot, smoothness_plot_of_runs)
from workbench.deformation.sensitivity import SensitivityResult
from workbench.export.plots import HLine, Series, line_figure
from workbench.export.render import save
from workbench.export.style import FigureStyle

LOW = FigureStyle(dpi=80)


def test_line_figure_draws_lines_band_and_dotted_level():
    fig = line_figure([Series("a", [0.1, 0.5, 0.3], band=[0.05, 0.05, 0.05], color=(200, 0, 0)),
                       Series("b", [0.2, 0.2, 0.2], color=(0, 0, 200))],
                      x_labels=["input", "relu1", "down1"], hlines=[HLine(0.4, "init", (0, 160, 0))],
                      title="t", xlabel="layer", ylabel="NCD", style=LOW)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert np.allclose(lines["a"].get_ydata(), [0.1, 0.5, 0.3]) and lines["a"].get_color() == (200 / 255, 0, 0)
    assert lines["init"].get_linestyle() == ":" and lines["init"].get_ydata()[0] == 0.4
    band = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(band) == 1
    ys = band[0].get_paths()[0].vertices[:, 1]
    assert ys.min() == np.float64(0.05) or np.isclose(ys.min(), 0.05)
    assert np.isclose(ys.max(), 0.55)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["input", "relu1", "down1"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "init"]


def test_line_figure_survives_nan_and_empty_band(tmp_path):
    fig = line_figure([Series("a", [np.nan, 1.0, 2.0], band=[np.nan, 0.0, 0.1])], x=[1, 2, 3], style=LOW)
    assert save(fig, tmp_path / "nan.png", LOW).stat().st_size > 1000


def test_sensitivity_plot_of_results_and_of_metrics_is_the_same_figure(tmp_path):
    """The CLI plots SensitivityResults, the Deformation dock the metrics: one figure."""
    values = np.array([[0.1, 0.3, 0.5], [0.2, 0.4, 0.4]])
    result = SensitivityResult(layers=["input", "relu1", "relu2"], values=values, seeds=[0, 1],
                               median_distance=np.ones(3), complete=True)
    rows = result.table()
    a = save(sensitivity_plot([("m", result)], "t", style=LOW), tmp_path / "a.svg", LOW).read_bytes()
    b = save(sensitivity_plot([("m", {"layers": rows})], "t", style=LOW), tmp_path / "b.svg", LOW).read_bytes()
    assert a == b


def test_smoothness_plot_of_runs_matches_the_jobs_plot(tmp_path):
    rows = [{"layer": "conv1", "ntv": 1.2}, {"layer": "conv2", "ntv": 0.8}]
    a = save(smoothness_plot([("m", rows)], 1.87, style=LOW), tmp_path / "a.svg", LOW).read_bytes()
    b = save(smoothness_plot_of_runs([("m", {"model": "m", "trained": True, "layers": rows, "init_ntv": 1.87})], LOW),
             tmp_path / "b.svg", LOW).read_bytes()
    assert a == b
    assert b"initialization (1.870)" in a


def test_displacement_arrows_are_vector_paths_over_the_original(tmp_path):
    images = torch.zeros(2, 1, 16, 16)
    examples = deformation_examples(images, grid=3, max_disp=2.0, seed=0, count=2)
    drawing = pairs_figure(examples, style=LOW)
    quivers = [c for c in drawing.ax.collections if isinstance(c, Quiver)]
    assert len(quivers) == 2 and len(drawing.images) == 6
    x0, y0, w, h = drawing.boxes[(0, 2)]
    tips = quivers[0].get_offsets() + np.stack([quivers[0].U, quivers[0].V], axis=1)
    assert (tips[:, 0] > x0).all() and (tips[:, 0] < x0 + w).all() and (tips[:, 1] > y0).all()
    svg = save(drawing.fig, tmp_path / "pairs.svg", LOW).read_text()
    assert svg.count("<image ") == 6 and ">displacement</text>" in svg
    preview = example_pairs(images, 3, 2.0, seed=0, count=1)
    assert len(preview) == 1 and preview[0].dtype == np.uint8
    red = (preview[0][..., 0] > 180) & (preview[0][..., 1] < 90) & (preview[0][..., 2] < 90)
    assert red.sum() > 20  # the arrows, drawn over a black image


def test_models_with_different_layers_share_a_depth_axis_and_say_which_is_untrained():
    runs = [("digits-vgg", {"model": "digits-vgg", "trained": True, "init_ntv": 1.86,
                            "layers": [{"layer": f"conv{k}", "ntv": 1.7} for k in range(1, 6)]}),
            ("cifar-vgg-maxpool", {"model": "cifar-vgg-maxpool", "trained": False, "init_ntv": 1.86,
                                   "layers": [{"layer": f"conv{k}_1", "ntv": 1.8} for k in range(1, 9)]})]
    fig = smoothness_plot_of_runs(runs, LOW)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(k) for k in range(1, 9)]
    assert "depth" in ax.get_xlabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "cifar-vgg-maxpool · UNTRAINED weights" in legend and "digits-vgg" in legend


def test_equivalent_layers_of_the_same_depth_keep_both_names():
    rows = lambda names: {"layers": [{"layer": n, "mean": 0.1, "std": 0.0} for n in names]}  # noqa: E731
    fig = sensitivity_plot([("maxpool", rows(["input", "down1"])), ("strided-relu", rows(["input", "down1_relu"]))],
                           style=LOW)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["input", "down1/down1_relu"]
