"""Paper constants (IJCV sect. 3.3) and per-layer choices (sect. 5.2.1, 6.2)."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config.preimage import (ALPHA, B, B_PLUS_FACTOR, BETA, FINE_TUNE_ITERS, FINE_TUNE_RATE,  # noqa: F401
                                       ITERS, V_FACTOR, preset_jitter)

_CONV_KINDS = ("Conv2d", "PartialConv2d", "Conv1d", "Conv3d")
_PASS_THROUGH = ("ReLU", "ReLU6", "LeakyReLU", "Tanh", "Sigmoid", "GELU", "SiLU", "BatchNorm2d",
                 "LocalResponseNorm", "Dropout", "Identity")

#: Sect. 5.2.1's C values by the fraction f of the input a unit sees (its receptive field over the input's
#: side): f ≤ 1/2 → 300, f ≤ 2/3 → 100, f ≤ 1 → 20 to the end of the last conv block, and 1 after it or
#: where a unit's field reaches past the whole input (the paper's fc6–fc8: 355 px on 227, C = 1).
#: On the paper's nets (torchvision's tables, 224²): AlexNet relu3 sees 0.44, conv4 0.58, conv5 0.73;
#: VGG-VD-16 pool4 0.45, conv5_1 0.59, conv5_2 0.73, conv5_3 0.88 — the paper's 300 / 100 / 20 boundaries
#: fall between. efficientnet-lite0's fields pass the 224 px input from _blocks.9 (275 px) on: chelsea
#: inverted from _blocks.10.add keeps "Egyptian cat" in 4 of 4 restarts at C = 1 and in none at C = 20.
RF_FRACTIONS = ((0.5, 300.0), (2.0 / 3.0, 100.0))
C_LAST_BLOCK = 20.0
C_AFTER = 1.0


@dataclass(frozen=True)
class LayerDepth:
    convs_up_to: int     # conv layers computed up to and including this layer
    convs_total: int
    after_last_conv_block: bool  # a pooling / fully connected layer past the last conv and its activation


def layer_depth(kinds: list[str], index: int) -> LayerDepth:
    """Where layer ``index`` sits among the conv layers of a network with layer ``kinds`` (a bare list
    of kinds has no receptive fields: :func:`preset_C` then reads depth from these counts)."""
    total = sum(_is_conv(k) for k in kinds)
    upto = sum(_is_conv(k) for k in kinds[: index + 1])
    after = False
    if upto == total and total > 0:
        last_conv = max(i for i, k in enumerate(kinds) if _is_conv(k))
        after = any(k not in _PASS_THROUGH for k in kinds[last_conv + 1: index + 1])
    return LayerDepth(upto, total, after)


def _is_conv(kind: str) -> bool:
    """A convolution row, whatever its class: ``Conv2d``, a subclass (``Conv2dStaticSamePadding``,
    timm's ``Conv2dSame``, a user's), a functional ``conv2d``."""
    return kind in _CONV_KINDS or "conv" in str(kind).lower() and "transpose" not in str(kind).lower()


def last_conv_block(layers) -> int | None:
    """Index of the last row of the last conv block: the last convolution (or, in a table without one,
    the last row with a spatial map larger than 1×1) and the element-wise rows right after it (norms, activations,
    dropout: same shape, receptive field and stride). Rows past it (pooling, flatten, fully connected)
    are what sect. 5.2.1 inverts with C = 1. None for a table without either."""
    convs = [i for i, l in enumerate(layers) if _is_conv(l.kind)]
    if convs:
        end = convs[-1]
    else:
        maps = [i for i, l in enumerate(layers) if len(l.shape) == 3 and l.shape[1] * l.shape[2] > 1]
        if not maps:
            return None
        end = maps[-1]
    while end + 1 < len(layers) and _elementwise(layers[end], layers[end + 1]):
        end += 1
    return end


def _elementwise(before, after) -> bool:
    return (tuple(before.shape), before.rf_size, before.stride) == (tuple(after.shape), after.rf_size, after.stride)


#: Per-model choices made as the paper made its own (sect. 5.2.2): C ∈ {1, 20, 100} swept on
#: six test digits, 200 iterations, keeping the most regularised C whose pre-images all keep
#: the reference's class. digits-vgg pool5: C = 1 → consistency 0.50 (error 0.42), C = 20 →
#: 1.00 (0.028); fc: C = 1 → 1.00 (0.125). digits-lenet5 keeps the rule (f6, output: C = 1 → 1.00).
MODEL_C: dict[str, dict[str, float]] = {
    "digits-vgg": {"pool5": 20.0, "flatten": 20.0},
}


def preset_C(layers, index: int, model=None, layer_name: str | None = None,
             input_size: tuple[int, ...] | None = None) -> float:
    """The data-term weight C for inversion from layer ``index`` (sect. 5.2.1).

    ``layers`` is the model's layer table (:class:`~workbench.models.graph.LayerInfo` rows). The paper
    gives, for AlexNet/VGG-M, C = 300 up to relu3, 100 up to relu4, 20 up to relu5 and 1 after; for
    VGG-VD-16, 300 up to conv4_3, 100 for conv5_1, 20 up to conv5_3 and 1 onwards. Read in terms every
    network has, that is one rule (:data:`RF_FRACTIONS`): a unit that sees at most half of the input's
    side gets 300, at most two thirds 100, at most all of it 20 up to the end of the last conv block
    (:func:`last_conv_block`); every layer past that block (pooling, fully connected) and every unit whose
    field reaches past the whole input, as the paper's fully connected layers' do, gets 1. The receptive
    field is the table's (Table 1), against ``input_size`` (default: ``model.input_size``).

    Given only a list of kinds (no receptive fields), depth is the fraction f of the conv rows computed,
    the same rule on the paper's nets: f ≤ 10/13 → 300, f ≤ 11/13 → 100, up to the last conv block
    → 20, then 1.

    A model may carry its own per-layer choices in its metadata (``preimage_C``: layer → C),
    made as the paper made them for each of its networks: by sweeping C ∈ {1, 20, 100, 300}
    and keeping the most regularised value whose pre-images stay classification consistent.
    """
    metadata = getattr(model, "metadata", None) or {}
    overrides = {**MODEL_C.get(metadata.get("architecture", getattr(model, "name", "")), {}),
                 **metadata.get("preimage_C", {})}
    if layer_name is not None and layer_name in overrides:
        return float(overrides[layer_name])
    size = input_size if input_size is not None else getattr(model, "input_size", None)
    if layers and not isinstance(layers[0], str) and size is not None:
        return _C_from_receptive_field(layers, index, max(size[-2:]))
    kinds = [k if isinstance(k, str) else k.kind for k in layers]
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


def _C_from_receptive_field(layers, index: int, side: int) -> float:
    end = last_conv_block(layers)
    if end is None or index > end:
        return C_AFTER
    seen = layers[index].rf_size / side
    if seen > 1.0 + 1e-9:  # a field past the whole input, as the paper's fc6–fc8 (355 px on 227): C = 1
        return C_AFTER
    for fraction, C in RF_FRACTIONS:
        if seen <= fraction + 1e-9:
            return C
    return C_LAST_BLOCK


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
    """B of eq. 5, "the typical L2 norm of the pixel RGB vector, such that N_α(x) ≈ 1" (sect. 3.2.1),
    measured on the model's data (:func:`calibration_images`).

    On the bundled digits, as N_α ≈ 1 reads it: B = (mean over images of Σ_uv ‖x(v,u)‖^α / HW)^(1/α)
    = 109.4 (their saturated strokes lie far above 80). On natural photos that α = 6 mean is ruled by
    the brightest pixels (152 with ImageNet's mean, 1.35× the median), so B is the typical norm itself,
    the median of ‖x(v,u)‖ over the photos' pixels: 112.4 at 224² with ImageNet's mean (the paper's 80
    for ILSVRC). A model with neither keeps 80.
    """
    data = _data_in_paper_units(model)
    if data is None:
        return B
    x, photos = data
    if photos:
        return round(float(x.norm(dim=1).median()), 1)
    from workbench.preimage.regularizers import alpha_norm

    return round(float(alpha_norm(x, alpha, 1.0).mean() ** (1.0 / alpha)), 1)


def preset_V(model, beta: float = BETA, B_value: float | None = None) -> float:
    """V of eq. 6, "the typical value of the norm of the gradient in the image" (sect. 3.2.2).

    On the bundled digits, so that R_TV^β ≈ 1 on them: V = (mean over images of Σ_uv (Δ_u² + Δ_v²)^(β/2)
    / HW)^(1/β) = 26.3, where B/6.5 = 16.8 would make R_TV^β = 2.38 on the test digits instead of 1.00
    (tests/test_preimage_parts.py). On natural photos the gradient is heavy-tailed (edges): its β = 2
    mean is the RMS, 43.9 at 224², 4.7× the median, and a prior that calls that typical lets
    high-frequency colour noise into deep inversions (efficientnet-lite0 _blocks.6.add at C = 100:
    chelsea read as "tiger cat", consistency 0, against 1.0 at the median). So V is the median of the
    pixels' gradient norm (Δ_u² + Δ_v² over the channels, as in R_TV^β) at the model's input size:
    9.3 at 224² (the paper's B/6.5 = 12.3 for ILSVRC). A model with no data keeps B/6.5.
    """
    data = _data_in_paper_units(model)
    if data is None:
        return V_FACTOR * (B if B_value is None else B_value)
    x, photos = data
    if photos:
        d_u = x[..., :-1, 1:] - x[..., :-1, :-1]
        d_v = x[..., 1:, :-1] - x[..., :-1, :-1]
        return round(float((d_u.pow(2) + d_v.pow(2)).sum(1).sqrt().median()), 1)
    from workbench.preimage.regularizers import tv_beta

    return round(float(tv_beta(x, beta, 1.0).mean() ** (1.0 / beta)), 1)


def calibration_images(model):
    """The images B, V (sect. 3.3) and M (sect. 6.2) are measured on for ``model``, as an (N, C, H, W)
    tensor of pixels in [0, 1] at its input size, and what they are; None for a model with no such data.

    The paper uses ILSVRC photos for its ImageNet nets. A model trained on the bundled digits gets
    their training split; any other model taking RGB gets the natural photos the installed packages
    ship (:mod:`workbench.data.photos`: 8 photos); a model of another input (HOG's grey cells) none.
    """
    import torch

    if getattr(model, "dataset", None) == "digits":
        from workbench.data.digits import load_digits32

        images, _ = load_digits32("train")
        return images, "digits train split"
    size = getattr(model, "input_size", None)
    if size is None or size[0] != 3:
        return None
    from workbench.data.photos import SOURCE, natural_photos

    names, images = natural_photos(3, tuple(size[1:]))
    if not names:
        return None
    return torch.from_numpy(images), f"{len(names)} {SOURCE}"


def _data_in_paper_units(model):
    """The model's calibration images as x = 255 (p − mean) (sect. 3) and whether they are the natural
    photos (else the digits); None for a model with neither."""
    import torch

    data = calibration_images(model)
    if data is None:
        return None
    images = data[0]
    mean = torch.tensor(model.mean, dtype=images.dtype).view(1, -1, 1, 1)
    return 255.0 * (images - mean), getattr(model, "dataset", None) != "digits"
