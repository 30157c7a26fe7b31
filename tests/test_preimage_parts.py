"""Regularisers, losses, Algorithm 1 and presets against the paper's definitions."""

import math

import pytest
import torch

from workbench.preimage import presets
from workbench.preimage.objectives import channel_mask, inner_product_loss, inversion_loss, spatial_window_mask
from workbench.preimage.optimizer import PreimageOptimizer, initial_learning_rate
from workbench.preimage.regularizers import alpha_norm, jitter, project_bounded_range, tv_beta


def test_alpha_norm_is_one_for_pixels_of_norm_B_and_isotropic_in_rgb():
    B = 80.0
    x = torch.zeros(2, 3, 5, 7)
    x[0, 0] = B                       # every pixel (B, 0, 0)
    x[1] = B / math.sqrt(3)           # every pixel (B, B, B)/√3: same norm, other direction
    value = alpha_norm(x, alpha=6.0, B=B)
    assert torch.allclose(value, torch.ones(2), atol=1e-5)
    assert alpha_norm(x * 2, alpha=6.0, B=B)[0].item() == pytest.approx(2 ** 6, rel=1e-5)


def test_tv_beta_of_constant_is_zero_and_of_a_ramp_matches_the_formula():
    assert tv_beta(torch.full((1, 3, 8, 8), 42.0)).item() == 0.0
    H, W, s, V = 6, 9, 2.5, 10.0
    ramp = (torch.arange(W, dtype=torch.float32) * s).expand(1, 1, H, W).clone()
    expected = H * (W - 1) * s ** 2 / (H * W * V ** 2)  # every row's W − 1 horizontal steps
    assert tv_beta(ramp, beta=2.0, V=V).item() == pytest.approx(expected, rel=1e-6)
    # β = 1 is the plain TV norm: |s| per difference.
    assert tv_beta(ramp, beta=1.0, V=V).item() == pytest.approx(H * (W - 1) * s / (H * W * V), rel=1e-4)


def test_every_pixel_is_in_the_tv_prior():
    """The corner pixel (H−1, W−1) too: before, it was in no difference and drifted freely."""
    x = torch.randn(1, 1, 5, 7, requires_grad=True)
    tv_beta(x, beta=2.0, V=1.0).backward()
    assert bool((x.grad != 0).all())


def test_projection_bounds_every_pixel_vector_and_keeps_the_inside():
    x = torch.randn(2, 3, 4, 4) * 200
    p = project_bounded_range(x, 160.0)
    norms = p.pow(2).sum(1).sqrt()
    assert norms.max().item() <= 160.0 + 1e-3
    inside = x.pow(2).sum(1).sqrt() <= 160.0
    assert torch.equal(p.permute(0, 2, 3, 1)[inside], x.permute(0, 2, 3, 1)[inside])
    outside = ~inside
    assert torch.allclose(norms[outside], torch.full_like(norms[outside], 160.0), atol=1e-3)


def test_jitter_crops_the_window_at_each_images_offset():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    out = jitter(x, 3, torch.tensor([[0, 0], [2, 1]]))
    assert out.shape == (2, 1, 4, 4)
    assert torch.equal(out[0], x[0, :, 0:4, 0:4])
    assert torch.equal(out[1], x[1, :, 1:5, 2:6])  # τ = (τ1, τ2) = (2, 1): columns shift by 2, rows by 1
    assert jitter(x, 1, torch.tensor([[0, 0]])) is x


def test_inversion_loss_is_normalised_and_masked():
    phi0 = torch.randn(1, 4, 5, 5)
    assert inversion_loss(phi0.clone(), phi0).item() == 0.0
    assert inversion_loss(torch.zeros_like(phi0), phi0).item() == pytest.approx(1.0)
    mask = spatial_window_mask((4, 5, 5), 1)[None]
    assert mask.sum().item() == 4  # central 1×1 of every channel
    phi = phi0.clone()
    phi[..., 0, 0] += 10.0  # outside the window: no effect
    assert inversion_loss(phi, phi0, mask).item() == 0.0
    cm = channel_mask((4, 5, 5), (1, 3))
    assert cm[1].all() and cm[3].all() and not cm[0].any()


def test_inner_product_loss_is_minus_the_weighted_activation_over_Z():
    phi = torch.tensor([[1.0, 2.0, 3.0]])
    assert inner_product_loss(phi, torch.tensor([[0.0, 1.0, 0.0]]), Z=4.0).item() == pytest.approx(-0.5)


