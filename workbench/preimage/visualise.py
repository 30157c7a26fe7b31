"""Eq. 7 with a parametrisation and transformation robustness (issue 19).

The paper's Algorithm 1 (IJCV sect. 3.4, :func:`workbench.preimage.optimizer.algorithm1_step`) moves
the pixels themselves and projects them onto the bound B+. With a Fourier or MACO
parametrisation (:mod:`workbench.preimage.parametrisations`) the variables are θ and the image
is P(θ) in [0, 1]; the energy is the same sum of terms (:mod:`workbench.preimage.objectives`) —
R_α + R_TV^β + C·ℓ (the priors weighted by the preset: 0 in the natural preset, as Lucid's energy),
plus Olah et al.'s diversity when asked — with ℓ evaluated on a random
transform of the image (:mod:`workbench.preimage.transforms`), and θ moves by Adam, as in
Lucid/Lucent (Olah et al. 2017): AdaGrad's per-pixel steps (η0 from B, sect. 3.4) have no meaning
for coefficients whose scales differ by orders of magnitude.

The job keeps one image per restart in the paper's units beside θ (``x``, a detached copy of
255 (P(θ) − mean)), so its snapshots, frames, stopping rule and saving are the pixel path's.

**The kept iterate.** A run of the natural preset can pass through a picture and overshoot into a
texture: the target keeps rising on the transformed views while the picture stops surviving a blur
(efficientnet-lite0's Egyptian cat passed a blurred p of 0.9 at 8 s and ended at 0.59). So every
``keep_every`` steps each restart's image is scored by :class:`Robustness` — the target on the
image, under a blur and at half resolution, the weakest of the three — and the run returns each
restart's best-scored iterate, not its last. This is a selection by a robustness check close to the quality metrics that
are then reported (:mod:`workbench.preimage.quality`), so a second, independently trained network
(``--judge``) is the held-out measure of whether it helped (docs/fidelity.md, "Feature visualisation").
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
    keep_every: int = 0   # score the restarts' images every N steps and return the best (0: the last)
    priors: float = 1.0   # weight of the paper's R_α + R_TV^β in the energy (0: the data term alone, as Lucid's)


#: IJCV 2016: pixels, the jitter of eq. 7, Algorithm 1 (Adam steps only if another parametrisation is asked for).
PAPER = Preset("pixels", "jitter", {"fourier": 0.05, "maco": 0.1})
#: Measured best for activation maximisation on efficientnet-lite0 at 224² (docs/fidelity.md,
#: "Feature visualisation"; benchmarks/feature_vis.py): Lucid's Fourier parametrisation with
#: decorrelated colour, Lucid's transforms with scales down to 0.5 and a random blur (σ ≤ 1 px),
#: Adam at Lucent's 0.05, keeping each restart's most robust iterate (scored every 8 steps,
#: :class:`Robustness`), and without the paper's priors (``priors=0``: the data term alone, as Lucid's): on 8
#: classes × 2 seeds, 96 iterations each, the priors' weight 1 → 0 took the judge's p from 0.38 to 0.40 and
#: the iterations to a blurred p ≥ 0.9 from 39.5 to 37.0 (Lucent: 0.43, 43.6 where it got there, 9 of 16;
#: docs/fidelity.md, "No priors").
#: MACO (Adam 0.1) needs more iterations than an equal-time budget gives it here:
#: at 20 s per image (32–72 iterations on the shared CPUs) its blurred p was 0.82/0.08/0.00 on
#: goldfish/tree frog/black swan against Fourier's 0.99/0.46/0.85. Also measured against it and kept
#: out, as none won on both the blurred and the judge's p at equal wall time: Adam 0.1 early with a
#: cosine decay to 0.05, coarse-to-fine (the spectrum's cut-off rising to Nyquist over 48 steps),
#: the priors' weight × 0.3 and × 3, and two transformed copies per step (1.8× the s/iter)
#: (docs/fidelity.md, "Candidates for natural").
NATURAL = Preset("fourier", "natural", {"fourier": 0.05, "maco": 0.1}, keep_every=8, priors=0.0)
PRESETS = {"paper": PAPER, "natural": NATURAL}


def prior_weight(config, input_size: tuple[int, int, int]) -> float:
    """The weight of the paper's priors in a parametrised run's energy: the preset's for a maximisation,
    1 (the paper's eq. 7) for inversion and caricature, which keep the paper's formulation."""
    return PRESETS[resolve_preset(config, input_size)].priors if config.method == "maximize" else 1.0


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


def per_image(phi, x: torch.Tensor) -> torch.Tensor:
    """Φ of a batch, one image at a time, so that a batch of restarts gets the numbers it gets one by one
    ("same seed, same numbers on every schedule"): a batched convolution rounds differently (by 1.6e-6 on
    digits-vgg's logits), and with no prior pulling the image back, Adam's normalised steps carry that
    rounding into visibly different images (the natural preset's 60 iterations on digits-vgg: up to 0.27
    apart, sequential vs batched; agreeing bit for bit one image at a time)."""
    if x.shape[0] == 1:
        return phi(x)
    return torch.cat([phi(x[i:i + 1]) for i in range(x.shape[0])])


class Robustness:
    """How well each image of a batch keeps its target, also when it is seen less sharply: the target's
    value on the image itself, blurred (Gaussian, σ = :func:`~workbench.preimage.quality.blur_sigma` of
    the input) and at half resolution (:func:`~workbench.preimage.quality.half_resolution`), the lowest
    of the three (with the two views alone, a bee kept for its blurred p of 0.97 read p 0.50 itself).
    The value is the target's log-probability where the layer is the network's class scores
    (``classes``), else its activation ⟨Φ(x), Φ0⟩. The three views go through the network one image at a time (:func:`per_image`), no gradient."""

    def __init__(self, problem, classes: bool) -> None:
        self.problem, self.classes = problem, classes

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from workbench.preimage.quality import blur_sigma, gaussian_blur, half_resolution

        problem = self.problem
        p = problem.to_pixels(x).clamp(0.0, 1.0)
        views = torch.cat([p, gaussian_blur(p, blur_sigma(tuple(p.shape[-2:]))), half_resolution(p)])
        code = per_image(problem.code, 255.0 * (views - problem.mean))
        if self.classes:
            target = problem.phi0.flatten(1).argmax(1)
            value = code.float().flatten(1).log_softmax(1)[:, int(target[0])]
        else:
            value = (code * problem.phi0).flatten(1).sum(1)
        return value.view(3, -1).amin(0)


class NaturalStep:
    """One group of restarts: θ, its Adam optimiser, the restarts' generators and the mirror image x;
    with ``robustness`` and ``keep_every``, also each restart's best-scored iterate (:meth:`kept`)."""

    def __init__(self, parametrisation, theta: torch.Tensor, lr: float, to_units, generators,
                 robustness: Robustness | None = None, keep_every: int = 0) -> None:
        self.P = parametrisation
        self.theta = theta.detach().clone().requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.theta], lr=lr)
        self.to_units = to_units
        self.generators = list(generators)
        with torch.no_grad():
            self.x = to_units(self.P.image(self.theta))
        self.robustness = robustness if keep_every > 0 else None
        self.keep_every = keep_every
        self.steps = 0
        self.best_x: torch.Tensor | None = None
        self.best_score: torch.Tensor | None = None
        self.best_step: torch.Tensor | None = None
        self._scored = -1   # the step whose image was scored last

    def _score_current(self) -> None:
        score = self.robustness(self.x)
        self._scored = self.steps
        if self.best_x is None:
            self.best_x, self.best_score = self.x.clone(), score
            self.best_step = torch.full_like(score, self.steps, dtype=torch.long)
            return
        better = score >= self.best_score
        self.best_x[better] = self.x[better]
        self.best_score = torch.where(better, score, self.best_score)
        self.best_step[better] = self.steps

    def kept(self) -> torch.Tensor:
        """Each restart's image with the highest :class:`Robustness` score among those scored (every
        ``keep_every`` steps and the last); the last image when there is no robustness check."""
        if self.robustness is None:
            return self.x
        if self._scored != self.steps:
            self._score_current()
        return self.best_x

    def kept_steps(self) -> list[int] | None:
        """The step each restart's kept image is from (None without a robustness check)."""
        if self.robustness is None or self.best_step is None:
            return None
        return [int(s) for s in self.best_step]

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
        parts = energy.parts(per_image(problem.code, self.to_units(seen)), x)
        total = sum(parts.values())
        total.sum().backward()
        self.optimizer.step()
        with torch.no_grad():
            self.x = self.to_units(self.P.image(self.theta))
        self.steps += 1
        if self.robustness is not None and self.steps % self.keep_every == 0:
            self._score_current()
        zero = torch.zeros_like(total)
        data = parts.get("_Data", zero).detach()
        return {"energy": total.detach(), "loss": data / problem.C if problem.C else data,
                "R_alpha": parts.get("AlphaPrior", zero).detach(), "R_tv": parts.get("TVPrior", zero).detach(),
                "image": x.detach()}


