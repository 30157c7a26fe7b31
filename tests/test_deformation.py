"""Random TPS deformations and the normalized cosine distance (Ruderman et al. 2018, sect. 2.1)."""

import numpy as np
import pytest
import torch
from scipy.interpolate import RBFInterpolator

from workbench.deformation import (INPUT, control_points, cosine_distance, default_layers, deform,
                                   deformation_sensitivity, displacement_field, layer_extractor,
                                   normalized_cosine_distance, pairwise_median, random_deform, random_displacements)
from workbench.errors import UserError
from workbench.jobs import CancelToken, Step, run_job
from workbench.models.architectures import cifar_vgg, digits_vgg


def test_zero_displacement_is_identity():
    x = torch.rand(3, 2, 32, 24, generator=torch.Generator().manual_seed(0))
    out, field = deform(x, torch.zeros(3, 16, 2), grid=4)
    assert field.abs().max() == 0
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_displacements_bounded_and_interpolated_at_control_points():
    d = 2.0
    u = random_displacements(64, 4, d, torch.Generator().manual_seed(1))
    assert u.abs().max() <= d
    assert u.abs().max() > 0.9 * d  # they fill the range, not a shrunken one
    field = displacement_field(u, 4, 31, 31)  # control points at pixels 0, 10, 20, 30
    ctrl = control_points(4, 31, 31).long()
    torch.testing.assert_close(field[:, ctrl[:, 1], ctrl[:, 0]], u, atol=1e-4, rtol=0)
    assert field.abs().max() < 1.5 * d  # the spline does not overshoot wildly between them


