"""The PIL plots behind the deform/study figures: size, colours where the data are, bands, arrows."""

import numpy as np

from workbench.export.plots import HLine, Series, draw_displacement, hstack, line_plot


def _has_color(img, color, tol=10):
    return bool(np.any(np.all(np.abs(img.astype(int) - np.array(color)) <= tol, axis=-1)))


def test_line_plot_draws_lines_band_and_dotted_level():
    img = line_plot([Series("a", [0.1, 0.5, 0.3], band=[0.05, 0.05, 0.05], color=(200, 0, 0)),
                     Series("b", [0.2, 0.2, 0.2], color=(0, 0, 200))],
                    x_labels=["input", "relu1", "down1"], hlines=[HLine(0.4, "init", (0, 160, 0))],
                    title="t", xlabel="layer", ylabel="NCD", size=(640, 400))
    assert img.shape == (400, 640, 3) and img.dtype == np.uint8
    assert _has_color(img, (200, 0, 0)) and _has_color(img, (0, 0, 200)) and _has_color(img, (0, 160, 0))
    band = np.all(np.abs(img.astype(int) - np.array([233, 177, 177])) <= 25, axis=-1)  # red at alpha 60 on white
    assert band.sum() > 100


def test_line_plot_survives_nan_and_empty_band():
    img = line_plot([Series("a", [np.nan, 1.0, 2.0], band=[np.nan, 0.0, 0.1])], x=[1, 2, 3])
    assert img.shape[2] == 3


def test_displacement_arrows_on_upscaled_image():
    field = np.zeros((16, 16, 2))
    field[..., 0] = 2.0
    out = draw_displacement(np.zeros((16, 16)), field, scale=4, every=4)
    assert out.shape == (64, 64, 3)
    assert _has_color(out, (255, 40, 40))
    still = draw_displacement(np.zeros((16, 16)), np.zeros((16, 16, 2)), scale=4, every=4)
    assert _has_color(out, (255, 40, 40)) and out.astype(int).sum() > still.astype(int).sum()
    assert hstack([out, out], gap=6).shape == (64, 134, 3)
