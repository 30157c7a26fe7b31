"""Labelled figure grids (PNG/SVG/PDF through matplotlib) and animations (GIF/MP4 through imageio)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from workbench.errors import UserError
from workbench.export.animation import save_animation, save_gif
from workbench.export.figures import FigureGrid, preimage_figure, result_figure, save_figure
from workbench.export.style import FigureStyle

LOW = 100  # dpi: enough to see the layout, quick to write


def _figure():
    rng = np.random.default_rng(0)
    images = rng.random((3, 16, 16, 1)).astype(np.float32)
    reference = np.zeros((16, 16, 1), np.float32)
    reference[4:12, 4:12] = 1.0
    return result_figure(images, reference, layer="relu3", C=300.0, title="digits-vgg · relu3 · invert"), images


def test_png_width_is_the_chosen_size_at_the_chosen_dpi(tmp_path):
    figure, _ = _figure()
    for size, inches in (("column", 3.5), ("page", 7.0)):
        path = save_figure(figure, tmp_path / f"{size}.png", style=FigureStyle(size, dpi=LOW))
        with Image.open(path) as im:
            assert im.width == int(inches * LOW) and im.info["dpi"][0] == pytest.approx(LOW, abs=0.5)
    with Image.open(save_figure(figure, tmp_path / "slide.png", style=FigureStyle("slide"))) as im:
        assert im.size == (1920, 1080)  # 16:9 at the slide's default 144 dpi


def test_tile_option_sets_the_pixels_per_tile(tmp_path):
    figure, _ = _figure()
    small = np.asarray(Image.open(save_figure(figure, tmp_path / "a.png", style=FigureStyle(dpi=LOW), tile=40)))
    big = np.asarray(Image.open(save_figure(figure, tmp_path / "b.png", style=FigureStyle(dpi=LOW), tile=160)))
    assert big.shape[1] > 3 * small.shape[1]
    assert figure.col_labels == ["reference", "restart 1", "restart 2", "restart 3"]
    assert figure.row_labels == ["C = 300"]  # the layer is in the title
    # the reference tile is shown pixel for pixel (nearest neighbour): its white square is in the figure
    assert (big == 255).all(axis=2).sum() > 4 * 4 * 100


def test_svg_keeps_labels_as_text_and_tiles_as_images(tmp_path):
    figure, _ = _figure()
    text = save_figure(figure, tmp_path / "grid.svg").read_text()
    assert "<svg" in text and text.count("<image ") == 4
    for label in ("reference", "restart 1", "restart 3", "C = 300", "digits-vgg · relu3 · invert"):
        assert f">{label}</text>" in text
    assert "image-rendering:pixelated" in text  # square pixels when scaled in a browser or editor


def test_pdf_is_a_pdf(tmp_path):
    figure, _ = _figure()
    path = save_figure(figure, tmp_path / "grid.pdf")
    assert path.read_bytes()[:5] == b"%PDF-" and path.stat().st_size > 1000


def test_the_same_figure_gives_the_same_bytes(tmp_path):
    """The CLI's run folder and the window's export draw the same figure: byte for byte."""
    rng = np.random.default_rng(1)
    metrics = {"model": "digits-vgg", "trained": True, "layer": "relu3", "method": "maximize", "channel": 2,
               "neuron": [3, 3], "C": 12.0}
    images = rng.random((2, 8, 8, 3)).astype(np.float32)
    for fmt in ("png", "pdf", "svg"):
        a = save_figure(preimage_figure(images, None, metrics), tmp_path / f"a.{fmt}", style=FigureStyle(dpi=LOW))
        b = save_figure(preimage_figure(images, None, metrics), tmp_path / f"b.{fmt}", style=FigureStyle(dpi=LOW))
        assert a.read_bytes() == b.read_bytes(), fmt
    assert ">digits-vgg · relu3 · maximize channel 2, neuron (3, 3)</text>" in (tmp_path / "a.svg").read_text()


def test_never_overwrites_without_permission(tmp_path):
    figure, _ = _figure()
    path = tmp_path / "grid.png"
    path.write_bytes(b"keep me")
    with pytest.raises(UserError, match="exists"):
        save_figure(figure, path)
    assert path.read_bytes() == b"keep me"
    save_figure(figure, path, overwrite=True, style=FigureStyle(dpi=LOW))
    assert Image.open(path).format == "PNG"


def test_bad_targets_are_user_errors(tmp_path):
    figure, _ = _figure()
    with pytest.raises(UserError, match=".png, .svg or .pdf"):
        save_figure(figure, tmp_path / "grid.jpg")
    with pytest.raises(UserError, match="does not exist"):
        save_figure(figure, tmp_path / "missing" / "grid.png")
    with pytest.raises(UserError, match="figure size"):
        FigureStyle("poster")
    with pytest.raises(UserError, match="figure-dpi"):
        FigureStyle(dpi=5)
    assert not list(tmp_path.iterdir())


def test_gif_has_one_labelled_frame_per_kept_iteration(tmp_path):
    frames = [np.full((2, 8, 8, 1), v, np.float32) for v in (0.0, 0.5, 1.0)]
    path = save_gif(frames, tmp_path / "opt.gif", fps=5, tile=32, iterations=[1, 11, 20], hold=0)
    with Image.open(path) as im:
        assert im.n_frames == 3 and im.info["duration"] == 200 and im.info["loop"] == 0
        pictures = []
        for i in range(3):
            im.seek(i)
            pictures.append(np.asarray(im.convert("RGB")).astype(int))
    assert pictures[0].mean() < pictures[1].mean() < pictures[2].mean()  # the tiles brighten with the frames
    # the frames differ outside the tiles too: the iteration label changes
    top = pictures[0].shape[0] // 4
    assert (pictures[0][:top] != pictures[2][:top]).any()
    with pytest.raises(UserError, match="exists"):
        save_gif(frames, path)
    with pytest.raises(UserError, match="no frames"):
        save_gif([], tmp_path / "empty.gif")


def test_mp4_holds_every_frame(tmp_path):
    import imageio.v2 as imageio

    frames = [np.full((3, 8, 8, 3), v, np.float32) for v in np.linspace(0, 1, 6)]
    path = save_animation(frames, tmp_path / "opt.mp4", fps=6, tile=30, iterations=list(range(1, 61, 10)), hold=0)
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        assert reader.get_meta_data()["fps"] == pytest.approx(6)
        shown = [frame for frame in reader]
    finally:
        reader.close()
    assert len(shown) == 6 and shown[0].shape[0] % 2 == 0 and shown[0].shape[1] % 2 == 0
    assert shown[0].mean() < shown[-1].mean()


def test_empty_cells_are_allowed():
    grid = FigureGrid([[np.ones((4, 4, 3)), None], [None, np.zeros((4, 4, 3))]], row_labels=["a", "b"])
    image = grid.render(tile=20)
    assert image.dtype == np.uint8 and image.shape[2] == 3
    with pytest.raises(UserError, match="empty"):
        FigureGrid([[None]]).render(tile=20)


def test_a_slide_fits_a_tall_grid_into_16_9():
    tiles = [[np.zeros((8, 8))] * 3 for _ in range(9)]
    drawing = FigureGrid(tiles, row_labels=[f"row {i}" for i in range(9)], title="tall").draw(FigureStyle("slide"))
    assert drawing.fig.get_size_inches() == pytest.approx((40 / 3, 7.5))
    tops = [y + h for (x, y, w, h) in drawing.boxes.values()]
    assert max(tops) < 7.5 and min(y for (x, y, w, h) in drawing.boxes.values()) > 0


# --- figures you publish as they are (issue 20) ------------------------------------------------

IMAGENET_METRICS = {
    "model": "efficientnet_lite_pytorch:EfficientNet.from_name", "trained": True, "layer": "_fc", "method": "caricature",
    "C": 1.08785e6, "reconstruction_error": [0.2817, 0.30412],
    "reference_top5": [{"class": 285, "name": "Egyptian cat", "probability": 0.87}],
    "top5": [[{"class": 285, "name": "Egyptian cat", "probability": 0.61}],
             [{"class": 281, "name": "tabby", "probability": 0.4}]],
}


def test_numbers_and_names_read_as_people_write_them():
    from workbench.export.figures import human_number, model_name

    assert human_number(1.08785e6) == "1.1\u00a0×\u00a010⁶" and human_number(300) == "300" and human_number(0.05) == "0.05"
    assert human_number(2.8e-4).replace("\u00a0", " ") == "2.8 × 10⁻⁴" and human_number(1e6) == "10⁶" and human_number(None) == ""
    assert model_name("efficientnet_lite_pytorch:EfficientNet.from_name") == "EfficientNet"
    assert model_name("/home/me/nets/mine.safetensors") == "mine.safetensors"
    assert model_name("timm:resnet18") == "resnet18" and model_name("efficientnet-lite0") == "efficientnet-lite0"


def test_a_preimage_figure_has_a_short_title_and_class_and_metric_captions(tmp_path):
    rng = np.random.default_rng(2)
    images = rng.random((2, 24, 24, 3)).astype(np.float32)
    reference = rng.random((24, 24, 3)).astype(np.float32)
    grid = preimage_figure(images, reference, IMAGENET_METRICS)
    assert grid.title == "EfficientNet · _fc · caricature"
    assert grid.row_labels == ["C = 1.1\u00a0×\u00a010⁶"]
    assert grid.captions == [["Egyptian cat (87 %)", "error 0.282\nEgyptian cat (61 %)", "error 0.304\ntabby (40 %)"]]
    text = save_figure(grid, tmp_path / "grid.svg", style=FigureStyle(dpi=LOW)).read_text()
    assert ">EfficientNet · _fc · caricature</text>" in text and "1.08785e+06" not in text
    # the title edited or dropped, the captions dropped: the export dialog's and the CLI's options
    edited = save_figure(grid, tmp_path / "edited.svg", style=FigureStyle(title="A cat, inverted", no_captions=True))
    text = edited.read_text()
    assert ">A cat, inverted</text>" in text and "Egyptian cat" not in text and "error 0.282" not in text
    dropped = save_figure(grid, tmp_path / "dropped.svg", style=FigureStyle(title="")).read_text()
    assert "caricature</text>" not in dropped and "tabby (40 %)" in dropped


def test_a_one_tile_figure_is_not_mostly_margin(tmp_path):
    one = result_figure(np.random.default_rng(3).random((1, 32, 32, 3)), None, layer="relu3", C=20.0, title="t")
    with Image.open(save_figure(one, tmp_path / "one.png", style=FigureStyle("page", dpi=LOW))) as im:
        width, height = im.size
    assert width < 0.6 * 7.0 * LOW  # as wide as its tile and labels, not the page
    assert height > 0.5 * width


def test_an_animation_keeps_native_resolution_shows_the_reference_and_lasts_for_a_talk(tmp_path):
    from workbench.export.animation import HOLD_SECONDS, MIN_SECONDS, animation_frames, talk_timing

    frames = [np.full((2, 224, 224, 3), v, np.float32) for v in np.linspace(0, 1, 21)]
    reference = np.full((224, 224, 3), 0.5, np.float32)
    pictures = animation_frames(frames, title="EfficientNet · _fc · inversion", reference=reference,
                                style=FigureStyle("page"))
    assert pictures[0].shape[0] > 224 and pictures[0].shape[1] > 3 * 224  # three tiles, none shrunk
    fps, repeats = talk_timing(21)
    assert fps == pytest.approx(21 / MIN_SECONDS) and repeats == round(HOLD_SECONDS * fps)
    path = save_animation(frames, tmp_path / "opt.gif", reference=reference)
    with Image.open(path) as im:
        first = np.asarray(im.convert("RGB"))
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
    assert len(durations) == 21 and sum(durations) / 1000 >= MIN_SECONDS + HOLD_SECONDS - 0.5
    assert durations[-1] >= HOLD_SECONDS * 1000  # the result held (GIF stores hundredths of a second)
    grey = (np.abs(first.astype(int) - 128) <= 2).all(axis=2)
    assert grey.sum() >= 0.9 * 224 * 224  # the reference tile, whole, in every frame
