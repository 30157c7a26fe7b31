"""The three networks of the filter-GAN (ICLR 2018 submission, sect. 3, Figure 1).

- :class:`FilterGenerator` G: latent z → the full filter tensor and bias of layer ℓ.
- :class:`Discriminator` D with the InfoGAN head Q: both read only activations of layer ℓ,
  never filters; Q "shares all its layers but the last one with the discriminator D".

The paper gives no architecture for G or D; the choices here are ours and are stated in
each class. All parameters are initialised from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench.config.filtergan import GENERATORS  # G's parametrisations (FilterGanConfig.generator)

#: Slope of the leaky ReLUs in G and D (the usual DCGAN / InfoGAN choice).
LEAK = 0.2


def _init_linear(layer: nn.Linear | nn.Conv2d, g: torch.Generator, gain: float = 1.0) -> None:
    fan_in = layer.weight[0].numel()
    bound = gain / math.sqrt(fan_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=g)
        if layer.bias is not None:
            layer.bias.zero_()


class FilterGenerator(nn.Module):
    """G(z) = (W(z), b(z)) for a conv layer with weight (C_out, C_in, k, k).

    A shared MLP h(z) feeds one of two parametrisations (the paper gives none; both are ours).
    (W0, b0) are learned, initialised at the real filters, so D's task is meaningful from the
    first step on a CPU budget; the InfoGAN term is what pushes G away from them. Output
    channel j plays the role of real filter j because D sees the channels of the layer in order.

    ``"shared"`` (the default): one transformation of layer ℓ−1's feature maps, common to all
    filters of layer ℓ,

        W_j(z)[c] = W0_j[c] + Σ_r c_r(z) (W0_j[c] ⋆ K_rc),     b(z) = b0,

    with c(z) linear in h(z), K_r (r ≤ ``rank``) learned banks of one k×k kernel per input
    channel c, and ⋆ a 'same' 2-D correlation (the composition of two k×k kernels cropped to
    k×k). Convolving with W_j(z) is, up to that crop, convolving layer ℓ−1's feature maps with
    δ + Σ_r c_r(z) K_r and then with the real filters; a transformation of the feature maps that
    every filter shares is what a transformation of the input also produces, so the profile
    change along z is one an image can make (sect. 4's traversal needs that). Measured on
    digits-vgg conv4 before training, with the linearised pre-image map at the digits' 8×8
    resolution: a shared 3×3 spatial kernel keeps 25–29 % of a profile change within reach of
    the input, independent random changes per filter (the "channel" form) 3–5 %, the same
    kernels chosen per output channel 5 %. K_r starts as one kernel repeated over the input
    channels; training may make them differ.

    ``"channel"``: every output channel moves independently along its own learned directions,
    W_j(z) = W0_j + Σ_r c_jr(z) U_jr, b_j(z) = b0_j + d_j(z). It matches the activation
    statistics as well, but the profile changes it makes are, to first order, no more
    reachable by an input change than random ones (kept for comparison).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, latent_dim: int, rank: int = 8,
                 hidden: int = 128, generator: torch.Generator | None = None, kind: str = "shared") -> None:
        super().__init__()
        if kind not in GENERATORS:
            raise ValueError(f"unknown generator kind {kind!r}: use one of {GENERATORS}")
        g = generator or torch.Generator().manual_seed(0)
        c_out, c_in, kh, kw = weight.shape
        self.kind = kind
        self.filter_shape = tuple(weight.shape)
        self.latent_dim = latent_dim
        self.rank = rank
        self.base_weight = nn.Parameter(weight.detach().clone().float())
        self.base_bias = nn.Parameter(bias.detach().clone().float())
        self.trunk = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LeakyReLU(LEAK),
                                   nn.Linear(hidden, hidden), nn.LeakyReLU(LEAK))
        if kind == "shared":
            self.coefficients = nn.Linear(hidden, rank)
            for layer in (*self.trunk[::2], self.coefficients):
                _init_linear(layer, g, gain=math.sqrt(3.0))
            kernels = torch.randn(rank, 1, kh, kw, generator=g)
            kernels = kernels / kernels.flatten(1).norm(dim=1).view(rank, 1, 1, 1)
            self.kernels = nn.Parameter(kernels.repeat(1, c_in, 1, 1).contiguous())
            with torch.no_grad():  # start close to the real layer: filters within ~15 % of their norm
                self.coefficients.weight.mul_(0.1)
            return
        self.coefficients = nn.Linear(hidden, c_out * rank)
        self.bias_shift = nn.Linear(hidden, c_out)
        for layer in (*self.trunk[::2], self.coefficients, self.bias_shift):
            _init_linear(layer, g, gain=math.sqrt(3.0))
        d = weight[0].numel()
        directions = torch.randn(c_out, rank, d, generator=g)
        directions = directions / directions.norm(dim=2, keepdim=True)
        norms = weight.detach().float().reshape(c_out, 1, d).norm(dim=2, keepdim=True)
        self.directions = nn.Parameter(directions * norms)
        with torch.no_grad():  # start close to the real layer: filters within ~15 % of their norm
            self.coefficients.weight.mul_(0.1)
            self.bias_shift.weight.mul_(0.1 * float(bias.detach().float().std().clamp_min(1e-3)))

    def transformed(self) -> torch.Tensor:
        """The "shared" basis W0 ⋆ K_r: (rank, C_out, C_in, k, k)."""
        c_out, c_in, kh, kw = self.filter_shape
        w = self.base_weight.reshape(1, c_out * c_in, kh, kw).expand(self.rank, -1, -1, -1)
        k = self.kernels.unsqueeze(1).expand(-1, c_out, -1, -1, -1).reshape(self.rank * c_out * c_in, 1, kh, kw)
        out = F.conv2d(w.reshape(1, self.rank * c_out * c_in, kh, kw), k, padding=(kh // 2, kw // 2),
                       groups=self.rank * c_out * c_in)
        return out.view(self.rank, c_out, c_in, kh, kw)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (m, latent_dim) → weights (m, C_out, C_in, k, k), biases (m, C_out)."""
        m = z.shape[0]
        c_out = self.filter_shape[0]
        h = self.trunk(z)
        if self.kind == "shared":
            c = self.coefficients(h)
            delta = (c @ self.transformed().reshape(self.rank, -1)).view(m, *self.filter_shape)
            return self.base_weight.unsqueeze(0) + delta, self.base_bias.unsqueeze(0).expand(m, -1)
        c = self.coefficients(h).view(m, c_out, self.rank)
        delta = torch.bmm(c.transpose(0, 1), self.directions).transpose(0, 1)
        weight = self.base_weight.unsqueeze(0) + delta.reshape(m, *self.filter_shape)
        bias = self.base_bias.unsqueeze(0) + self.bias_shift(h)
        return weight, bias


class Discriminator(nn.Module):
    """D and Q on activations (C, H, W) of layer ℓ.

    Trunk (ours): a 3×3 conv to 64 channels, then stride-2 4×4 convs to 64 channels until
    the map is at most 4×4, then a linear layer to ``hidden`` units; leaky ReLUs throughout.
    Heads: D → one logit (real / fake), Q → the predicted z (a Gaussian mean, so the InfoGAN
    log-likelihood is an L2 error, sect. 3).
    """

    def __init__(self, in_shape: tuple[int, int, int], latent_dim: int, width: int = 64, hidden: int = 128,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        g = generator or torch.Generator().manual_seed(0)
        c, h, w = in_shape
        layers: list[nn.Module] = [nn.Conv2d(c, width, 3, padding=1), nn.LeakyReLU(LEAK)]
        while max(h, w) > 4:
            layers += [nn.Conv2d(width, width, 4, stride=2, padding=1), nn.LeakyReLU(LEAK)]
            h, w = (h + 1) // 2, (w + 1) // 2
        layers += [nn.Flatten(), nn.Linear(width * h * w, hidden), nn.LeakyReLU(LEAK)]
        self.trunk = nn.Sequential(*layers)
        self.d_head = nn.Linear(hidden, 1)
        self.q_head = nn.Linear(hidden, latent_dim)
        for layer in self.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                _init_linear(layer, g, gain=math.sqrt(3.0))

    def forward(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Activations (m, C, H, W) → (real/fake logits (m,), predicted z (m, latent_dim))."""
        f = self.trunk(a)
        return self.d_head(f).squeeze(1), self.q_head(f)

    def q_parameters(self) -> list[nn.Parameter]:
        return [*self.trunk.parameters(), *self.q_head.parameters()]

    def d_parameters(self) -> list[nn.Parameter]:
        return [*self.trunk.parameters(), *self.d_head.parameters()]


def conv_per_sample(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """Conv(CNN_{ℓ−1}(I^(i)), G(z^(i))) for every i at once: image i with its own filters.

    features (m, C_in, H, W), weight (m, C_out, C_in, k, k), bias (m, C_out), as one grouped
    convolution with the geometry (stride, padding, dilation) of the real layer ``conv``.
    """
    m, c_in, h, w = features.shape
    c_out = weight.shape[1]
    if weight.shape[0] == 1 and m > 1:
        return F.conv2d(features, weight[0], bias[0], conv.stride, conv.padding, conv.dilation)
    out = F.conv2d(features.reshape(1, m * c_in, h, w), weight.reshape(m * c_out, *weight.shape[2:]),
                   bias.reshape(m * c_out), conv.stride, conv.padding, conv.dilation, groups=m)
    return out.view(m, c_out, *out.shape[-2:])