def test_same_seed_same_deformation_and_new_seed_differs():
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    a, _, _ = random_deform(x, 3, 2.0, torch.Generator().manual_seed(7))
    b, _, _ = random_deform(x, 3, 2.0, torch.Generator().manual_seed(7))
    c, _, _ = random_deform(x, 3, 2.0, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


@pytest.mark.parametrize("grid,size", [(3, (32, 32)), (5, (40, 56))])
def test_tps_matches_scipy_thin_plate_spline(grid, size):
    h, w = size
    u = random_displacements(2, grid, 10.0, torch.Generator().manual_seed(3))
    field = displacement_field(u, grid, h, w)
    ctrl = control_points(grid, h, w).numpy()
    ys, xs = np.mgrid[0:h, 0:w]
    pixels = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    for b in range(2):
        ref = RBFInterpolator(ctrl, u[b].double().numpy(), kernel="thin_plate_spline")(pixels).reshape(h, w, 2)
        assert np.abs(field[b].numpy() - ref).max() < 1e-4


def test_integer_shift_moves_pixels():
    """A constant displacement of +1 px in x reads each pixel from its right neighbour."""
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    out, _ = deform(x, torch.tensor([[[1.0, 0.0]] * 9]), grid=3)
    torch.testing.assert_close(out[0, 0, :, :-1], x[0, 0, :, 1:], atol=1e-4, rtol=0)


def test_cosine_distance_of_layer_to_itself_is_zero():
    r = torch.randn(10, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    assert normalized_cosine_distance(r, r) == pytest.approx(0.0, abs=1e-6)
    assert cosine_distance(r, -r).mean().item() == pytest.approx(2.0, abs=1e-6)


def test_pairwise_median_over_distinct_pairs():
    units = torch.eye(3)  # every distinct pair is orthogonal → dcos = 1; self-pairs (0) must not count
    assert pairwise_median(units) == pytest.approx(1.0)
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # pairs: 1, 2, 1
    assert pairwise_median(v) == pytest.approx(1.0)


def test_ncd_divides_by_median_pairwise_distance():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(16, 32, generator=g)
    rt = r + 0.3 * torch.randn(16, 32, generator=g)
    expected = cosine_distance(r, rt).mean().item() / pairwise_median(r / r.norm(dim=1, keepdim=True))
    assert normalized_cosine_distance(r, rt) == pytest.approx(expected, rel=1e-6)
    assert 0.0 < expected < 1.0


def test_paper_layers_of_cifar_nets():
    layers = default_layers(cifar_vgg("strided-relu"))
    assert layers[0] == INPUT and len(layers) == 13
    assert layers[3] == "down1_relu" and layers[-1] == "down4_relu"
    assert default_layers(cifar_vgg("maxpool"))[3] == "down1"


def test_extractor_one_pass_matches_module_prefix():
    torch.manual_seed(0)
    m = digits_vgg().eval()
    x = torch.randn(2, 1, 32, 32)
    with layer_extractor(m, [INPUT, "relu2", "pool5"]) as extract:
        out = extract(x)
    torch.testing.assert_close(out["relu2"], m[:6](x))
    torch.testing.assert_close(out["pool5"], m[:-2](x))
    assert out[INPUT] is x


def test_unknown_layer_is_a_user_error():
    with pytest.raises(UserError, match="unknown layer"):
        with layer_extractor(digits_vgg(), ["conv99"]):
            pass


def _small(downsampling):
    """A two-block version of the paper's net keeps the tests fast."""
    return cifar_vgg(downsampling, blocks=((1, 8), (1, 16)))


def _digits(n=24):
    from workbench.data import load_digits32

    return load_digits32("test")[0][:n]


def test_zero_deformation_gives_zero_sensitivity_every_layer():
    torch.manual_seed(0)
    m = _small("maxpool")
    layers = default_layers(m)
    r = run_job(deformation_sensitivity(m, _digits(), layers, mean=(0.3,), std=(0.3,), max_disp=0.0, seeds=[0]))
    assert r.values.shape == (1, 5)
    assert np.abs(r.values).max() < 1e-5


def test_sensitivity_positive_reproducible_and_grows_with_displacement():
    torch.manual_seed(0)
    m = _small("subsample")
    layers = default_layers(m)
    kw = dict(mean=(0.3,), std=(0.3,), seeds=[0, 1], batch_size=10)
    a = run_job(deformation_sensitivity(m, _digits(), layers, max_disp=2.0, **kw))
    b = run_job(deformation_sensitivity(m, _digits(), layers, max_disp=2.0, **kw))
    c = run_job(deformation_sensitivity(m, _digits(), layers, max_disp=4.0, **kw))
    np.testing.assert_array_equal(a.values, b.values)
    assert np.all(a.mean > 0) and np.all(a.std > 0)
    assert np.all(c.mean > a.mean)
    assert [row["layer"] for row in a.table()] == layers


def test_cancel_returns_partial_result():
    cancel = CancelToken()
    job = deformation_sensitivity(_small("avgpool"), _digits(), ["input", "relu1_1"], mean=(0.3,), std=(0.3,),
                                  seeds=[0, 1, 2], batch_size=12, cancel=cancel)
    steps = 0
    try:
        while True:
            event = next(job)
            if isinstance(event, Step):
                steps += 1
                if event.stage == "repeat 1/3" and event.iteration == 4:
                    cancel.cancel()
    except StopIteration as stop:
        result = stop.value
    assert not result.complete
    assert result.values.shape == (1, 2) and result.seeds == [0]
    assert steps == 4


def test_auto_images_are_photos_for_a_colour_net_and_digits_for_a_grey_one():
    """A colour (ImageNet) net is measured on the installed natural photos, never on upscaled digits."""
    from workbench.data.digits import load_digits32
    from workbench.data.photos import natural_photos
    from workbench.deformation.job import image_source, load_images

    assert image_source("auto", (3, 224, 224)) == "photos"
    assert image_source("auto", (1, 32, 32)) == "digits"
    assert image_source("/some/folder", (3, 224, 224)) == "/some/folder"
    colour = load_images("auto", 3, (3, 48, 48))
    _, photos = natural_photos(3, (48, 48))
    assert colour.shape == (3, 3, 48, 48)
    assert torch.equal(colour, torch.from_numpy(photos[:3]))
    assert float(colour.std(dim=1).mean()) > 0.01          # colour photos: the channels differ
    grey = load_images("auto", 3, (1, 32, 32))
    assert torch.equal(grey, load_digits32("test")[0][:3])


def test_the_job_measures_a_fresh_copy_of_the_model_it_is_handed_and_leaves_the_model_as_it_was(tmp_path):
    """Issue 21: the deform job receives an opened model; ``--init`` measures a freshly initialised copy of it
    (its own weights and truncations Φ_ℓ), never the weights handed in, which stay as they were."""
    import json
    from dataclasses import replace

    from workbench.deformation.job import DeformConfig, deform_job, initialized
    from workbench.models import from_module

    model = from_module(cifar_vgg("maxpool"), name="cifar-vgg-maxpool", input_size=(1, 32, 32), mean=(0.5,), std=(0.25,))
    weights = {k: v.clone() for k, v in model.module.state_dict().items()}
    x = torch.rand(2, *model.input_size, generator=torch.Generator().manual_seed(0))
    phi = model.truncate("relu1_1")  # cached on the model before a copy is made
    fresh = initialized(model, "truncnormal", seed=3)
    assert initialized(model, None) is model
    assert (fresh.name, fresh.trained, fresh.source) == ("cifar-vgg-maxpool (truncnormal init)", False,
                                                         "fresh truncnormal initialization, seed 3")
    assert (fresh.input_size, fresh.mean, fresh.std, fresh.spec) == (model.input_size, model.mean, model.std, model.spec)
    with torch.no_grad():
        assert not torch.allclose(fresh.truncate("relu1_1")(x), phi(x))  # Φ_ℓ of the copy, not the model's
        assert torch.equal(fresh.truncate("relu1_1")(x), initialized(model, "truncnormal", seed=3).truncate("relu1_1")(x))
        assert not torch.equal(fresh.truncate("relu1_1")(x), initialized(model, "truncnormal", seed=4).truncate("relu1_1")(x))

    config = DeformConfig(model=model.name, images="digits", n=2, seeds=1, seed=3, pairs=0)
    with_init = run_job(deform_job(replace(config, init="truncnormal"), model=model, out=tmp_path / "init"))
    handed_copy = run_job(deform_job(config, model=fresh, out=tmp_path / "copy"))
    assert with_init["layers"] == handed_copy["layers"] and with_init["model"] == fresh.name
    assert json.loads((tmp_path / "init" / "run.json").read_text())["model"]["trained"] is False
    assert all(torch.equal(v, weights[k]) for k, v in model.module.state_dict().items())
