"""Jobs, run folders, configs, bundled data and images."""

import json

import numpy as np
import pytest
import torch

from workbench.config import from_dict, to_dict
from workbench.data import load_digits32, load_image, load_sample, prepare_image
from workbench.errors import UserError
from workbench.jobs import Cancelled, CancelToken, Step, run_job
from workbench.preimage import PreimageConfig
from workbench.runs import RunStore, atomic_path


def test_config_round_trips_through_json():
    config = PreimageConfig(layer="relu3", method="invert", neuron=(1, 2), mask_channels=(0, 5), C=20.0)
    again = from_dict(PreimageConfig, json.loads(json.dumps(to_dict(config))))
    assert again == config
    assert isinstance(again.neuron, tuple) and isinstance(again.mask_channels, tuple)
    with pytest.raises(UserError, match="unknown PreimageConfig option"):
        from_dict(PreimageConfig, {"layers": "relu1"})


def test_run_folder_records_config_status_versions(tmp_path):
    run = RunStore(tmp_path).create("invert", {"layer": "relu1"}, device="cpu")
    info = run.info
    assert info["status"] == "running" and info["config"] == {"layer": "relu1"}
    assert {"torch", "numpy", "workbench", "python"} <= set(info["versions"])
    run.write_metrics({"a": np.float32(1.5)})
    run.save_image("x.png", np.zeros((4, 4, 1), np.float32))
    run.finish("cancelled")
    assert run.status == "cancelled" and run.info["finished"]
    assert run.metrics() == {"a": 1.5}
    assert (run.path / "images" / "x.png").is_file()
    assert [r.path for r in RunStore(tmp_path).list()] == [run.path]


def test_atomic_write_leaves_nothing_behind_when_the_writer_fails(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_cancel_token_stops_a_job_between_iterations():
    token = CancelToken()

    def job(cancel):
        for i in range(100):
            cancel.check()
            yield Step(i + 1, 100)
        return "finished"

    seen = []

    def on_event(e):
        seen.append(e)
        if len(seen) == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        run_job(job(token), on_event)
    assert len(seen) == 3
    assert run_job(job(CancelToken())) == "finished"


def test_digits_split_is_fixed_and_disjoint():
    xtr, ytr = load_digits32("train")
    xte, yte = load_digits32("test")
    assert xtr.shape[1:] == (1, 32, 32) and len(ytr) + len(yte) == 1797
    assert 0.0 <= float(xtr.min()) and float(xtr.max()) <= 1.0
    again, _ = load_digits32("test")
    assert torch.equal(again, xte)
    assert set(np.unique(yte.numpy())) == set(range(10))


def test_samples_and_image_preparation(tmp_path):
    digit, label = load_sample("digits:3")
    assert digit.shape == (32, 32, 1) and 0 <= label <= 9
    photo, _ = load_sample("astronaut")
    assert photo.shape[2] == 3
    grey = prepare_image(photo, 1, (32, 32))
    assert grey.shape == (32, 32, 1)
    rgb = prepare_image(digit, 3, (224, 224))
    assert rgb.shape == (224, 224, 3) and np.allclose(rgb[..., 0], rgb[..., 2])
    with pytest.raises(UserError, match="5 channels"):
        prepare_image(np.zeros((8, 8, 5), np.float32), 3, (8, 8))
    with pytest.raises(UserError, match="unknown sample"):
        load_sample("nosuchphoto")
    with pytest.raises(UserError, match="there are 450 test digits"):
        load_sample("digits:9999")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UserError, match="cannot read image"):
        load_image(bad)


def test_labelled_grid_draws_tiles_and_labels():
    from workbench.export.grid import labelled_grid

    tiles = [[np.ones((8, 8, 1), np.float32), np.zeros((8, 8, 1), np.float32)]]
    grid = labelled_grid(tiles, col_labels=["a", "b"], row_labels=["row"], title="title")
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3
    assert grid.shape[0] > 32 and grid.shape[1] > 64
    # one white tile and one black tile of 32×32 (8 px upscaled 4×)
    assert (grid == 0).all(axis=2).sum() >= 32 * 32
