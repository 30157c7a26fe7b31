"""Algorithm 1 of Mahendran & Vedaldi (IJCV 2016, sect. 3.4): AdaGrad with momentum and projection
(:class:`PreimageOptimizer`), and one iteration of it on eq. 7 (:func:`algorithm1_step`).

    G_t = ρ G_{t−1} + g_t ⊙ g_t
    η_t = 1 / (1/η0 + √G_t)
    μ_t = ρ μ_{t−1} − η_t ⊙ g_t
    x_{t+1} = Π_{B+}(x_t + μ_t)

with ρ = 0.9 and η0 = 0.01 B²/α (the step that would zero R_α in one iteration, divided by 100).

The paper derives η0 from the per-pixel gradient α/B of R_α at x = B, i.e. without the 1/HW
of eq. 5; with the area-normalised energies of eqs. 5–6 every gradient carries a 1/HW, so
η0 is multiplied by HW to keep the paper's meaning. (AdaGrad is otherwise invariant to the
scale of the gradient: only the ratio of 1/η0 to √G_t matters.)
"""

from __future__ import annotations

import torch

from workbench.preimage.problem import Problem
from workbench.preimage.regularizers import alpha_norm, jitter, project_bounded_range, tv_beta


def initial_learning_rate(B: float, alpha: float, area: int = 1) -> float:
    """η0 = 0.01 · B² / α (sect. 3.4, "Learning rate η0"), times the image area HW (see above)."""
    return 0.01 * B * B / alpha * area


class PreimageOptimizer:
    """State (G, μ) for one tensor ``x``; :meth:`step` updates ``x`` in place from ``x.grad``."""

    def __init__(self, x: torch.Tensor, eta0: float, B_plus: float, rho: float = 0.9) -> None:
        self.x = x
        self.eta0 = eta0
        self.B_plus = B_plus
        self.rho = rho
        self.lr_scale = 1.0
        self.G = torch.zeros_like(x)
        self.mu = torch.zeros_like(x)

    @torch.no_grad()
    def step(self, grad: torch.Tensor | None = None) -> None:
        g = self.x.grad if grad is None else grad
        self.G.mul_(self.rho).addcmul_(g, g)
        eta = (self.G.sqrt() + 1.0 / self.eta0).reciprocal_()
        if self.lr_scale != 1.0:
            eta.mul_(self.lr_scale)
        self.mu.mul_(self.rho).addcmul_(eta, g, value=-1.0)
        self.x.add_(self.mu)
        self.x.copy_(project_bounded_range(self.x, self.B_plus))
        if grad is None:
            self.x.grad = None

    def scale_learning_rate(self, factor: float) -> None:
        """Scale every η_t (the fine-tuning phase runs at a tenth of the rate)."""
        self.lr_scale *= factor


def algorithm1_step(problem: Problem, x: torch.Tensor, optimizer: PreimageOptimizer, alpha: float, beta: float,
                    B: float, V: float, *, offsets: torch.Tensor | None = None, canvas=None,
                    priors=None) -> dict[str, torch.Tensor]:
    """One iteration of Algorithm 1 (IJCV sect. 3.4) on eq. 7 for every image of ``canvas(x)`` (``x``
    itself without a canvas): E = R_α + R_TV^β + C·ℓ(Φ(jitter(x; τ)), Φ0) with τ = ``offsets`` (no
    jitter without them), its gradient with respect to ``x``, and ``optimizer.step()`` (which projects
    onto the bound B+). Returns the per-image terms and the images before the step, detached.
    ``priors`` (image → (R_α, R_TV)) replaces eqs. 5–6: the CVPR 2015 formulation passes its λ-weighted
    priors (:func:`workbench.preimage.cvpr2015.priors`) with C = 1.

    The one loop body of the engine: the pre-image job and the filter-GAN traversal both call it."""
    image = x if canvas is None else canvas(x)
    if priors is None:
        r_alpha, r_tv = alpha_norm(image, alpha, B), tv_beta(image, beta, V)
    else:
        r_alpha, r_tv = priors(image)
    loss = problem.loss(problem.code(image if offsets is None else jitter(image, problem.T, offsets)))
    energy = r_alpha + r_tv + problem.C * loss
    energy.sum().backward()
    optimizer.step()
    return {"energy": energy.detach(), "loss": loss.detach(), "R_alpha": r_alpha.detach(), "R_tv": r_tv.detach(),
            "image": image.detach()}
