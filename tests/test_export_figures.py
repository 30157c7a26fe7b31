"""Labelled figure grids (PNG/SVG/PDF) and GIF animations, drawn in the core with PIL."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from workbench.errors import UserError
from workbench.export.animation import save_gif
from workbench.export.figures import FigureGrid, result_figure, save_figure


def _figure():
    rng = np.random.default_rng(0)
    images = rng.random((3, 16, 16, 1)).astype(np.float32)
    reference = np.zeros((16, 16, 1), np.float32)
    reference[4:12, 4:12] = 1.0
    return result_figure(images, reference, layer="relu3", C=300.0, title="digits-vgg · relu3 · invert"), images


def test_png_has_tiles_at_the_chosen_resolution(tmp_path):
    figure, images = _figure()
    small = np.asarray(Image.open(save_figure(figure, tmp_path / "a.png", tile=64)))
    big = Image.open(save_figure(figure, tmp_path / "b.png", tile=256, dpi=150))
    assert big.info["dpi"][0] == pytest.approx(150, abs=0.5)
    big = np.asarray(big)
    assert big.shape[0] > 3.5 * small.shape[0] / 1.5 and big.shape[1] > 3 * small.shape[1] / 1.5
    assert figure.col_labels == ["reference", "restart 1", "restart 2", "restart 3"]
    assert figure.row_labels == ["relu3  C=300"]
    # the reference tile is upscaled with nearest neighbours: its white square is in the figure
    assert (small == 255).all(axis=2).sum() > 32 * 32


def test_svg_keeps_labels_as_text_and_tiles_as_images(tmp_path):
    figure, _ = _figure()
    text = save_figure(figure, tmp_path / "grid.svg", tile=100).read_text()
    assert text.startswith("<svg") and text.count("<image ") == 4
    for label in ("reference", "restart 1", "restart 3", "relu3  C=300", "digits-vgg · relu3 · invert"):
        assert f">{label}</text>" in text
    assert 'width="100" height="100"' in text


def test_pdf_is_a_pdf(tmp_path):
    figure, _ = _figure()
    path = save_figure(figure, tmp_path / "grid.pdf", tile=80)
    assert path.read_bytes()[:5] == b"%PDF-" and path.stat().st_size > 1000


def test_never_overwrites_without_permission(tmp_path):
    figure, _ = _figure()
    path = tmp_path / "grid.png"
    path.write_bytes(b"keep me")
    with pytest.raises(UserError, match="exists"):
        save_figure(figure, path)
    assert path.read_bytes() == b"keep me"
    save_figure(figure, path, overwrite=True)
    assert Image.open(path).format == "PNG"


def test_bad_targets_are_user_errors(tmp_path):
    figure, _ = _figure()
    with pytest.raises(UserError, match=".png, .svg or .pdf"):
        save_figure(figure, tmp_path / "grid.jpg")
    with pytest.raises(UserError, match="does not exist"):
        save_figure(figure, tmp_path / "missing" / "grid.png")
    assert not list(tmp_path.iterdir())


def test_gif_has_one_frame_per_kept_iteration(tmp_path):
    frames = [np.full((2, 8, 8, 1), v, np.float32) for v in (0.0, 0.5, 1.0)]
    path = save_gif(frames, tmp_path / "opt.gif", fps=5, tile=32, iterations=[1, 11, 20])
    with Image.open(path) as im:
        assert im.n_frames == 3 and im.info["duration"] == 200 and im.info["loop"] == 0
        means = []
        for i in range(3):
            im.seek(i)
            rgb = np.asarray(im.convert("RGB"))
            means.append(rgb.mean())
    assert means[0] < means[1] < means[2]  # the tiles brighten with the frames
    with pytest.raises(UserError, match="exists"):
        save_gif(frames, path)
    with pytest.raises(UserError, match="no frames"):
        save_gif([], tmp_path / "empty.gif")


def test_empty_cells_are_allowed():
    grid = FigureGrid([[np.ones((4, 4, 3)), None], [None, np.zeros((4, 4, 3))]], row_labels=["a", "b"])
    image = grid.render(tile=20)
    assert image.dtype == np.uint8 and image.shape[2] == 3