def test_algorithm_1_first_step_and_convergence_on_a_quadratic():
    target = torch.tensor([[3.0, -2.0, 0.5]])
    x = torch.zeros(1, 3, requires_grad=True)
    eta0 = 0.05
    opt = PreimageOptimizer(x, eta0=eta0, B_plus=1e9)
    g = 2 * (x - target).detach()
    opt.step(g.clone())
    # G1 = g², η1 = 1/(1/η0 + |g|), μ1 = −η1 g, x1 = x0 + μ1.
    expected = -g / (1 / eta0 + g.abs())
    assert torch.allclose(x.detach(), expected, atol=1e-6)
    for _ in range(400):
        opt.step(2 * (x.detach() - target))
    assert torch.allclose(x.detach(), target, atol=0.05)


def test_initial_learning_rate_is_a_hundredth_of_B_squared_over_alpha():
    assert initial_learning_rate(80.0, 6.0) == pytest.approx(0.01 * 6400 / 6)
    assert initial_learning_rate(80.0, 6.0, area=100) == pytest.approx(100 * 0.01 * 6400 / 6)


ALEXNET = [("conv1", "Conv2d"), ("relu1", "ReLU"), ("pool1", "MaxPool2d"), ("conv2", "Conv2d"), ("relu2", "ReLU"),
           ("pool2", "MaxPool2d"), ("conv3", "Conv2d"), ("relu3", "ReLU"), ("conv4", "Conv2d"), ("relu4", "ReLU"),
           ("conv5", "Conv2d"), ("relu5", "ReLU"), ("pool5", "MaxPool2d"), ("avgpool", "AdaptiveAvgPool2d"),
           ("flatten", "flatten"), ("drop6", "Dropout"), ("fc6", "Linear"), ("relu6", "ReLU"), ("fc8", "Linear")]


def _vgg16():
    layers = []
    for b, n in enumerate((2, 2, 3, 3, 3), start=1):
        for i in range(1, n + 1):
            layers += [(f"conv{b}_{i}", "Conv2d"), (f"relu{b}_{i}", "ReLU")]
        layers.append((f"pool{b}", "MaxPool2d"))
    return layers + [("fc6", "Linear"), ("relu6", "ReLU"), ("fc7", "Linear"), ("fc8", "Linear")]


@pytest.mark.parametrize("net, expected", [
    (ALEXNET, {"conv1": 300, "relu3": 300, "conv4": 100, "relu4": 100, "conv5": 20, "relu5": 20, "pool5": 1, "fc6": 1}),
    (_vgg16(), {"conv1_1": 300, "pool3": 300, "conv4_3": 300, "relu4_3": 300, "pool4": 300, "conv5_1": 100,
                "conv5_2": 20, "relu5_3": 20, "pool5": 1, "fc8": 1}),
])
def test_preset_C_follows_section_5_2_1(net, expected):
    kinds = [k for _, k in net]
    index = {n: i for i, (n, _) in enumerate(net)}
    got = {name: presets.preset_C(kinds, index[name]) for name in expected}
    assert got == {k: float(v) for k, v in expected.items()}


def test_model_metadata_overrides_the_preset():
    class M:
        metadata = {"preimage_C": {"pool5": 20}}

    assert presets.preset_C([k for _, k in ALEXNET], 12, M(), "pool5") == 20.0


@pytest.mark.parametrize("stride, T", [(1, 1), (2, 1), (4, 1), (8, 2), (16, 4), (32, 8)])
def test_jitter_is_a_quarter_of_the_stride(stride, T):
    assert presets.preset_jitter(stride) == T


def test_B_measured_on_digits_makes_the_alpha_norm_one_on_average():
    from workbench.data.digits import DIGITS_MEAN, load_digits32

    class M:
        dataset = "digits"
        mean = DIGITS_MEAN

    B = presets.preset_B(M())
    x, _ = load_digits32("train")
    value = alpha_norm(255.0 * (x - DIGITS_MEAN[0]), 6.0, B).mean().item()
    assert value == pytest.approx(1.0, abs=0.02)
    assert B > presets.B  # the digits' saturated strokes are far from ImageNet statistics

    class Photo:
        dataset = None

    assert presets.preset_B(Photo()) == 80.0
