"""The natural preset's energy is the data term alone (issue 19; docs/fidelity.md, "No priors"): the paper's
R_α + R_TV^β stay in the paper preset, in inversion and caricature, and with an explicit parametrisation."""

from __future__ import annotations

import torch

from workbench.config.preimage import PreimageConfig
from workbench.preimage.objectives import AlphaPrior, TVPrior
from workbench.preimage.visualise import energy, prior_weight

BIG = (3, 224, 224)


class _Problem:
    """The data term's view of a problem: C and a loss of the code (here −Σ code)."""

    C = 2.0

    def loss(self, code):
        return -code.flatten(1).sum(1)


def test_the_natural_preset_weighs_the_priors_zero_and_every_other_run_one():
    assert prior_weight(PreimageConfig(method="maximize", channel=0), BIG) == 0.0            # auto → natural
    assert prior_weight(PreimageConfig(method="maximize", channel=0, preset="natural"), (1, 32, 32)) == 0.0
    assert prior_weight(PreimageConfig(method="maximize", channel=0, preset="paper"), BIG) == 1.0
    assert prior_weight(PreimageConfig(method="maximize", channel=0, parametrisation="fourier"), (1, 32, 32)) == 1.0
    assert prior_weight(PreimageConfig(method="invert"), BIG) == 1.0
    assert prior_weight(PreimageConfig(method="caricature", preset="natural"), BIG) == 1.0


def test_the_energy_without_priors_is_the_data_term_alone():
    g = torch.Generator().manual_seed(0)
    image = torch.randn((2, 3, 8, 8), generator=g) * 40.0
    code = torch.randn((2, 5), generator=g)
    data = 2.0 * -code.sum(1)
    with_priors = energy(_Problem(), 6.0, 2.0, 80.0, 10.0)
    without = energy(_Problem(), 6.0, 2.0, 80.0, 10.0, priors=0.0)
    assert set(without.parts(code, image)) == {"_Data"}
    assert torch.allclose(without(code, image), data)
    priors = AlphaPrior(6.0, 80.0)(code, image) + TVPrior(2.0, 10.0)(code, image)
    assert float(priors.min()) > 0.0                       # a noise image has a prior cost to lose
    assert torch.allclose(with_priors(code, image), data + priors)
    half = energy(_Problem(), 6.0, 2.0, 80.0, 10.0, priors=0.5)
    assert torch.allclose(half(code, image), data + 0.5 * priors)
