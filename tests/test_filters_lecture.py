"""The lecture's filters (workbench.filters): the wavelet frame and σ_τ, the Gabor fit, composite filters."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from workbench.errors import UserError
from workbench.filters.composite import composite_filters, conv_chain
from workbench.filters.gabor import fit_slices, filter_fit, gabor_atom, layer_fits, random_level
from workbench.filters.wavelets import FAMILIES, WaveletFrame, threshold


@pytest.mark.parametrize("wavelet", FAMILIES)
@pytest.mark.parametrize("level", [1, 3])
def test_wavelet_layer_with_tau_zero_reconstructs_exactly(wavelet, level):
    frame = WaveletFrame(wavelet, level, (16, 20))
    x = torch.rand(2, 1, 16, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    codes = threshold(frame(x), 0.0, "soft", odd=True)   # σ_τ at τ = 0 is the identity
    assert codes.shape == (2, 3 * level + 1, 16, 20)
    assert float((frame.reconstruct(codes) - x).abs().max()) < 1e-10
    # a Parseval frame: the codes carry exactly the image's energy
    assert float((codes ** 2).sum() / (x ** 2).sum()) == pytest.approx(1.0, abs=1e-10)


def test_wavelet_frame_haar_detail_by_hand():
    """Haar at level 1: LH is (lo along rows) ⊗ (hi along columns), each tap ±1/2 after the 1/√2 scalings."""
    frame = WaveletFrame("haar", 1, (8, 8))
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    x[..., 4:] = 1.0  # a vertical edge between columns 3 and 4
    codes = frame(x)[0]
    lh = codes[frame.channel_names.index("LH1")]
    # the horizontal difference sees the edge (and the circular one at column 0) and nothing else
    assert float(lh[:, 4].abs().max()) == pytest.approx(0.5) and float(lh[:, 5].abs().max()) < 1e-12
    assert float(codes[frame.channel_names.index("HL1")].abs().max()) < 1e-12  # no horizontal edge


def test_thresholds_as_printed_on_the_slide():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    assert threshold(x, 1.0, "hard").tolist() == [3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]       # −x for x < −τ
    assert threshold(x, 1.0, "soft").tolist() == [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]       # −x + τ
    assert threshold(x, 1.0, "hard", odd=True).tolist() == [-3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]
    assert threshold(x, 1.0, "soft", odd=True).tolist() == [-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]
    assert threshold(x, 0.0, "hard", odd=True).tolist() == x.tolist()


def test_bad_wavelet_and_tau_are_one_line_errors():
    with pytest.raises(UserError, match="not orthogonal"):
        WaveletFrame("bior2.2", 1)
    with pytest.raises(UserError, match="unknown wavelet"):
        WaveletFrame("nope", 1)
    with pytest.raises(UserError, match="level"):
        WaveletFrame("db2", 0)
    with pytest.raises(UserError, match="τ"):
        threshold(torch.zeros(2), -1.0)
    with pytest.raises(UserError, match="built for"):
        WaveletFrame("db2", 1, (8, 8))(torch.zeros(1, 1, 9, 9))


def test_a_gabor_atom_fits_with_score_one_and_random_filters_worse():
    on_grid = gabor_atom(7, math.pi / 4, float(np.geomspace(2.0, 14.0, 8)[4]), 0.4 * float(np.geomspace(2.0, 14.0, 8)[4]),
                         (3.0, 3.0), 0.9)
    off_grid = gabor_atom(7, 0.7, 4.3, 1.7, (3.2, 2.8), -1.2)
    res = fit_slices(np.stack([on_grid, -2.5 * off_grid]))
    assert res.fit[0] == pytest.approx(1.0, abs=1e-9)
    assert res.atoms[0].phase == pytest.approx(0.9, abs=1e-6)
    assert res.fit[1] > 0.93                         # between grid points: the grid's resolution
    noise = fit_slices(np.random.default_rng(0).standard_normal((64, 7, 7))).fit
    assert noise.max() < 0.5 and noise.mean() < 0.3
    mean, _std = random_level(7, n=64)
    assert mean == pytest.approx(noise.mean(), abs=0.05)


def test_filter_fit_weighs_input_channels_by_energy():
    atom = gabor_atom(5, 0.0, 4.0, 1.6)
    noise = np.random.default_rng(1).standard_normal((5, 5))
    noise *= np.linalg.norm(atom) / np.linalg.norm(noise)   # the same energy in both channels
    per_filter, res = filter_fit(torch.from_numpy(np.stack([atom, noise])[None]))
    assert per_filter[0] == pytest.approx((res.fit[0] + res.fit[1]) / 2)
    assert res.fit[0] > 0.999 and res.fit[1] < 0.8


def test_layer_fits_rows_and_first_layer_atoms():
    net = nn.Sequential(nn.Conv2d(1, 4, 5), nn.ReLU(), nn.Conv2d(4, 6, 3))
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(np.stack([gabor_atom(5, t, 4.0, 1.6) for t in (0, 0.5, 1, 2)])[:, None]))
    rows = layer_fits(net)
    assert [r["layer"] for r in rows] == ["0", "2"] and rows[1]["slices"] == 24
    assert rows[0]["mean_fit"] > 0.99 > rows[0]["random_fit"] + 0.4
    assert len(rows[0]["filters"]) == 4 and "theta_deg" in rows[0]["filters"][0]["atoms"][0]


def test_composite_filter_is_the_linear_receptive_field():
    """Without non-linearities, unit (o, 0, 0) of the last conv is ⟨F_L[o], the input patch⟩."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.AvgPool2d(2), nn.Conv2d(3, 4, 3, bias=False),
                        nn.Conv2d(4, 2, 2, stride=2, bias=False))
    for m in net:
        if isinstance(m, nn.Conv2d):
            m.weight.data = torch.randn(m.weight.shape, generator=g)
    # AvgPool is not a plain subsampling: compare with it replaced by taking one pixel of each 2×2
    chain = conv_chain(net, (2, 24, 24))
    assert [c.stride_in for c in chain] == [1, 2, 2]
    (_, f1), (_, f2), (_, f3) = composite_filters(net, (2, 24, 24))
    assert f2.shape == (4, 2, 7, 7) and f3.shape == (2, 2, 9, 9)
    sub = nn.Sequential(net[0], nn.Upsample(scale_factor=0.5, mode="nearest"), net[2], net[3]).double()
    x = torch.randn(1, 2, 24, 24, generator=g, dtype=torch.float64)
    y = sub(x)[0, :, 0, 0]
    assert torch.allclose(y, (f3 * x[0, :, :9, :9]).sum((1, 2, 3)), atol=1e-9)


def test_composite_folds_batch_norm_and_stops_at_a_grouped_conv():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, groups=2)).eval()
    net[1].running_var.fill_(4.0)
    net[1].weight.data.fill_(3.0)
    layers = composite_filters(net, (1, 12, 12))
    assert [n for n, _f in layers] == ["0"]
    assert torch.allclose(layers[0][1], net[0].weight.double() * 3.0 / math.sqrt(4.0 + net[1].eps))
    with pytest.raises(UserError, match="not on the chain"):
        composite_filters(net, (1, 12, 12), upto="2")
