"""Issue 17: resumes of hostile run folders, hostile model files and a disk that fills inside the
safetensors writer are one line and exit code 2 — never a traceback, never a warning.

Each folder is a copy of a real run the test makes (a 2-step filter-GAN, a 2-channel atlas) with one
thing broken. The CLI runs in-process.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from workbench.cli import main
from workbench.resources import resource_path

from .conftest import png_header
from .test_bad_inputs import assert_refused, run_cli

TRAIN = ["filtergan", "train", "--model", "digits-vgg", "--layer", "conv4", "--latent-dim", "2", "--batch-size", "2",
         "--train-images", "4", "--device", "cpu", "--quiet"]
ATLAS = ["atlas", "--model", "digits-vgg", "--layer", "relu1", "--channels", "0-1", "--iters", "1", "--device", "cpu",
         "--quiet"]


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gan") / "run"
    assert main([*TRAIN, "--steps", "2", "--out", str(out)]) == 0
    return out


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


GAN_CASES = {
    "lr-fast": ("run.json", lambda i: i["config"].__setitem__("lr", "fast"), "lr = 'fast'"),
    "ragged-history": ("checkpoint.json", lambda c: c["history"]["loss_D"].append(1.0), "not a filter-GAN checkpoint"),
    "history-strings": ("checkpoint.json", lambda c: c["history"].__setitem__("loss_G", ["x"] * len(c["history"]["loss_G"])),
                        "not a filter-GAN checkpoint"),
    "history-400-digits": ("checkpoint.json", lambda c: c["history"]["loss_G"].__setitem__(0, 10**400),
                           "not a filter-GAN checkpoint"),
    "step-10^30": ("checkpoint.json", lambda c: c.__setitem__("step", 10**30), "not a filter-GAN checkpoint"),
    "step-true": ("checkpoint.json", lambda c: c.__setitem__("step", True), "not a filter-GAN checkpoint"),
    "step-negative": ("checkpoint.json", lambda c: c.__setitem__("step", -1), "not a filter-GAN checkpoint"),
}


@pytest.mark.parametrize("case", list(GAN_CASES))
def test_filtergan_resume_of_a_hostile_folder_is_one_line(case, gan_run, tmp_path, capsys):
    folder = shutil.copytree(gan_run, tmp_path / "run")
    name, change, needle = GAN_CASES[case]
    _edit_json(folder / name, change)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    rc, err, shown = run_cli([*TRAIN, "--steps", "4", "--resume", "--out", str(folder)], capsys)
    assert_refused(rc, err, shown)
    assert needle in err, err
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before  # the folder is untouched
    assert not list(tmp_path.glob(".run.resume-*")), "a backup was left behind"


def test_filtergan_resume_of_a_config_without_model_keeps_its_model(gan_run, tmp_path, capsys):
    folder = shutil.copytree(gan_run, tmp_path / "run")
    _edit_json(folder / "run.json", lambda i: i["config"].pop("model"))
    rc, err, shown = run_cli([*TRAIN, "--steps", "3", "--resume", "--out", str(folder)], capsys)
    assert rc == 0 and "Traceback" not in err and not shown, err
    assert json.loads((folder / "run.json").read_text())["status"] == "done"


def test_a_full_disk_inside_the_safetensors_writer_is_one_line(tmp_path, monkeypatch, capsys):
    """The Rust writer reports ENOSPC as a SafetensorError (patching Python's open never reaches it):
    patch the writer itself."""
    import safetensors.torch
    from safetensors import SafetensorError

    def full(tensors, filename, metadata=None):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                              '"No space left on device" })')

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    out = tmp_path / "run"
    rc, err, shown = run_cli([*TRAIN, "--steps", "2", "--out", str(out)], capsys)
    assert_refused(rc, err, shown)
    assert "No space left on device" in err and "cannot write" in err, err
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert not list(out.rglob("*.part*"))


# --- the atlas ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def atlas_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("atlas") / "a"
    assert main([*ATLAS, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("tile, needle", [(png_header(30000, 30000), "far too large"),
                                          (b"\x00garbage" * 10, "cannot read image"),
                                          (b"", "is empty")], ids=["bomb", "garbage", "empty"])
def test_atlas_resume_with_one_hostile_tile_runs_that_cell_again_and_finishes(tile, needle, atlas_run, tmp_path, capsys):
    """One bad tile is one cell to run again, not a failed atlas: the other cell is kept as it was."""
    folder = shutil.copytree(atlas_run, tmp_path / "a")
    bad, good = sorted(folder.glob("cells/*/images/restart_1.png"))
    bad.write_bytes(tile)
    kept = {p: p.read_bytes() for p in good.parent.parent.rglob("*") if p.is_file()}
    rc, err, shown = run_cli([a for a in ATLAS if a != "--quiet"] + ["--resume", "--out", str(folder)], capsys)
    assert rc == 0 and "Traceback" not in err and not shown, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and needle in warnings[0] and bad.parent.parent.name in warnings[0], err
    assert "1 finished before, 1 to run" in err, err
    assert bad.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and bad.stat().st_size > 100  # the cell ran again
    assert {p: p.read_bytes() for p in good.parent.parent.rglob("*") if p.is_file()} == kept
    index = json.loads((folder / "index.json").read_text())
    assert [c["status"] for c in index["channels"].values()] == ["done", "done"], index
    assert json.loads((folder / "run.json").read_text())["status"] == "done"


def test_a_tile_unreadable_when_the_sheet_is_drawn_is_one_failed_channel(atlas_run, tmp_path):
    """write_atlas itself: a tile that cannot be read marks its channel failed (with why) and the sheet is
    still drawn, the channel reading 'unreadable'."""
    from workbench.config.sweep import AtlasConfig
    from workbench.sweep.atlas import write_atlas

    folder = shutil.copytree(atlas_run, tmp_path / "a")
    rows = json.loads((folder / "results.json").read_text())["rows"]
    bad = folder / "cells" / rows[0]["cell"] / "images" / "restart_1.png"
    bad.write_bytes(b"\x00garbage")
    (folder / "atlas.png").unlink()
    write_atlas(folder, AtlasConfig(model="digits-vgg", layer="relu1", channels=(0, 1)), rows)
    channels = json.loads((folder / "index.json").read_text())["channels"]
    first, second = (channels[str(r["channel"])] for r in rows)
    assert first["status"] == "failed" and "cannot read image" in first["error"], first
    assert second["status"] == "done" and "error" not in second, second
    assert (folder / "atlas.png").stat().st_size > 1000


# --- model files ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    vgg = resource_path("models", "digits-vgg.safetensors")
    shutil.copy(vgg, root / "x.SAFETENSORS")
    state = load_file(str(vgg))
    complex_state = dict(state)
    complex_state["conv1.weight"] = state["conv1.weight"].to(torch.complex64)
    torch.save(complex_state, root / "complex.pt")
    sparse_state = dict(state)
    sparse_state["conv1.weight"] = state["conv1.weight"].to_sparse()
    torch.save(sparse_state, root / "sparse.pt")
    pkg = root / "pkgs" / "h2_bad_forward"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        import torch.nn as nn

        class Bad(nn.Module):
            def __init__(self, error):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)
                self.error = error

            def forward(self, x):
                raise self.error("the model's own bug")

        def type_error():
            return Bad(TypeError)

        def key_error():
            return Bad(KeyError)
    """))
    return root


