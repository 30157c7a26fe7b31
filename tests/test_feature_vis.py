"""Feature visualisation parts (issue 19): parametrisations round-trip and are seeded, transforms are
seeded, objectives compose, quality metrics are right on known images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workbench.preimage.objectives import (AlphaPrior, Channel, ClassLogit, Direction, Diversity, InnerProduct,
                                           Neuron, TVPrior)
from workbench.preimage.parametrisations import Fourier, Maco, NaturalSpectrum, Pixels, make_parametrisation
from workbench.preimage.transforms import Transforms, make_transforms


@pytest.fixture(scope="module")
def spectrum():
    return NaturalSpectrum()


@pytest.mark.parametrize("size", [(32, 32), (31, 34)])
@pytest.mark.parametrize("kind", ["pixels", "fourier", "maco"])
def test_parametrisations_round_trip_and_are_seeded(kind, size, spectrum):
    P = make_parametrisation(kind, 3, size, spectrum)
    theta = P.init(2, torch.Generator().manual_seed(5))
    assert torch.equal(theta, P.init(2, torch.Generator().manual_seed(5)))
    assert not torch.equal(theta, P.init(2, torch.Generator().manual_seed(6)))
    image = P.image(theta)
    assert image.shape == (2, 3, *size)
    back = P.image(P.params(image))
    assert float((back - image).abs().max()) < 1e-5
    if kind != "pixels":
        assert 0.0 < float(image.min()) and float(image.max()) < 1.0   # the sigmoid keeps pixels in range


def test_fourier_round_trips_any_image_and_maco_keeps_its_magnitude(spectrum):
    photo = torch.rand(1, 3, 24, 24) * 0.8 + 0.1
    F = Fourier(3, (24, 24))
    assert float((F.image(F.params(photo)) - photo).abs().max()) < 1e-5
    M = Maco(3, (24, 24), spectrum)
    image = M.image(M.init(1, torch.Generator().manual_seed(0)))
    s = M.decorrelated(M.params(image))
    # every bin but the self-conjugate ones (f = 0 and Nyquist, whose phase is pinned) has the template's magnitude
    mag = torch.fft.rfft2(s).abs()[0]
    assert torch.allclose(mag[:, :, 1:12], M.magnitude[:, :, 1:12], rtol=1e-3, atol=1e-3)


def test_the_natural_spectrum_falls_like_a_photos(spectrum):
    """The template from the bundled photos falls with frequency roughly as 1/f (amplitude), i.e. power ∝ f^−2."""
    a = spectrum.magnitude(3, (64, 64))
    from workbench.preimage.parametrisations import frequencies

    f = frequencies(64, 64)
    keep = (f > 0.02) & (f < 0.4)
    slope = np.polyfit(np.log(f[keep].numpy()), np.log(a[0][keep].numpy()), 1)[0]
    assert -1.5 < slope < -0.6
    assert spectrum.magnitude(3, (64, 64)) is a   # cached in the object


def test_transforms_are_seeded_and_the_identity_is_exact():
    x = torch.rand(2, 3, 20, 30)
    assert torch.allclose(Transforms()(x, torch.Generator().manual_seed(0), (20, 30)), x, atol=1e-5)
    t = make_transforms("natural", 4)
    a = t(x, torch.Generator().manual_seed(3), (16, 16))
    assert a.shape == (2, 3, 16, 16)
    assert torch.equal(a, t(x, torch.Generator().manual_seed(3), (16, 16)))
    assert not torch.equal(a, t(x, torch.Generator().manual_seed(4), (16, 16)))


def test_objective_terms_compose_into_one_energy():
    code = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)
    image = torch.zeros(2, 3, 4, 4)
    assert torch.equal(Neuron(1, 0, 1)(code, image), -code[:, 1, 0, 1])
    assert torch.allclose(Channel(2)(code, image), -code[:, 2].mean(dim=(1, 2)))
    d = torch.tensor([1.0, 0.0, -1.0])
    assert torch.allclose(Direction(d)(code, image), -(code[:, 0] - code[:, 2]).mean(dim=(1, 2)))
    assert torch.equal(ClassLogit(4)(code, image), -code.flatten(1)[:, 4])
    energy = AlphaPrior(6.0, 80.0) + TVPrior(2.0, 80 / 6.5) + 2.0 * Channel(2)
    assert torch.allclose(energy(code, image), 2.0 * Channel(2)(code, image))   # the priors of a zero image are 0
    assert set(energy.parts(code, image)) == {"AlphaPrior", "TVPrior", "Channel"}
    # the paper's data term is one of the terms: −⟨Φ, Φ0⟩/Z
    phi0 = torch.zeros(1, 3, 2, 2)
    phi0[0, 1, 0, 1] = 1.0
    assert torch.allclose(InnerProduct(phi0, 2.0)(code, image), Neuron(1, 0, 1)(code, image) / 2.0)


def test_diversity_is_lowest_for_different_restarts():
    g = torch.Generator().manual_seed(0)
    same = torch.rand(1, 4, 5, 5, generator=g).repeat(3, 1, 1, 1)
    different = torch.zeros(3, 4, 5, 5)
    for k in range(3):
        different[k, k] = 1.0
    assert torch.allclose(Diversity()(same, None), torch.ones(3))
    assert torch.allclose(Diversity()(different, None), torch.zeros(3))
    assert torch.equal(Diversity()(same[:1], None), torch.zeros(1))