def energy(problem, alpha: float, beta: float, B: float, V: float, diversity: float = 0.0,
           priors: float = 1.0) -> Sum:
    """Eq. 7 as terms: priors · (R_α + R_TV^β) + C·ℓ (+ λ·diversity across the restarts of a group).
    ``priors`` is 1 for the paper's energy; the natural preset's 0 leaves C·ℓ alone, the energy Lucid
    and Lucent maximise (with Adam, C only scales the step's gradient, which Adam normalises)."""
    terms: tuple[Term, ...] = (_Data(problem, problem.C),)
    if priors > 0:
        terms = (AlphaPrior(alpha, B) * priors, TVPrior(beta, V) * priors) + terms
    if diversity > 0:
        terms += (Diversity() * diversity,)
    return Sum(terms)


def setup(config, problem, parametrisation: str, lr: float, groups, generators, x0: torch.Tensor | None,
          device: torch.device, classes: bool = False) -> list[NaturalStep]:
    """θ for each group of restarts: drawn from each restart's generator, or — for caricature, which
    starts from the reference — the reference's own parameters P⁻¹(x0) (the round trip). A maximisation
    under a preset with ``keep_every`` keeps each restart's most robust iterate (:class:`Robustness`;
    ``classes``: the layer is the network's class scores)."""
    from workbench.preimage.parametrisations import make_parametrisation

    c = problem.mean.shape[1]
    P = make_parametrisation(parametrisation, c, problem.size)
    if hasattr(P, "scale"):
        P.scale = P.scale.to(device)
    if hasattr(P, "magnitude"):
        P.magnitude = P.magnitude.to(device)

    def to_units(p):
        return 255.0 * (p - problem.mean)

    keep_every = PRESETS[resolve_preset(config, (c, *problem.size))].keep_every if config.method == "maximize" else 0
    robustness = Robustness(problem, classes) if keep_every > 0 else None
    steps = []
    for group in groups:
        if config.method == "caricature" and x0 is not None:
            pixels = problem.to_pixels(x0).clamp(0.0, 1.0)
            theta = P.params(pixels)
            theta = theta.expand(len(group), *theta.shape[1:]).clone()
        else:
            theta = torch.cat([P.init(1, generators[k]) for k in group]).to(device)
        steps.append(NaturalStep(P, theta.to(device), lr, to_units, [generators[k] for k in group],
                                 robustness, keep_every))
    return steps