def test_an_upper_case_safetensors_suffix_reads_as_safetensors(model_files, capsys):
    assert main(["layers", "--model", str(model_files / "x.SAFETENSORS"), "--arch", "digits-vgg"]) == 0
    assert "conv1" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["complex.pt", "sparse.pt"])
def test_a_complex_or_sparse_state_dict_is_one_line_without_a_warning(name, model_files, capsys):
    rc, err, shown = run_cli(["layers", "--model", str(model_files / name), "--arch", "digits-vgg"], capsys)
    if rc == 0:  # a sparse tensor of the right shape may simply load
        assert not shown and "Traceback" not in err, (shown, err)
    else:
        assert_refused(rc, err, shown)


@pytest.mark.parametrize("factory, error", [("type_error", "TypeError"), ("key_error", "KeyError")])
def test_a_callable_whose_forward_raises_is_one_line(factory, error, model_files, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(model_files / "pkgs"))
    rc, err, shown = run_cli(["layers", "--model", f"h2_bad_forward:{factory}", "--input-size", "3x32x32"], capsys)
    sys.modules.pop("h2_bad_forward", None)
    assert_refused(rc, err, shown)
    assert f"{error}: " in err and "the model's own bug" in err, err


@pytest.mark.parametrize("location", ["we\x00ights.bin", "a\nb.bin", "\x1b[31m.bin"], ids=["NUL", "newline", "escape"])
def test_an_onnx_external_data_name_with_a_control_character_is_one_line(location, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 3, 3, 3],
                         data_location=TensorProto.EXTERNAL)
    entry = weight.external_data.add()
    entry.key, entry.value = "location", location
    graph = helper.make_graph([helper.make_node("Conv", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 30, 30])],
                              initializer=[weight])
    path = tmp_path / "nul.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    rc, err, shown = run_cli(["layers", "--model", str(path)], capsys)
    assert_refused(rc, err, shown)
    assert "not a file name inside the model's folder" in err, err
    assert onnx is not None


def test_sweep_resume_with_a_symlinked_cell_is_one_line_or_runs(tmp_path, capsys):
    """H1's policy decides whether the linked cell is refused or rerun; either way no traceback and
    nothing outside the sweep is touched."""
    sweep = ["sweep", "--model", "digits-vgg", "--layers", "relu1", "--seeds", "0-1", "--iters", "1", "--restarts", "1",
             "--fine-tune", "0", "--device", "cpu", "--quiet"]
    out = tmp_path / "s"
    assert main([*sweep, "--out", str(out)]) == 0
    capsys.readouterr()
    cell = sorted((out / "cells").iterdir())[0]
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(cell), str(elsewhere))
    (elsewhere / "thesis.tex").write_text("precious")
    cell.symlink_to(elsewhere, target_is_directory=True)
    rc, err, shown = run_cli([*sweep, "--resume", "--out", str(out)], capsys)
    assert "Traceback" not in err and not shown, err
    assert rc == 0 or (rc == 2 and len(err.splitlines()) == 1), err
    assert (elsewhere / "thesis.tex").read_text() == "precious"


def test_an_ico_whose_directory_lies_about_its_size_is_one_line_without_a_warning(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    good = tmp_path / "a.ico"
    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(
        good, format="ICO", sizes=[(32, 32)])
    data = bytearray(good.read_bytes())
    data[6] = data[7] = 48  # the directory claims 48×48 for a 32×32 image: Pillow warns when it decodes it
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out"
    rc, err, shown = run_cli(["invert", "--model", "digits-vgg", "--layer", "relu1", "--image", str(bad), "--iters", "1",
                              "--restarts", "1", "--device", "cpu", "--quiet", "--out", str(out)], capsys)
    assert_refused(rc, err, shown)
    assert "ICO" in err and not out.exists(), err
