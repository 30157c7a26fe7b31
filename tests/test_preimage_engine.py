"""The pre-image job on the bundled digits-vgg: the issue's acceptance numbers and behaviour."""

import json

import numpy as np
import pytest
import torch

from workbench.errors import NonFiniteEnergy, UserError
from workbench.jobs import Cancelled, CancelToken, Step, run_job
from workbench.models import load_model
from workbench.preimage import PreimageConfig, preimage_job
from workbench.runs import RunStore


@pytest.fixture(scope="module")
def model():
    return load_model("digits-vgg", device="cpu")


def solve(model, tmp_path, **kw):
    kw.setdefault("device", "cpu")
    return run_job(preimage_job(PreimageConfig(**kw), runs=RunStore(tmp_path), model=model))


def test_inverting_relu1_is_accurate_with_the_paper_C(model, tmp_path):
    errors = [solve(model, tmp_path, layer="relu1", image=f"digits:{n}", restarts=1).metrics["reconstruction_error"][0]
              for n in range(4)]
    assert np.mean(errors) <= 0.10, errors


@pytest.mark.slow
def test_penultimate_layer_inversions_keep_the_class(model, tmp_path):
    penultimate = [l for l in model.layers() if len(l.shape) == 3][-1]
    consistent = [solve(model, tmp_path, layer=penultimate.name, image=f"digits:{n}", restarts=1, iters=200)
                  .metrics["classification_consistency"] for n in range(20)]
    assert np.mean(consistent) >= 0.9, consistent


def test_maximization_beats_every_test_digit(model, tmp_path):
    from workbench.data.digits import load_digits32

    layer, channel = "relu5", 3
    result = solve(model, tmp_path, layer=layer, method="maximize", channel=channel, image=None, restarts=1, iters=200)
    x, _ = load_digits32("test")
    mean = torch.tensor(model.mean).view(1, -1, 1, 1)
    std = torch.tensor(model.std).view(1, -1, 1, 1)
    with torch.no_grad():
        best_digit = model.truncate(layer)((x - mean) / std)[:, channel].mean(dim=(1, 2)).max().item()
    reached = result.metrics["activation"][0]
    assert reached > 1.5 * best_digit, (reached, best_digit)


def test_caricature_starts_from_the_image_and_exaggerates_it(model, tmp_path):
    result = solve(model, tmp_path, layer="relu3", method="caricature", restarts=1, iters=100)
    assert result.metrics["activation_over_reference"][0] > 1.2
    # it stays a caricature of the reference, not a new image
    assert np.corrcoef(result.images[0].ravel(), result.reference.ravel())[0, 1] > 0.5


def test_same_seed_same_numbers_and_both_schedules_agree(model, tmp_path):
    kw = dict(layer="relu3", image="digits:5", restarts=2, iters=30, fine_tune_iters=5, seed=7)
    a = solve(model, tmp_path / "a", schedule="sequential", **kw)
    b = solve(model, tmp_path / "b", schedule="sequential", **kw)
    c = solve(model, tmp_path / "c", schedule="batched", **kw)
    assert np.array_equal(a.images, b.images)
    assert a.metrics["reconstruction_error"] == b.metrics["reconstruction_error"]
    np.testing.assert_allclose(a.images, c.images, atol=1e-4)
    np.testing.assert_allclose(a.metrics["reconstruction_error"], c.metrics["reconstruction_error"], rtol=1e-3)
    d = solve(model, tmp_path / "d", schedule="sequential", **{**kw, "seed": 8})
    assert not np.allclose(a.images, d.images)


