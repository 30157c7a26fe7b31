"""Deeper filters as weighted combinations of first-layer filters (Lee et al. 2011, the lecture's
Fig. 3: "each second layer basis (filter) was visualized as a weighted linear combination of the
first layer bases").

Along the chain of convolutions from the first, a filter of layer L is drawn in input pixels by
placing layer L − 1's composite filters at its taps, weighted by its weights:

    F_L[o] = Σ_c Σ_u W_L[o, c, u] · F_{L−1}[c]( · − s_L·d_L·u ),     F_1 = W_1,

with s_L the stride (in input pixels) of layer L's input grid, measured by a forward pass, and d_L
its dilation: a transposed convolution of W_L with F_{L−1} at stride s_L·d_L. As in Lee et al. the
non-linearities and pooling between the layers are left out (pooling only sets the stride). A
batch norm right after a convolution (eval statistics) scales its channels, γ/√(var + ε), and that
scale is folded into the weights, so the combination weighs each channel as the network does.
The chain stops at a convolution whose input is not the previous one's output channels (a grouped
convolution, a concatenation) or once the work would exceed ``budget`` multiply-adds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench.errors import UserError

#: Multiply-adds allowed for composing a chain (a deep ImageNet layer would need ~10¹¹).
BUDGET = 2e9


@dataclass(frozen=True)
class ConvStep:
    name: str
    conv: nn.Conv2d
    stride_in: int            # input pixels between neighbouring positions of this layer's input
    scale: torch.Tensor | None  # folded batch-norm scale per output channel


#: How many pixels larger the second probing pass's image is (2⁶·3: exact for strides 1, 2, 3, 4, 6, 8, 16 …).
PROBE = 192


def _calls(module: nn.Module, input_size, tolerant: bool = False) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """(name, module, input shape) of every Conv2d and BatchNorm2d call of one forward pass on zeros."""
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    me = threading.get_ident()  # another thread's forward pass on a shared model is not ours to record

    def record(mod, inputs, _out, name):
        if threading.get_ident() == me:
            calls.append((name, mod, tuple(inputs[0].shape)))

    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: record(mod, i, o, name))
             for name, m in module.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    device = next(module.parameters(), torch.empty(0)).device
    was_training = module.training
    if was_training:
        module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(1, *input_size, device=device))
    except Exception:  # noqa: BLE001 - the larger probe only; the first pass must succeed
        if not tolerant:
            raise
    finally:
        for h in hooks:
            h.remove()
        if was_training:
            module.train()
    return calls


def conv_chain(module: nn.Module, input_size: tuple[int, int, int]) -> list[ConvStep]:
    """The convolutions the forward pass calls, in order, each with its input's stride and the scale of
    a batch norm called right after it; the chain ends where a layer's input channels differ from the
    previous convolution's output channels or it is grouped."""
    calls = _calls(module, input_size)
    # The stride of each convolution's input grid, from how its size grows with the image's: a pass on
    # an image PROBE pixels larger (a classifier after it may refuse that size: its error is ignored,
    # the convolutions before it were called). Unpadded layers make the plain size ratio wrong.
    c, h, w = input_size
    larger = _calls(module, (c, h + PROBE, w + PROBE), tolerant=True)
    strides = []
    for i, (_name, _m, shape) in enumerate(calls):
        grown = larger[i][2][-2] - shape[-2] if i < len(larger) else 0
        strides.append(PROBE // grown if grown > 0 and PROBE % grown == 0 else max(1, int(round(h / max(shape[-2], 1)))))
    chain: list[ConvStep] = []
    for i, (name, m, shape) in enumerate(calls):
        if not isinstance(m, nn.Conv2d):
            continue
        if chain and (m.groups != 1 or m.in_channels != chain[-1].conv.out_channels):
            break
        if not chain and m.groups != 1:
            break
        scale = None
        if i + 1 < len(calls) and isinstance(calls[i + 1][1], nn.BatchNorm2d) \
                and calls[i + 1][1].num_features == m.out_channels:
            bn = calls[i + 1][1]
            if bn.running_var is not None:
                gamma = bn.weight.detach() if bn.weight is not None else torch.ones(m.out_channels)
                scale = (gamma / torch.sqrt(bn.running_var.detach() + bn.eps)).cpu().double()
        chain.append(ConvStep(name, m, strides[i], scale))
    return chain


def _dilate(w: torch.Tensor, d: int) -> torch.Tensor:
    if d == 1:
        return w
    out = w.new_zeros(*w.shape[:2], (w.shape[-2] - 1) * d + 1, (w.shape[-1] - 1) * d + 1)
    out[..., ::d, ::d] = w
    return out


def composite_filters(module: nn.Module, input_size: tuple[int, int, int], upto: str | None = None,
                      budget: float = BUDGET) -> list[tuple[str, torch.Tensor]]:
    """[(layer, F_L)] along the chain (module docstring), each F_L (out, input channels, K, K) in
    float64, up to and including the convolution ``upto`` (default: as far as the chain and the
    budget go). A UserError when ``upto`` is not a convolution of the chain or is over the budget."""
    chain = conv_chain(module, input_size)
    if not chain:
        raise UserError("this model has no convolution to draw filters of")
    names = [c.name for c in chain]
    if upto is not None and upto not in names:
        raise UserError(f"{upto} is not on the chain of convolutions from the first layer "
                        f"({', '.join(names)}): its filters cannot be drawn as combinations of the first layer's")
    out: list[tuple[str, torch.Tensor]] = []
    work = 0.0
    previous: torch.Tensor | None = None
    for step in chain:
        w = step.conv.weight.detach().cpu().double()
        mask = getattr(step.conv, "connection", None)
        if isinstance(mask, torch.Tensor):
            w = w * mask.cpu().double()
        if step.scale is not None:
            w = w * step.scale.view(-1, 1, 1, 1)
        d = int(step.conv.dilation[0]) if step.conv.dilation[0] == step.conv.dilation[1] else 0
        if d == 0:
            break
        if previous is None:
            current = _dilate(w, d)
        else:
            k2 = previous.shape[-1] * previous.shape[-2]
            work += w.numel() * previous.shape[1] * k2
            if work > budget:
                if upto is not None:
                    raise UserError(f"composing the filters of {upto} would take over {budget:.0e} multiply-adds: "
                                    f"pick an earlier layer")
                break
            current = F.conv_transpose2d(w, previous, stride=step.stride_in * d)
        out.append((step.name, current))
        previous = current
        if step.name == upto:
            break
    return out


def filter_tiles(weight: torch.Tensor) -> np.ndarray:
    """Filters (O, C, k, k) as tiles (O, k, k, C'), 0.5 + w / (2 max|w|) per filter (grey = 0); C' is
    C for grey or colour input, else the first channel."""
    w = weight.detach().float().cpu()
    if w.shape[1] not in (1, 3):
        w = w[:, :1]
    scale = w.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return np.ascontiguousarray((0.5 + w / (2 * scale)).permute(0, 2, 3, 1).numpy(), dtype=np.float32)


def composite_for_layer(module: nn.Module, input_size: tuple[int, int, int], layer: str | None,
                        limit: int = 256) -> tuple[str, np.ndarray] | None:
    """What the Feature maps and filters dock shows: the composite filters of the last chain
    convolution at or before ``layer`` in the chain's order (the second convolution when ``layer``
    is earlier or not a convolution), as tiles of its first ``limit`` filters; None when the model has
    fewer than two chained convolutions."""
    chain = conv_chain(module, input_size)
    if len(chain) < 2:
        return None
    names = [c.name for c in chain]
    target = names[1]
    if layer is not None:
        order = [n for n, _m in module.named_modules()]
        if layer in order:
            before = [n for n in names if order.index(n) <= order.index(layer)]
            if len(before) >= 2:
                target = before[-1]
    try:
        composites = composite_filters(module, input_size, upto=target)
    except UserError:
        composites = composite_filters(module, input_size, upto=None)
        if len(composites) < 2:
            return None
    name, f = composites[-1]
    return name, filter_tiles(f[:limit])


def composite_job(model, layer: str | None, cancel):
    """The Feature maps and filters dock's job (Qt-free, on a worker): ``(layer, tiles, caption)`` of
    :func:`composite_for_layer` for a :class:`~workbench.models.LoadedModel`, or None."""
    cancel.check()
    shown = composite_for_layer(model.module, tuple(model.input_size), layer)
    if shown is None:
        return None
    name, tiles = shown
    return name, tiles, (f"{name}: {len(tiles)} filters of {tiles.shape[1]}×{tiles.shape[2]} input pixels, each a "
                         f"weighted combination of the first layer's (Lee et al.; non-linearities and pooling left "
                         f"out; grey = 0) — the last convolution up to the selected layer")
