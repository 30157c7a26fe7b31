"""An image never runs code: every image the workbench reads goes through one allow-list of raster
decoders (workbench.data.images.open_image), so PostScript — which Pillow would render by running
Ghostscript — is refused in one line naming its format, wherever it comes from and whatever it is
called. The control proves the payload does create its marker when Pillow picks the decoder."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from workbench.cli import main
from workbench.data.images import IMAGE_FORMATS, load_image, open_image
from workbench.errors import UserError

from .hostile import GS, NO_GS, copy_of, postscript


@pytest.fixture
def marker(tmp_path):
    """Where the PostScript writes; every test that needs Ghostscript to prove something asks for it."""
    if GS is None:
        pytest.skip(NO_GS)
    return tmp_path / "MARKER"


def _evil(path, marker, binary=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(postscript(marker, binary))
    return path


@pytest.mark.parametrize("binary", [False, True], ids=["text-eps", "dos-eps"])
def test_control_pillow_left_to_itself_runs_the_postscript(tmp_path, marker, binary):
    evil = _evil(tmp_path / "photo.png", marker, binary)
    with Image.open(evil) as im:
        assert im.format == "EPS"
        im.load()
    assert marker.exists(), "the payload must work, or the probes below prove nothing"


def _one_line_refusal(capsys, code):
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "its format is EPS" in err[0] and "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("name", ["photo.png", "photo.eps", "photo.jpg", "photo"])
@pytest.mark.parametrize("binary", [False, True], ids=["text-eps", "dos-eps"])
def test_load_image_refuses_postscript_whatever_its_name(tmp_path, marker, name, binary):
    evil = _evil(tmp_path / name, marker, binary)
    with pytest.raises(UserError, match=r"its format is EPS .*opens only PNG, JPEG, BMP, TIFF, WebP, GIF or PPM") as exc:
        load_image(evil)
    assert "\n" not in str(exc.value)
    assert not marker.exists()


def test_the_allow_list_still_reads_every_raster_format_it_names(tmp_path):
    pixels = (np.arange(6 * 5 * 3).reshape(6, 5, 3) * 3).astype(np.uint8)
    for fmt, suffixes in IMAGE_FORMATS.items():
        path = tmp_path / f"image{suffixes[0]}"
        Image.fromarray(pixels).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        with open_image(path) as im:
            assert im.size == (5, 6)
        arr = load_image(path)
        assert arr.shape[:2] == (6, 5)
        if fmt in ("PNG", "BMP", "TIFF", "WEBP", "PPM"):  # lossless: the pixels come back exactly
            assert np.array_equal(np.round(arr[:, :, :3] * 255).astype(np.uint8), pixels), fmt


@pytest.mark.parametrize("fmt,head", [("ICO", None), ("PDF", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
                                      ("PSD", b"8BPS\x00\x01" + bytes(40))])
def test_other_formats_are_refused_by_name(tmp_path, fmt, head):
    path = tmp_path / "picture.png"
    if head is None:
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path, format=fmt)
    else:
        path.write_bytes(head)
    with pytest.raises(UserError, match=f"its format is {fmt}"):
        load_image(path)


def test_cli_image_option(tmp_path, marker, capsys):
    evil = _evil(tmp_path / "ref.png", marker)
    code = main(["invert", "--model", "digits-vgg", "--layer", "relu1", "--image", str(evil), "--iters", "1", "--restarts", "1",
                 "--device", "cpu", "--out", str(tmp_path / "run"), "--quiet"])
    _one_line_refusal(capsys, code)
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_cli_sample_file_of_filtergan_traverse(tmp_path, marker, capsys):
    from workbench.resources import shipped_filtergan_run

    evil = _evil(tmp_path / "sample.png", marker)
    code = main(["filtergan", "traverse", str(shipped_filtergan_run()), "--sample", str(evil), "--grid", "3",
                 "--iters", "1", "--device", "cpu", "--out", str(tmp_path / "run"), "--quiet"])
    _one_line_refusal(capsys, code)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["sweep", "deform"])
def test_cli_images_folder(tmp_path, marker, capsys, command):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(folder / "a.png")
    _evil(folder / "b.png", marker)
    if command == "sweep":
        argv = ["sweep", "--layers", "relu1", "--images", str(folder), "--iters", "1", "--restarts", "1",
                "--device", "cpu", "--out", str(tmp_path / "run"), "--quiet"]
    else:
        argv = ["deform", "--model", "digits-vgg", "--images", str(folder), "--n", "2", "--device", "cpu", "--out", str(tmp_path / "run"),
                "--quiet"]
    code = main(argv)
    _one_line_refusal(capsys, code)  # a sweep checks every file's header before its first cell
    assert not (tmp_path / "run").exists()
    assert not marker.exists()


def test_window_open_and_drop(tmp_path, marker):
    """File → Open and drag-and-drop load the reference through reference_image on a worker."""
    from workbench.models import load_model
    from workbench.preview.compute import reference_image

    evil = _evil(tmp_path / "dropped.png", marker)
    with pytest.raises(UserError, match="its format is EPS"):
        reference_image(str(evil), load_model("digits-vgg", device="cpu"))
    assert not marker.exists()


def _preimage_run(tmp_path, marker):
    run = tmp_path / "received"
    (run / "images").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"kind": "invert", "status": "done", "config": {
        "method": "invert", "model": "digits-vgg", "layer": "relu1"}}))
    for name in ("restart_1.png", "reference.png", "grid.png"):
        _evil(run / "images" / name, marker)
    return run


def test_runs_reopen_of_a_received_folder(tmp_path, marker):
    pytest.importorskip("PySide6")
    from workbench.preview.reopen import read_run

    reopened = read_run(_preimage_run(tmp_path, marker))
    assert reopened.result is None
    assert any("its format is EPS" in note for note in reopened.notes), reopened.notes
    assert not marker.exists()


def test_runs_dock_details_of_a_received_folder(tmp_path, marker):
    from workbench.preview.compute import run_details

    details = run_details(_preimage_run(tmp_path, marker))
    assert details["grid"] is None and "cannot be shown" in details["note"]
    assert not marker.exists()


def test_atlas_resume_reading_a_tile(tiny_atlas, tmp_path, marker, capsys):
    atlas = copy_of(tiny_atlas, tmp_path)
    (tile,) = atlas.glob("cells/*/images/restart_1.png")
    tile.write_bytes(postscript(marker))
    code = main(["atlas", "--layer", "relu1", "--channels", "0-0", "--iters", "2", "--device", "cpu",
                 "--resume", "--out", str(atlas)])
    err = capsys.readouterr().err
    # the tile is refused by its format, never rendered; its cell runs again (one bad tile is no failed atlas)
    assert code == 0 and "Traceback" not in err, err
    (warning,) = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warning.startswith(f"warning: cell {tile.parent.parent.name}: its tile cannot be read (cannot read image "
                              f"{tile}: its format is EPS") and warning.endswith("; it runs again"), err
    assert not marker.exists()
    assert tile.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_fifo_posing_as_an_image_is_refused_not_read(tmp_path):
    """Reading a FIFO blocks until someone writes to it: it is refused from its type instead."""
    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="not a regular file"):
        load_image(fifo)


def test_an_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((4, 4), value, np.uint8)) for value in (10, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    arr = load_image(tmp_path / "anim.gif")
    assert np.allclose(arr[:, :, :3], 10 / 255, atol=1 / 255)  # frame 0, not frame 1 (200)
