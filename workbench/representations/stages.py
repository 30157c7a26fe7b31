"""The stages of CNN-HOG and CNN-DSIFT (Mahendran & Vedaldi, CVPR 2015 sect. 3; IJCV 2016 sect. 4.1).

"SIFT and HOG involve: computing and binning image gradients, pooling binned gradients into cell
histograms, grouping cells into blocks, and normalising the blocks." Each step is one child module:

- directional filters ``G_k = u_1k G_x + u_2k G_y``, ``u_k = (cos 2πk/K, sin 2πk/K)`` — a plain
  ``nn.Conv2d`` (:func:`directional_filters`), so the layer table reads its kernel and stride;
- gating (orientation binning) — :class:`HardOrientationBinning` (DPM V5 / UoCTTI HOG) and
  :class:`BilinearOrientationBinning` (DSIFT, HOGb): the two "binning functions [that] are not"
  standard CNN operations;
- bilinear spatial pooling into cells and the block-forming filters — plain ``nn.Conv2d`` with
  fixed weights (:func:`cell_pooling`, :func:`hog_block_filters`, :func:`sift_block_filters`,
  :func:`hog_cell_filters`);
- block normalisation — :class:`UoCTTIBlockNorm` (HOG, its quirk included) or
  :class:`L2Normalisation`, the standard ``nn.LocalResponseNorm`` in closed form (DSIFT: "l²
  normalisation, which is a special case of the standard local response normalisation layer");
- the clamp ``y = min{x, 0.2}`` — :class:`Clamp`.

The non-standard modules are registered as leaves of the workbench's FX tracer
(:data:`LEAVES`, see ``workbench.representations``), so each is one row of the layer table and a
place to truncate. All are point-wise in space, so the element-wise receptive-field rule is exact
for them; the convolutions carry ``kernel_size``/``stride`` and get the conv rule.

Pixels are on the paper's scale: grey levels 0–255 less a constant (the authors feed
``255 · rgb2gray(x) − 128``); no stage depends on the constant.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

#: ``G_x`` of the paper, [0 0 0; −1 0 1; 0 0 0] halved as in the authors' hog_net.m/dsift_net.m
#: (central differences (x[u+1] − x[u−1]) / 2); ``G_y = G_xᵀ``, rows pointing down.
GX = ((0.0, 0.0, 0.0), (-1.0, 0.0, 1.0), (0.0, 0.0, 0.0))


def directions(K: int, offset: float = 0.0) -> torch.Tensor:
    """Angles φ_k = 2π(k + offset)/K of the K directional filters, k = 0..K−1."""
    return 2.0 * math.pi * (torch.arange(K, dtype=torch.float64) + offset) / K


def _frozen(conv: nn.Conv2d, weight: torch.Tensor) -> nn.Conv2d:
    with torch.no_grad():
        conv.weight.copy_(weight.to(conv.weight.dtype))
    conv.requires_grad_(False)
    return conv


def directional_filters(K: int, *, offset: float = 0.0, scale: float = 0.5, padding: int = 0,
                        padding_mode: str = "zeros", dtype: torch.dtype = torch.float32) -> nn.Conv2d:
    """The K directional derivative filters G_k = cos φ_k · G_x + sin φ_k · G_y (one 3×3 conv, 1 → K).

    Output k is the projection ⟨g, u_k⟩ of the gradient g = (g_x, g_y) on u_k (CVPR eq. for G_k).
    ``scale`` 0.5 is the authors' halved central difference; 1 the full difference (scikit-image,
    VLFeat). ``padding`` 0 computes the gradient of the interior pixels only, as VLFeat's vl_hog does
    (the pooling stage then pads by one more pixel, so border pixels contribute no gradient)."""
    phi = directions(K, offset)
    gx = torch.tensor(GX, dtype=torch.float64) * scale
    gy = gx.t()
    weight = torch.cos(phi)[:, None, None] * gx + torch.sin(phi)[:, None, None] * gy
    conv = nn.Conv2d(1, K, 3, padding=padding, padding_mode=padding_mode, bias=False, dtype=dtype)
    return _frozen(conv, weight[:, None])


def _safe_gradient(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """g = (2/K) Σ_k x_k u_k from the K projections x_k = ⟨g, u_k⟩ (exact: Σ_k u_k u_kᵀ = (K/2)·I for
    K ≥ 3 equally spaced directions), its norm ‖g‖ and its angle θ = atan2(g_y, g_x).

    ‖g‖ equals the authors' sqrt(Σ_k x_k² / (K/2)) on the projections of a gradient. Where g = 0 the
    norm is 0 and the angle 0, with zero derivatives (the double-``where`` keeps NaNs out of backward)."""
    K = x.shape[1]
    gx = (2.0 / K) * torch.einsum("nkhw,k->nhw", x, cos)[:, None]
    gy = (2.0 / K) * torch.einsum("nkhw,k->nhw", x, sin)[:, None]
    sq = gx * gx + gy * gy
    ok = sq > torch.finfo(x.dtype).tiny
    norm = torch.where(ok, torch.sqrt(torch.where(ok, sq, torch.ones_like(sq))), torch.zeros_like(sq))
    theta = torch.atan2(torch.where(ok, gy, torch.zeros_like(gy)), torch.where(ok, gx, torch.ones_like(gx)))
    return norm, theta


class _Binning(nn.Module):
    def __init__(self, K: int, offset: float = 0.0, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.K = int(K)
        self.offset = float(offset)
        phi = directions(self.K, self.offset)
        self.register_buffer("phi", phi.to(dtype))
        self.register_buffer("cos", torch.cos(phi).to(dtype))
        self.register_buffer("sin", torch.sin(phi).to(dtype))

    def extra_repr(self) -> str:
        return f"K={self.K}" + (f", offset={self.offset:g}" if self.offset else "")


class HardOrientationBinning(_Binning):
    """DPM V5 / UoCTTI hard orientation assignment (CVPR sect. 3, IJCV sect. 4.1):

        h_k = ‖g‖ · 1[⟨g, u_k⟩ > ‖g‖ cos π/K],

    i.e. the whole gradient norm goes to the direction u_k closest to g (the largest projection:
    the authors' ``max(x, [], 3)``). Input: the K projections of :func:`directional_filters`.
    Piecewise constant in the angle, so its derivative flows through ‖g‖ only, as in hog_net.m."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm, _ = _safe_gradient(x, self.cos.to(x.dtype), self.sin.to(x.dtype))
        best = x.argmax(dim=1, keepdim=True)
        onehot = torch.zeros_like(x).scatter_(1, best, 1.0)
        return norm * onehot


class BilinearOrientationBinning(_Binning):
    """Bilinear orientation assignment of DSIFT and HOGb (CVPR sect. 3, IJCV sect. 4.1):

        h_k = ‖g‖ · max{0, 1 − (K/2π) · cos⁻¹(⟨g, u_k⟩ / ‖g‖)}.

    cos⁻¹(⟨g, u_k⟩/‖g‖) is the angle |θ − φ_k| (wrapped to [0, π]) between g and u_k; it is computed
    as such from θ = atan2(g_y, g_x), the same function with a bounded derivative where g is aligned
    with some u_k (the acos of the paper's formula has an infinite one there; the authors' code adds
    1e-7 under its square root instead)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm, theta = _safe_gradient(x, self.cos.to(x.dtype), self.sin.to(x.dtype))
        phi = self.phi.to(x.dtype).view(1, -1, 1, 1)
        delta = torch.remainder(theta - phi + math.pi, 2.0 * math.pi) - math.pi
        weight = torch.relu(1.0 - (self.K / (2.0 * math.pi)) * delta.abs())
        return norm * weight


def bilinear_window(cell: int) -> torch.Tensor:
    """The authors' 2b-tap triangle a_i = 1 − |(i − (2b+1)/2) / b|, i = 1..2b: each pixel votes into the
    two nearest cell centres along each axis with weights 1 − d/b (VLFeat's bilinear spatial binning)."""
    i = torch.arange(1, 2 * cell + 1, dtype=torch.float64)
    return 1.0 - ((i - (2 * cell + 1) / 2.0) / cell).abs()


def cell_pooling(K: int, cell: int, *, gradient_padding: int = 0, dtype: torch.dtype = torch.float32) -> nn.Conv2d:
    """Bilinear spatial pooling of the K binned channels into cells of ``cell`` pixels: a depthwise
    conv with the 2b×2b filter a aᵀ, stride b. With a 'valid' gradient (``gradient_padding`` 0) the
    padding is b//2 + 1, so cell i is centred on pixel (i + ½)b − ½ of the image, as in VLFeat, and an
    H×W image (H, W multiples of b) gives H/b × W/b cells."""
    a = bilinear_window(cell)
    weight = (a[:, None] * a[None, :]).expand(K, 1, 2 * cell, 2 * cell)
    pad = cell // 2 + (1 - gradient_padding)
    conv = nn.Conv2d(K, K, 2 * cell, stride=cell, padding=pad, groups=K, bias=False, dtype=dtype)
    return _frozen(conv, weight)


def hog_block_filters(orientations: int = 9, *, border: str = "vlfeat", dtype: torch.dtype = torch.float32) -> nn.Conv2d:
    """2×2 cells → one block (2K → 4·3K/2 channels, K = 2·``orientations``): for each cell (row-major
    in the block) its 2K oriented bins, then its K/2 unoriented ones h_o + h_{o+K/2} (the sum, as
    hog_net.m and VLFeat's ``hc = ha + hb``; the papers' footnote says "average").

    ``border="vlfeat"`` pads the cells by one, replicating them (VLFeat's vl_hog clamps the cell
    indices of the four blocks around a border cell), so there is a block at every cell corner;
    ``"zeros"`` forms the interior blocks only, as hog_net.m (see :func:`hog_cell_filters`)."""
    no = orientations
    per_cell = 3 * no
    weight = torch.zeros(4 * per_cell, 2 * no, 2, 2, dtype=torch.float64)
    for di in range(2):
        for dj in range(2):
            base = (di * 2 + dj) * per_cell
            for o in range(2 * no):
                weight[base + o, o, di, dj] = 1.0
            for o in range(no):
                weight[base + 2 * no + o, o, di, dj] = 1.0
                weight[base + 2 * no + o, o + no, di, dj] = 1.0
    vlfeat = _border(border)
    conv = nn.Conv2d(2 * no, 4 * per_cell, 2, padding=1 if vlfeat else 0,
                     padding_mode="replicate" if vlfeat else "zeros", bias=False, dtype=dtype)
    return _frozen(conv, weight)


def hog_cell_filters(orientations: int = 9, *, border: str = "vlfeat", dtype: torch.dtype = torch.float32) -> nn.Conv2d:
    """Blocks → cells: each cell's 3K/2 components, averaged over the four blocks that hold it
    (weight ½ each; "averaged rather than stacked as in the original Dalal-Triggs HOG"). With
    ``border="vlfeat"`` every cell has its four blocks (no padding here); with ``"zeros"`` the blocks are
    zero-padded, so a border cell gets the ½-weighted copies of the blocks that exist, as in hog_net.m."""
    per_cell = 3 * orientations
    weight = torch.zeros(per_cell, 4 * per_cell, 2, 2, dtype=torch.float64)
    for a in range(2):
        for b in range(2):
            position = (1 - a) * 2 + (1 - b)  # where the output cell sits in the block read at (a, b)
            for c in range(per_cell):
                weight[c, position * per_cell + c, a, b] = 0.5
    conv = nn.Conv2d(4 * per_cell, per_cell, 2, padding=0 if _border(border) else 1, bias=False, dtype=dtype)
    return _frozen(conv, weight)


def _border(border: str) -> bool:
    if border not in ("vlfeat", "zeros"):
        raise ValueError(f"border must be 'vlfeat' or 'zeros', not {border!r}")
    return border == "vlfeat"


def sift_window_means(cell: int, bins: int = 4, window: float = 2.0) -> torch.Tensor:
    """VLFeat's ``fast`` weighting of the 4 spatial bins of a SIFT descriptor along one axis
    (``_vl_dsift_get_bin_window_mean``): the mean, over the bin's 2b − 1 pixels, of the Gaussian window
    of std ``window`` · b centred on the descriptor. Cells are weighted instead of pixels."""
    sigma = cell * window
    x = torch.arange(-cell + 1, cell, dtype=torch.float64)
    means = []
    for t in range(bins):
        delta = cell * (t - 0.5 * (bins - 1))
        means.append(torch.exp(-0.5 * ((x - delta) / sigma) ** 2).mean())
    return torch.stack(means)


def sift_block_filters(K: int = 8, bins: int = 4, stride: int = 1, window: float = 2.0, cell: int = 8,
                       dtype: torch.dtype = torch.float32) -> nn.Conv2d:
    """4×4 cells → one SIFT descriptor (K → 16K channels: index (row·4 + col)·K + k), each cell weighted
    by :func:`sift_window_means` (VLFeat ``fast``), blocks every ``stride`` cells."""
    w = sift_window_means(cell, bins, window)
    weight = torch.zeros(bins * bins * K, K, bins, bins, dtype=torch.float64)
    for i in range(bins):
        for j in range(bins):
            for k in range(K):
                weight[(i * bins + j) * K + k, k, i, j] = w[i] * w[j]
    conv = nn.Conv2d(K, bins * bins * K, bins, stride=stride, bias=False, dtype=dtype)
    return _frozen(conv, weight)


class L2Normalisation(nn.LocalResponseNorm):
    """y = x / sqrt(ε + Σ_c x_c²) over all channels at each position: the standard local response
    normalisation layer b_c = a_c (k + α/n Σ_{c' near c} a_c'²)^−β with a window n = 2C + 1 that covers
    every channel, α = n, β = ½ and k = ε — the authors' ``normalize`` layer with parameters
    [256, 1e-6, 1, 0.5] ("l² normalised, which is a special case of the standard local response
    normalisation layer"). Computed in that closed form (torch's LRN pools a 2C+1 window, 40× slower)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        size = 2 * channels + 1
        super().__init__(size, alpha=float(size), beta=0.5, k=eps)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(self.k + x.pow(2).sum(dim=1, keepdim=True))


def l2_normalisation(channels: int, eps: float = 1e-6) -> L2Normalisation:
    """:class:`L2Normalisation` over ``channels`` channels."""
    return L2Normalisation(channels, eps)


class UoCTTIBlockNorm(nn.Module):
    """l² block normalisation with UoCTTI's quirk (CVPR footnote 1): "the l² normalisation factor is
    computed considering only the unoriented gradient components in a block, but applied to all":

        y = x / max{ sqrt(Σ_{cells c of the block} Σ_o h_{c,o}^unoriented ²), 1e-6 }

    (hog_net.m's ``hog_norm_forward``; VLFeat uses 1/sqrt(Σ + 1e-4)). Input: blocks of
    :func:`hog_block_filters` (``cells`` × ``per_cell`` channels, the last ``unoriented`` of each cell)."""

    def __init__(self, cells: int = 4, per_cell: int = 27, unoriented: int = 9, eps: float = 1e-6) -> None:
        super().__init__()
        self.cells, self.per_cell, self.unoriented, self.eps = cells, per_cell, unoriented, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.unflatten(1, (self.cells, self.per_cell))[:, :, self.per_cell - self.unoriented:]
        sq = u.pow(2).sum(dim=(1, 2))[:, None]
        ok = sq > 0
        norm = torch.where(ok, torch.sqrt(torch.where(ok, sq, torch.ones_like(sq))), torch.zeros_like(sq))
        return x / norm.clamp_min(self.eps)

    def extra_repr(self) -> str:
        return f"cells={self.cells}, per_cell={self.per_cell}, unoriented={self.unoriented}, eps={self.eps:g}"


class Clamp(nn.Module):
    """y = min{x, 0.2} per component (CVPR sect. 3, IJCV sect. 4.1); the derivative passes where x ≤ 0.2."""

    def __init__(self, upper: float = 0.2) -> None:
        super().__init__()
        self.upper = float(upper)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, max=self.upper)

    def extra_repr(self) -> str:
        return f"upper={self.upper:g}"


class L2HysBlocks(nn.Module):
    """scikit-image's ``block_norm='L2-Hys'`` on 2×2 (``block``×``block``) blocks of cells, stride one
    cell: v / sqrt(‖v‖² + ε²), min{·, 0.2}, renormalised the same way (Dalal & Triggs). Used only by the
    scikit-image-compatible configuration (:func:`workbench.representations.networks.SkimageHOG`)."""

    def __init__(self, channels: int, block: int = 2, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels, self.block, self.eps = channels, block, eps
        self.kernel_size, self.stride = (block, block), (1, 1)  # the layer table's conv rule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        b = self.block
        v = x.unfold(2, b, 1).unfold(3, b, 1)              # n, c, H', W', b(row), b(col)
        v = v.permute(0, 2, 3, 4, 5, 1).reshape(n, h - b + 1, w - b + 1, b * b * c)
        v = v / torch.sqrt(v.pow(2).sum(-1, keepdim=True) + self.eps ** 2)
        v = torch.clamp(v, max=0.2)
        v = v / torch.sqrt(v.pow(2).sum(-1, keepdim=True) + self.eps ** 2)
        return v.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, block={self.block}, eps={self.eps:g}"


#: Our own stage modules: leaves of the FX tracer (one layer-table row each).
LEAVES = (HardOrientationBinning, BilinearOrientationBinning, UoCTTIBlockNorm, L2Normalisation, Clamp, L2HysBlocks)
