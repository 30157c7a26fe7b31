"""Eq. 7 with a parametrisation and transformation robustness (issue 19).

The paper's Algorithm 1 (IJCV sect. 3.4, :func:`workbench.preimage.solve.algorithm1_step`) moves
the pixels themselves and projects them onto the bound B+. With a Fourier or MACO
parametrisation (:mod:`workbench.preimage.parametrisations`) the variables are θ and the image
is P(θ) in [0, 1]; the energy is the same sum of terms (:mod:`workbench.preimage.objectives`) —
R_α + R_TV^β + C·ℓ, plus Olah et al.'s diversity when asked — with ℓ evaluated on a random
transform of the image (:mod:`workbench.preimage.transforms`), and θ moves by Adam, as in
Lucid/Lucent (Olah et al. 2017): AdaGrad's per-pixel steps (η0 from B, sect. 3.4) have no meaning
for coefficients whose scales differ by orders of magnitude.

The job keeps one image per restart in the paper's units beside θ (``x``, a detached copy of
255 (P(θ) − mean)), so its snapshots, frames, stopping rule and saving are the pixel path's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.config.preimage import resolve_preset
from workbench.preimage.objectives import AlphaPrior, Diversity, Sum, Term, TVPrior


@dataclass(frozen=True)
class Preset:
    """What a preset chooses where the config leaves it open."""

    parametrisation: str
    transforms: str
    lr: dict          # Adam's step per parametrisation


#: IJCV 2016: pixels, the jitter of eq. 7, Algorithm 1 (Adam steps only if another parametrisation is asked for).
PAPER = Preset("pixels", "jitter", {"fourier": 0.05, "maco": 0.1})
#: Measured best for activation maximisation on efficientnet-lite0 at 224² (docs/fidelity.md,
#: "Feature visualisation"; benchmarks/feature_vis.py): Lucid's Fourier parametrisation with
#: decorrelated colour, Lucid's transforms with scales down to 0.5, Adam at Lucent's 0.05, under the
#: paper's priors. MACO (Adam 0.1) needs more iterations than an equal-time budget gives it here:
#: at 20 s per image (32–72 iterations on the shared CPUs) its blurred p was 0.82/0.08/0.00 on
#: goldfish/tree frog/black swan against Fourier's 0.99/0.46/0.85. Also measured against it and kept
#: out, as none won on both the blurred and the judge's p at equal wall time: Adam 0.1 early with a
#: cosine decay to 0.05, coarse-to-fine (the spectrum's cut-off rising to Nyquist over 48 steps),
#: the priors' weight × 0, × 0.3 and × 3, and two transformed copies per step (1.8× the s/iter)
#: (docs/fidelity.md, "Candidates for natural").
NATURAL = Preset("fourier", "natural", {"fourier": 0.05, "maco": 0.1})
PRESETS = {"paper": PAPER, "natural": NATURAL}


def choices(config, input_size: tuple[int, int, int]) -> tuple[str, str, str, float | None]:
    """(preset, parametrisation, transforms, lr) of a run: the config's, else its preset's."""
    preset = resolve_preset(config, input_size)
    p = PRESETS[preset]
    parametrisation = config.parametrisation or p.parametrisation
    transforms = config.transforms or p.transforms
    lr = config.lr if config.lr is not None else p.lr.get(parametrisation)
    return preset, parametrisation, transforms, lr


class _Data(Term):
    """C·ℓ, the problem's data term (eqs. 2–4), on the transformed image's code."""

    def __init__(self, problem, weight: float) -> None:
        self.problem, self.weight = problem, weight

    def value(self, code, image):
        return self.problem.loss(code)


class NaturalStep:
    """One group of restarts: θ, its Adam optimiser, the restarts' generators and the mirror image x."""

    def __init__(self, parametrisation, theta: torch.Tensor, lr: float, to_units, generators) -> None:
        self.P = parametrisation
        self.theta = theta.detach().clone().requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.theta], lr=lr)
        self.to_units = to_units
        self.generators = list(generators)
        with torch.no_grad():
            self.x = to_units(self.P.image(self.theta))

    def scale_learning_rate(self, factor: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] *= factor

    def step(self, problem, energy: Sum, transforms, *, transform: bool = True) -> dict[str, torch.Tensor]:
        """E = Σ terms; the data term sees Φ(t(P(θ))) with t a random transform (none when
        ``transform`` is False, the fine-tuning phase); one Adam step on θ. Returns the per-image
        terms as :func:`~workbench.preimage.solve.algorithm1_step` does."""
        self.optimizer.zero_grad(set_to_none=True)
        p = self.P.image(self.theta)
        seen = p if not transform or transforms.identity else transforms(p, self.generators, problem.size)
        x = self.to_units(p)
        parts = energy.parts(problem.code(self.to_units(seen)), x)
        total = sum(parts.values())
        total.sum().backward()
        self.optimizer.step()
        with torch.no_grad():
            self.x = self.to_units(self.P.image(self.theta))
        zero = torch.zeros_like(total)
        data = parts.get("_Data", zero).detach()
        return {"energy": total.detach(), "loss": data / problem.C if problem.C else data,
                "R_alpha": parts.get("AlphaPrior", zero).detach(), "R_tv": parts.get("TVPrior", zero).detach(),
                "image": x.detach()}


def energy(problem, alpha: float, beta: float, B: float, V: float, diversity: float = 0.0) -> Sum:
    """Eq. 7 as terms: R_α + R_TV^β + C·ℓ (+ λ·diversity across the restarts of a group)."""
    terms: tuple[Term, ...] = (AlphaPrior(alpha, B), TVPrior(beta, V), _Data(problem, problem.C))
    if diversity > 0:
        terms += (Diversity() * diversity,)
    return Sum(terms)


def setup(config, problem, parametrisation: str, lr: float, groups, generators, x0: torch.Tensor | None,
          device: torch.device) -> list[NaturalStep]:
    """θ for each group of restarts: drawn from each restart's generator, or — for caricature, which
    starts from the reference — the reference's own parameters P⁻¹(x0) (the round trip)."""
    from workbench.preimage.parametrisations import make_parametrisation

    c = problem.mean.shape[1]
    P = make_parametrisation(parametrisation, c, problem.size)
    if hasattr(P, "scale"):
        P.scale = P.scale.to(device)
    if hasattr(P, "magnitude"):
        P.magnitude = P.magnitude.to(device)

    def to_units(p):
        return 255.0 * (p - problem.mean)

    steps = []
    for group in groups:
        if config.method == "caricature" and x0 is not None:
            pixels = problem.to_pixels(x0).clamp(0.0, 1.0)
            theta = P.params(pixels)
            theta = theta.expand(len(group), *theta.shape[1:]).clone()
        else:
            theta = torch.cat([P.init(1, generators[k]) for k in group]).to(device)
        steps.append(NaturalStep(P, theta.to(device), lr, to_units, [generators[k] for k in group]))
    return steps
