"""The problem of eq. 7 (Mahendran & Vedaldi, IJCV 2016) for one pre-image run, and its canvas.

:func:`build_problem` sets up Φ (the model truncated at the layer, fed the model's own normalisation
model_input = x / (255 · std)), the target code Φ0, the mask, Z and C for inversion (sect. 3.1, 5.2.1),
activation maximisation (sect. 6.2, eq. 9) and caricature (sect. 7). x lives in the paper's units
(mean-subtracted pixels on a 0–255 scale) on a canvas T−1 pixels larger than the model's input, so that
every jittered window is a full input (:func:`init_canvas`); the pre-image is the canvas's central
window (:func:`crop_centre`), shown as pixels in [0, 1] (:func:`canvas_pixels`, :func:`view_images`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workbench.config.preimage import PreimageConfig
from workbench.errors import UserError
from workbench.preimage import cvpr2015, presets
from workbench.preimage.objectives import channel_mask, inner_product_loss, inversion_loss, spatial_window_mask
from workbench.preimage.regularizers import jitter


@dataclass
class Problem:
    """A configured instance of eq. 7, ready to iterate."""

    phi: torch.nn.Module
    scale: torch.Tensor           # 1 / (255 · std), shape (1, D, 1, 1)
    mean: torch.Tensor            # model mean on the [0, 1] scale, shape (1, D, 1, 1)
    phi0: torch.Tensor            # target code, shape (1, *layer_shape)
    mask: torch.Tensor | None
    loss_kind: str                # "inversion" | "inner"
    Z: float
    C: float
    T: int
    size: tuple[int, int]         # model input (H, W)
    stretch: bool = False         # display each pre-image stretched to [0, 1] (activation maximisation)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Paper units → pixel values in [0, 1] (before clipping)."""
        return x / 255.0 + self.mean

    def code(self, x: torch.Tensor) -> torch.Tensor:
        return self.phi(x * self.scale)

    def loss(self, code: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "inversion":
            return inversion_loss(code, self.phi0, self.mask)
        return inner_product_loss(code, self.phi0, self.Z)


def build_problem(config: PreimageConfig, model, layer, device: torch.device,
                  reference: np.ndarray | None) -> tuple[Problem, dict[str, Any]]:
    """Φ, Φ0, the mask, Z and the constants for ``config`` (sect. 3.1, 5.2.1, 6.2, 7)."""
    c, h, w = model.input_size
    phi = model.truncate(layer.name).to(device)
    std = torch.tensor(model.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    mean = torch.tensor(model.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    scale = 1.0 / (255.0 * std)
    info: dict[str, Any] = {}
    x0 = None
    if reference is not None:
        p0 = torch.from_numpy(reference).permute(2, 0, 1)[None].to(device)
        x0 = 255.0 * (p0 - mean)
    cvpr = config.formulation == "cvpr2015"
    # CVPR 2015 has no jitter (IJCV 2016 added it, sect. 3.4): T = 1 unless --jitter asks
    T = config.jitter if config.jitter is not None else 1 if cvpr else presets.model_jitter(model, layer.stride)
    mask = None
    Z = 1.0
    with torch.no_grad():
        if config.method == "invert":
            phi0 = phi(x0 * scale)
            shape = tuple(phi0.shape[1:])
            if config.mask_window is not None:
                if len(shape) != 3:
                    raise UserError(f"layer {layer.name} has no spatial extent: a window mask needs a conv layer")
                mask = spatial_window_mask(shape, config.mask_window)
            if config.mask_channels:
                bad = [k for k in config.mask_channels if not 0 <= k < shape[0]]
                if bad:
                    raise UserError(f"mask channels {bad} out of range: layer {layer.name} has {shape[0]} channels")
                cm = channel_mask(shape, tuple(config.mask_channels))
                mask = cm if mask is None else mask * cm
            if mask is not None:
                mask = mask[None].to(device)
                if float((phi0 * mask).pow(2).sum()) == 0.0:
                    raise UserError("the masked reference code is all zero: choose other channels or a larger window")
            loss_kind = "inversion"
            if cvpr:  # eq. 3 of CVPR 2015: the normalised data term has weight 1, the priors carry the λs
                C = 1.0
                bold = cvpr2015.preset_lambda_tv(model.layers(), layer.index, max(h, w))
                info.update(lambda_tv=config.lambda_tv if config.lambda_tv is not None else bold, lambda_tv_preset=bold)
            else:
                C = config.C if config.C is not None else presets.preset_C(model.layers(), layer.index, model,
                                                                             layer.name)
            info["saturation"] = saturation_warning(model, layer, phi0)
        elif config.method == "caricature":
            phi0 = phi(x0 * scale).clamp_min(0.0)  # Φ0 = max{0, Φ(x0)}, sect. 7
            Z = float(phi0.pow(2).sum())           # Z = ‖Φ0‖²
            if Z == 0.0:
                raise UserError(f"layer {layer.name} is not active for this image: nothing to caricature")
            loss_kind = "inner"
            C = config.C if config.C is not None else presets.CARICATURE_C
        else:
            shape = layer.shape
            channels = shape[0]
            if not 0 <= config.channel < channels:
                raise UserError(f"channel {config.channel} out of range: layer {layer.name} has {channels} channels (0..{channels - 1})")
            phi0 = torch.zeros((1, *shape), device=device)
            if len(shape) == 1 or len(shape) == 3 and shape[1] * shape[2] == 1:
                phi0.view(1, -1)[0, config.channel] = 1.0
                rho = layer.rf_size
                component, neuron = "neuron", None
            elif config.channel_mean:
                # The whole channel, averaged over positions: its support is the whole
                # image, so ρ = max{H, W} as for the image-wide template of eq. 9.
                phi0[0, config.channel] = 1.0 / (shape[1] * shape[2])
                rho = max(h, w)
                component, neuron = "channel mean", None
            else:
                # Sect. 6.2: Φ0 is "the one-hot indicator vector of the representation component",
                # by default the neuron at the centre of the map (H//2, W//2), with ρ its receptive field.
                y, xx = config.neuron if config.neuron is not None else (shape[1] // 2, shape[2] // 2)
                if not (0 <= y < shape[1] and 0 <= xx < shape[2]):
                    raise UserError(f"neuron ({y}, {xx}) is outside the {shape[1]}×{shape[2]} map of {layer.name}")
                phi0[0, config.channel, y, xx] = 1.0
                rho = layer.rf_size
                component, neuron = "neuron", (int(y), int(xx))
            M, M_source = _activation_range(model, phi, scale, mean, phi0, device)
            Z = M * rho * rho                       # Z = Mρ², eq. 9 and sect. 6.2
            info.update(M=M, M_source=M_source, rho=rho, component=component, neuron=neuron)
            loss_kind = "inner"
            C = config.C if config.C is not None else presets.maximize_C(rho)
    info.update(C=C, T=T, Z=Z)
    return Problem(phi, scale, mean, phi0, mask, loss_kind, Z, C, T, (h, w), stretch=config.method == "maximize"), info


#: A code with more than this fraction of its values at its floor or ceiling (a ReLU's zeros, a ReLU6's 0
#: and 6) is "mostly zero or saturated". efficientnet-lite0's final ReLU6 (_swish_1) holds 0.85–0.94 on
#: the sample photos and inverts to error 0.78–0.89 for every C from 1 to 1000; its ReLU6 inside the
#: blocks hold 0.25–0.81 and invert.
SATURATED = 0.9


def saturated_fraction(code: torch.Tensor) -> float:
    """The fraction of ``code``'s values at its smallest or largest value, each counted where more than
    one value sits there (a clamp: ReLU's 0, ReLU6's 6, a saturated tanh's ±1); 1 for a constant code."""
    flat = code.detach().flatten()
    lo, hi = flat.min(), flat.max()
    if bool(lo == hi):
        return 1.0
    at = [int((flat == v).sum()) for v in (lo, hi)]
    return sum(n for n in at if n > 1) / flat.numel()


def saturation_warning(model, layer, phi0: torch.Tensor) -> str | None:
    """One line when the reference code of ``layer`` is mostly zero or saturated (:data:`SATURATED`): its
    pre-image is then barely constrained and gets no gradient where the code is clamped. It names the
    layer to invert instead: the row before it when that has the same shape, receptive field and stride
    (the input of the activation: a norm or a conv)."""
    frac = saturated_fraction(phi0)
    if frac <= SATURATED:
        return None
    rows = model.layers()
    before = rows[layer.index - 1] if layer.index > 0 else None
    same = before is not None and ((tuple(before.shape), before.rf_size, before.stride)
                                   == (tuple(layer.shape), layer.rf_size, layer.stride))
    instead = before if same else None
    hint = f": invert {instead.name}, the layer before its activation" if instead is not None else \
        ": invert a layer before its activation"
    return (f"{layer.name}'s code of this image is {100 * frac:.0f} % zero or saturated, so its inversion is "
            f"barely constrained (expect a high error whatever C){hint}")


@torch.no_grad()
def _activation_range(model, phi, scale, mean, phi0, device) -> tuple[float, str]:
    """M of eq. 9: the largest value the component reaches on the model's data (sect. 6.2), the images
    B and V are measured on (:func:`presets.calibration_images`: the paper's ILSVRC → the digits'
    training split, or the natural photos the installed packages ship)."""
    data = presets.calibration_images(model)
    if data is None:
        return 1.0, "no data (M = 1)"
    images, source = data
    best = 0.0
    for i in range(0, len(images), 256):
        x = 255.0 * (images[i:i + 256].to(device) - mean)
        values = (phi(x * scale) * phi0).flatten(1).sum(1)
        best = max(best, float(values.max()))
    return (best if best > 0 else 1.0), source


def init_canvas(config: PreimageConfig, problem: Problem, x0: torch.Tensor | None, k: int,
                device: torch.device, B: float) -> tuple[torch.Tensor, torch.Generator]:
    """Restart k's canvas and its own generator (seeded by seed and k, so schedules agree)."""
    g = torch.Generator().manual_seed(config.seed * 100_003 + k)
    h, w = problem.size
    T = problem.T
    c = problem.mean.shape[1]
    if config.method == "caricature":
        lo = (T - 1) // 2
        canvas = torch.nn.functional.pad(x0, (lo, T - 1 - lo, lo, T - 1 - lo), mode="replicate") if T > 1 else x0.clone()
    else:
        # i.i.d. noise (sect. 5) with pixel norm ≈ B/10: small against the bound, so the
        # prior and the data term, not the initialisation, decide the image.
        sigma = 0.1 * B / math.sqrt(c)
        canvas = torch.randn((1, c, h + T - 1, w + T - 1), generator=g) * sigma
    return canvas.to(device), g


def crop_centre(x: torch.Tensor, T: int) -> torch.Tensor:
    """The canvas's central window, the pre-image itself: jitter by τ = ((T−1)//2, (T−1)//2)."""
    lo = (T - 1) // 2
    return jitter(x, T, torch.tensor([[lo, lo]]))


def canvas_pixels(problem: Problem, xs: list[torch.Tensor], crop: bool = True, view: bool = True) -> np.ndarray:
    """Canvases → (K, H, W, C) float32 pixels in [0, 1], a detached CPU copy.

    Inversions and caricatures are shown in the model's own pixel values. Activation
    maximisation has no reference image, so each pre-image is stretched to [0, 1] for
    display, as the paper's figures are (vl_imsc in the authors' code): ``view=False`` gives the
    image itself, clipped to [0, 1] (what tensors/preimages.safetensors keeps).
    """
    with torch.no_grad():
        x = torch.cat([crop_centre(x.detach(), problem.T) if crop else x.detach() for x in xs])
        if problem.stretch and view:
            lo = x.amin(dim=(1, 2, 3), keepdim=True)
            hi = x.amax(dim=(1, 2, 3), keepdim=True)
            p = (x - lo) / (hi - lo).clamp_min(1e-6)
        else:
            p = problem.to_pixels(x).clamp_(0.0, 1.0)
        return np.ascontiguousarray(p.permute(0, 2, 3, 1).cpu().numpy(), dtype=np.float32)


def view_name(problem: Problem) -> str:
    """How images/*.png show the stored pixels: "stretched" (each to [0, 1]) or "pixels" (as they are)."""
    return "stretched" if problem.stretch else "pixels"


def view_images(pixels: np.ndarray, view: str | None) -> np.ndarray:
    """The view of stored pre-images (K, H, W, C): each stretched to [0, 1] when ``view`` is "stretched"
    (metrics.json's ``view``; activation maximisation), else the pixels themselves."""
    if view != "stretched":
        return pixels
    flat = pixels.reshape(len(pixels), -1)
    lo, hi = flat.min(1), flat.max(1)
    shape = (-1,) + (1,) * (pixels.ndim - 1)
    return ((pixels - lo.reshape(shape)) / np.maximum(hi - lo, 1e-6).reshape(shape)).astype(np.float32)