def test_events_carry_energies_and_throttled_snapshots(model, tmp_path):
    config = PreimageConfig(layer="relu2", image="digits:1", restarts=3, iters=20, fine_tune_iters=0,
                            snapshot_every=5, device="cpu")
    steps = [e for e in preimage_job(config, runs=RunStore(tmp_path), model=model) if isinstance(e, Step)]
    assert [s.iteration for s in steps] == list(range(1, 21))
    terms = ("energy", "data", "R_alpha", "R_tv")  # the mean of the restarts, and each restart's ("<term>@<k>")
    assert set(steps[0].values) == {"loss", *terms, *(f"{t}@{k}" for t in terms for k in (1, 2, 3))}
    v = steps[-1].values
    assert v["energy"] == pytest.approx(v["data"] + v["R_alpha"] + v["R_tv"], rel=1e-5)  # C·ℓ: the terms sum to E
    assert v["energy"] == pytest.approx(np.mean([v[f"energy@{k}"] for k in (1, 2, 3)]), rel=1e-5)
    snaps = [s for s in steps if s.images is not None]
    assert [s.iteration for s in snaps] == [1, 6, 11, 16, 20]
    assert snaps[0].images.shape == (3, 32, 32, 1) and snaps[0].images.dtype == np.float32
    energies = [s.values["energy"] for s in steps]
    assert energies[-1] < energies[0]


def test_run_folder_has_everything_to_reproduce(model, tmp_path):
    result = solve(model, tmp_path, layer="relu2", image="digits:2", restarts=2, iters=10, fine_tune_iters=0,
                   frame_every=5)
    folder = result.run.path
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "done" and info["config"]["layer"] == "relu2" and info["config"]["seed"] == 0
    metrics = json.loads((folder / "metrics.json").read_text())
    assert len(metrics["reconstruction_error"]) == 2
    assert metrics["reconstruction_error_mean"] == pytest.approx(np.mean(metrics["reconstruction_error"]))
    for name in ("reference.png", "restart_1.png", "restart_2.png", "grid.png"):
        assert (folder / "images" / name).is_file()
    assert (folder / "tensors" / "preimages.safetensors").is_file()
    assert len(result.frames) == 3 and result.frames[0].shape == (2, 32, 32, 1)  # iterations 1, 6 and the last


def test_cancel_leaves_a_valid_folder_marked_cancelled(model, tmp_path):
    token = CancelToken()
    job = preimage_job(PreimageConfig(layer="relu3", image="digits:0", restarts=2, iters=500, device="cpu"),
                       runs=RunStore(tmp_path), model=model, cancel=token)
    steps = 0
    with pytest.raises(Cancelled):
        for event in job:
            if isinstance(event, Step):
                steps += 1
                if steps == 4:
                    token.cancel()
    assert steps == 4
    (run,) = RunStore(tmp_path).list()
    assert run.status == "cancelled"
    assert not list(run.path.rglob("*.part*"))


def test_non_finite_energy_fails_cleanly(model, tmp_path):
    with pytest.raises(NonFiniteEnergy, match=r"non-finite at iteration 1 \(R_tv = (inf|nan)\): lower --beta"):
        solve(model, tmp_path, layer="relu1", image="digits:0", restarts=1, iters=5, beta=100.0)
    (run,) = RunStore(tmp_path).list()
    assert run.status == "failed" and "non-finite" in run.info["error"]


def test_window_mask_reconstructs_only_the_receptive_field(model, tmp_path):
    """Fig. 13: inverting the central 1×1 of relu3 (rf 10) puts structure only inside that field."""
    result = solve(model, tmp_path, layer="relu3", image="digits:0", restarts=1, iters=150, mask_window=1)
    image = result.images[0, :, :, 0]
    variation = np.abs(np.diff(image, axis=0))[:, :-1] + np.abs(np.diff(image, axis=1))[:-1]
    centre = variation[11:21, 11:21].mean()
    border = np.concatenate([variation[:6].ravel(), variation[-6:].ravel(), variation[:, :6].ravel(),
                             variation[:, -6:].ravel()]).mean()
    assert centre > 10 * border, (centre, border)


@pytest.mark.parametrize("kw, message", [
    (dict(layer="relu99"), "unknown layer"),
    (dict(method="maximize", channel=999, image=None, layer="relu5"), "channel 999 out of range"),
    (dict(method="maximize", image=None), "needs a channel"),
    (dict(restarts=0), "at least 1"),
    (dict(method="paint"), "method must be one of invert, maximize, caricature"),
    (dict(mask_channels=(500,)), "out of range"),
])
def test_bad_configs_are_one_line_user_errors(model, tmp_path, kw, message):
    with pytest.raises(UserError, match=message) as info:
        solve(model, tmp_path, **{"layer": "relu1", "image": "digits:0", "iters": 2, **kw})
    assert "\n" not in str(info.value)
