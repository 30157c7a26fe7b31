"""Losses ℓ(Φ(x), Φ0) of Mahendran & Vedaldi (IJCV 2016, sect. 3.1), one value per image."""

from __future__ import annotations

import torch


def inversion_loss(phi: torch.Tensor, phi0: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Normalised Euclidean loss, eq. 2, or with a binary mask M, eq. 3:
    ‖(Φ(x) − Φ0) ⊙ M‖² / ‖Φ0 ⊙ M‖²."""
    diff = phi - phi0
    ref = phi0.expand_as(phi)
    if mask is not None:
        diff = diff * mask
        ref = ref * mask
    dims = tuple(range(1, phi.dim()))
    return diff.pow(2).sum(dim=dims) / ref.pow(2).sum(dim=dims).clamp_min(1e-12)


def inner_product_loss(phi: torch.Tensor, phi0: torch.Tensor, Z: float) -> torch.Tensor:
    """Activation maximisation and caricature, eq. 4: −⟨Φ(x), Φ0⟩ / Z."""
    dims = tuple(range(1, phi.dim()))
    return -(phi * phi0).sum(dim=dims) / Z


def spatial_window_mask(shape: tuple[int, ...], window: int) -> torch.Tensor:
    """A mask selecting the central ``window`` × ``window`` positions of a (C, H, W) code (Fig. 13)."""
    mask = torch.zeros(shape)
    h, w = shape[-2:]
    k_h, k_w = min(window, h), min(window, w)
    top, left = (h - k_h) // 2, (w - k_w) // 2
    mask[..., top:top + k_h, left:left + k_w] = 1.0
    return mask


def channel_mask(shape: tuple[int, ...], channels: tuple[int, ...]) -> torch.Tensor:
    """A mask selecting a subset of feature channels (Fig. 14)."""
    mask = torch.zeros(shape)
    mask[list(channels)] = 1.0
    return mask


# --- Objectives as composable terms (Olah et al. 2017, "Feature Visualization"; IJCV eq. 7) --------
#
# A term maps the code Φ(x) of a batch (N, …) — and, for the priors, the image x — to one value per
# image, shape (N,), to be *minimised*; terms add with weights, so the paper's energy
# R_α + R_TV^β + C·ℓ is the sum AlphaPrior + TVPrior + C·(data term) and a feature visualisation
# objective is −(activation) + λ·diversity, in one form.


class Term:
    """One weighted term of an energy: ``weight · value(code, image)``, shape (N,)."""

    weight: float = 1.0

    def value(self, code: torch.Tensor, image: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, code: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.weight * self.value(code, image)

    def __add__(self, other: "Term") -> "Sum":
        return Sum((*_terms(self), *_terms(other)))

    def __mul__(self, factor: float) -> "Term":
        import copy

        scaled = copy.copy(self)
        scaled.weight = self.weight * float(factor)
        return scaled

    __rmul__ = __mul__


def _terms(t: Term) -> tuple[Term, ...]:
    return t.terms if isinstance(t, Sum) else (t,)


class Sum(Term):
    """Σ_i w_i · term_i (the energy)."""

    def __init__(self, terms: tuple[Term, ...]) -> None:
        self.terms = tuple(terms)
        self.weight = 1.0

    def value(self, code: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return sum(t(code, image) for t in self.terms)

    def parts(self, code: torch.Tensor, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term's weighted value by its class name (the energy plot's curves)."""
        return {type(t).__name__: t(code, image) for t in self.terms}


def _flat(code: torch.Tensor) -> torch.Tensor:
    return code.reshape(code.shape[0], -1)


class Neuron(Term):
    """−Φ_c(y, x): one unit of channel c (the paper's one-hot Φ0 at (y, x), sect. 6.2); a 1-D code's unit c."""

    def __init__(self, channel: int, y: int | None = None, x: int | None = None, weight: float = 1.0) -> None:
        self.channel, self.y, self.x, self.weight = channel, y, x, weight

    def value(self, code, image):
        if code.dim() == 2 or code.dim() == 4 and code.shape[2] * code.shape[3] == 1:
            return -_flat(code)[:, self.channel]
        y = code.shape[2] // 2 if self.y is None else self.y
        x = code.shape[3] // 2 if self.x is None else self.x
        return -code[:, self.channel, y, x]


class Channel(Term):
    """−mean_{y,x} Φ_c(y, x): the whole channel (Olah et al.'s "channel" objective)."""

    def __init__(self, channel: int, weight: float = 1.0) -> None:
        self.channel, self.weight = channel, weight

    def value(self, code, image):
        if code.dim() == 2:
            return -code[:, self.channel]
        return -code[:, self.channel].flatten(1).mean(1)


class ClassLogit(Term):
    """−z_k: the pre-softmax score of class k (maximising the probability instead would push the
    other classes down rather than class k up; Simonyan et al. 2014, sect. 2)."""

    def __init__(self, index: int, weight: float = 1.0) -> None:
        self.index, self.weight = index, weight

    def value(self, code, image):
        return -_flat(code)[:, self.index]


class Direction(Term):
    """−⟨Φ(x), d⟩: a direction d in the layer's channel space (Olah et al.), averaged over positions;
    ``d`` of shape (C,) for a conv layer or the code's shape for a whole-code template (eq. 4, Φ0 = d)."""

    def __init__(self, direction: torch.Tensor, weight: float = 1.0) -> None:
        self.direction, self.weight = direction, weight

    def value(self, code, image):
        d = self.direction.to(code.device, code.dtype)
        if code.dim() == 4 and d.dim() == 1:
            return -(code * d.view(1, -1, 1, 1)).sum(1).flatten(1).mean(1)
        return -(_flat(code) * d.reshape(1, -1)).sum(1)


class Diversity(Term):
    """Olah et al.'s diversity across a batch: the mean cosine similarity between one image's Gram
    matrix of the layer's channels and the others' (−, so minimising it pushes the restarts apart).
    Zero for a batch of one."""

    def value(self, code, image):
        n = code.shape[0]
        if n < 2 or code.dim() != 4:
            return torch.zeros(n, device=code.device)
        f = code.flatten(2)
        gram = torch.nn.functional.normalize((f @ f.transpose(1, 2)).flatten(1), dim=1)
        sim = gram @ gram.T
        return (sim.sum(1) - sim.diagonal()) / (n - 1)


class AlphaPrior(Term):
    """R_α of eq. 5 on the image in the paper's units."""

    def __init__(self, alpha: float, B: float, weight: float = 1.0) -> None:
        self.alpha, self.B, self.weight = alpha, B, weight

    def value(self, code, image):
        from workbench.preimage.regularizers import alpha_norm

        return alpha_norm(image, self.alpha, self.B)


class TVPrior(Term):
    """R_TV^β of eq. 6 on the image in the paper's units."""

    def __init__(self, beta: float, V: float, weight: float = 1.0) -> None:
        self.beta, self.V, self.weight = beta, V, weight

    def value(self, code, image):
        from workbench.preimage.regularizers import tv_beta

        return tv_beta(image, self.beta, self.V)


class InnerProduct(Term):
    """The paper's data term ℓ = −⟨Φ(x), Φ0⟩ / Z of eq. 4 (activation maximisation and caricature)."""

    def __init__(self, phi0: torch.Tensor, Z: float, weight: float = 1.0) -> None:
        self.phi0, self.Z, self.weight = phi0, Z, weight

    def value(self, code, image):
        return inner_product_loss(code, self.phi0, self.Z)


class Inversion(Term):
    """The paper's data term ℓ = ‖(Φ(x) − Φ0) ⊙ M‖² / ‖Φ0 ⊙ M‖² of eqs. 2–3 (inversion)."""

    def __init__(self, phi0: torch.Tensor, mask: torch.Tensor | None = None, weight: float = 1.0) -> None:
        self.phi0, self.mask, self.weight = phi0, mask, weight

    def value(self, code, image):
        return inversion_loss(code, self.phi0, self.mask)
