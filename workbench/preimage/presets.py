"""Paper constants (IJCV sect. 3.3) and per-layer choices (sect. 5.2.1, 6.2)."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config.preimage import (ALPHA, B, B_PLUS_FACTOR, BETA, FINE_TUNE_ITERS, FINE_TUNE_RATE,  # noqa: F401
                                       ITERS, V_FACTOR, preset_jitter)

_CONV_KINDS = ("Conv2d", "PartialConv2d", "Conv1d", "Conv3d")
_PASS_THROUGH = ("ReLU", "ReLU6", "LeakyReLU", "Tanh", "Sigmoid", "GELU", "SiLU", "BatchNorm2d",
                 "LocalResponseNorm", "Dropout", "Identity")


@dataclass(frozen=True)
class LayerDepth:
    convs_up_to: int     # conv layers computed up to and including this layer
    convs_total: int
    after_last_conv_block: bool  # a pooling / fully connected layer past the last conv and its activation


def layer_depth(kinds: list[str], index: int) -> LayerDepth:
    """Where layer ``index`` sits among the conv layers of a network with layer ``kinds``."""
    total = sum(k in _CONV_KINDS for k in kinds)
    upto = sum(k in _CONV_KINDS for k in kinds[: index + 1])
    after = False
    if upto == total and total > 0:
        last_conv = max(i for i, k in enumerate(kinds) if k in _CONV_KINDS)
        after = any(k not in _PASS_THROUGH for k in kinds[last_conv + 1: index + 1])
    return LayerDepth(upto, total, after)


#: Per-model choices made as the paper made its own (sect. 5.2.2): C ∈ {1, 20, 100} swept on
#: six test digits, 200 iterations, keeping the most regularised C whose pre-images all keep
#: the reference's class. digits-vgg pool5: C = 1 → consistency 0.50 (error 0.42), C = 20 →
#: 1.00 (0.028); fc: C = 1 → 1.00 (0.125). digits-lenet5 keeps the rule (f6, output: C = 1 → 1.00).
MODEL_C: dict[str, dict[str, float]] = {
    "digits-vgg": {"pool5": 20.0, "flatten": 20.0},
}


def preset_C(kinds: list[str], index: int, model=None, layer_name: str | None = None) -> float:
    """The data-term weight C for inversion from layer ``index`` (sect. 5.2.1).

    A model may carry its own per-layer choices in its metadata (``preimage_C``: layer → C),
    made as the paper made them for each of its networks: by sweeping C ∈ {1, 20, 100, 300}
    and keeping the most regularised value whose pre-images stay classification consistent.

    The paper gives, for AlexNet/VGG-M, C = 300 up to relu3, 100 up to relu4, 20 up to
    relu5 and 1 after; for VGG-VD-16, 300 up to conv4_3, 100 for conv5_1, 20 up to conv5_3
    and 1 onwards. Both are the same rule in terms of the fraction f of conv layers
    computed: f ≤ 10/13 → 300, f ≤ 11/13 → 100, up to the last conv block → 20, then 1.
    """
    metadata = getattr(model, "metadata", None) or {}
    overrides = {**MODEL_C.get(metadata.get("architecture", getattr(model, "name", "")), {}),
                 **metadata.get("preimage_C", {})}
    if layer_name is not None and layer_name in overrides:
        return float(overrides[layer_name])
    d = layer_depth(kinds, index)
    if d.convs_total == 0:
        return 1.0
    if d.after_last_conv_block:
        return 1.0
    f = d.convs_up_to / d.convs_total
    if f <= 10 / 13 + 1e-9:
        return 300.0
    if f <= 11 / 13 + 1e-9:
        return 100.0
    return 20.0


#: Caricature (sect. 7) gives no C. With C = 1 the prior outweighs Z = ‖Φ0‖² and the image
#: fades; 20, one of the paper's C values, exaggerates without leaving the image behind.
CARICATURE_C = 20.0


def maximize_C(rho: float) -> float:
    """Default C for activation maximisation with Z = Mρ² (eq. 9).

    The paper uses C = 1 (sect. 6.2), but its priors R_α and R_TV^β are normalised by the
    image area HW while the data term is divided by ρ²: with the area-normalised priors of
    eqs. 5–6 as written, C = 1 leaves the activation far below its range M. C = ρ² restores
    the balance the paper intends (the loss is the activation in units of M, like the priors
    in units of their typical values).
    """
    return float(rho * rho)


def model_jitter(model, stride: int) -> int:
    """The jitter T for a layer of ``model``: the model's own (metadata ``preimage_jitter``; HOG and
    DSIFT are inverted without jitter, IJCV sect. 5.1) or a quarter of the stride (sect. 5.2.1)."""
    metadata = getattr(model, "metadata", None) or {}
    own = metadata.get("preimage_jitter")
    return int(own) if isinstance(own, int) and not isinstance(own, bool) and own >= 1 else preset_jitter(stride)


def preset_B(model, alpha: float = ALPHA) -> float:
    """B of eq. 5, "the typical L2 norm of the pixel RGB vector, such that N_α(x) ≈ 1" (sect. 3.2.1).

    The paper's 80 is that value for mean-subtracted ImageNet photos. For a model trained on
    a bundled dataset we compute it the same way from its training images:
    B = (mean over images of Σ_uv ‖x(v,u)‖^α / HW)^(1/α), so N_α ≈ 1 on the data (109 for
    the digits, whose saturated strokes lie far above 80). A few milliseconds: not cached.
    """
    x = _data_in_paper_units(model)
    if x is None:
        return B
    from workbench.preimage.regularizers import alpha_norm

    return round(float(alpha_norm(x, alpha, 1.0).mean() ** (1.0 / alpha)), 1)


def preset_V(model, beta: float = BETA, B_value: float | None = None) -> float:
    """V of eq. 6, "the typical value of the norm of the gradient in the image" (sect. 3.2.2),
    so that R_TV^β ≈ 1 on the data.

    The paper's V = B/6.5 is that value for ImageNet photos (sect. 3.3). For a model trained
    on a bundled dataset we measure it as B is measured: V = (mean over images of
    Σ_uv (Δ_u² + Δ_v²)^(β/2) / HW)^(1/β). On the digits V = 26.3, where B/6.5 = 16.8 would
    make R_TV^β = 2.38 on the test digits instead of 1.00 (tests/test_preimage_parts.py).
    """
    x = _data_in_paper_units(model)
    if x is None:
        return V_FACTOR * (B if B_value is None else B_value)
    from workbench.preimage.regularizers import tv_beta

    return round(float(tv_beta(x, beta, 1.0).mean() ** (1.0 / beta)), 1)


def _data_in_paper_units(model):
    """The model's bundled training images as x = 255 (p − mean) (sect. 3), or None."""
    if getattr(model, "dataset", None) != "digits":
        return None
    import torch

    from workbench.data.digits import load_digits32

    images, _ = load_digits32("train")
    mean = torch.tensor(model.mean, dtype=images.dtype).view(1, -1, 1, 1)
    return 255.0 * (images - mean)

