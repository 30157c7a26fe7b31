"""The CVPR 2015 formulation of inversion, as printed (Mahendran & Vedaldi, "Understanding deep image
representations by inverting them", sect. 2, eq. 3 ``eq:obj``):

    x* = argmin_x  ‖Φ(σx) − Φ0‖² / ‖Φ0‖²  +  λ_α R_α(x)  +  λ_TV R_TV^β(x),

    R_α(x) = ‖x‖_α^α           (x vectorised and mean-subtracted; α = 6),
    R_TV^β(x) = Σ_ij,k ((x_i,j+1 − x_ij)² + (x_i+1,j − x_ij)²)^(β/2)   (β = 2, summed over colour channels),

σ "the average Euclidean norm of natural images in a training set", and the errors of its Tables 1 and 3
‖Φ(x*) − Φ0‖ / N_Φ, N_Φ "the average pairwise euclidean distance between Φ(x_i)'s across the [...] test
images". The IJCV 2016 form (``workbench.preimage.solve``) divides each prior by its typical value and
weighs the data term by C instead.

The engine keeps x in its own units (mean-subtracted pixels on a 0–255 scale, the image σx of the CVPR
text), so the CVPR priors are taken of x/σ. What this module chooses, where the paper leaves it open:

- σ is measured on the model's calibration images (the digits' training split, or the photos the
  packages ship; :func:`workbench.preimage.presets.calibration_images`; HOG's grey input: the photos in
  grey), else the reference's own norm;
- λ_α defaults to the paper's printed rule λ_α ≈ σ^α / (HW B^α) with B = 128 (sect. 2, "Balancing the
  different terms"); on CNN-A (227², σ ≈ 1.9·10⁴, a pixel RMS of ≈ 49) that rule gives the paper's fixed
  2.16·10⁸, which ``--lambda-alpha 2.16e8`` sets exactly;
- λ_TV defaults to the paper's bold choice of Table 3 read, like IJCV sect. 5.2.1's C, from the fraction of
  the input a unit sees (:func:`preset_lambda_tv`);
- N_Φ is taken over (at most :data:`N_PHI_IMAGES`) calibration images, not over the test images of a
  particular run, so a single inversion has it too.
"""

from __future__ import annotations

import itertools
import math

import torch

from workbench.preimage.regularizers import alpha_norm, tv_beta

#: CVPR sect. 4 and 5: "λ_α = 2.16 × 10⁸", "λ_1 = 0.5, λ_2 = 10 λ_1 and λ_3 = 100 λ_1".
LAMBDA_ALPHA = 2.16e8
LAMBDA_TV = (0.5, 5.0, 50.0)
#: "e.g. in most CNN implementations B = 128" (sect. 2).
B_RANGE = 128.0
#: Table 3's bold λ_TV by the fraction f of the input's side a unit sees: CNN-A's layers 1–6 (conv1–relu2,
#: 11–51 px of 227: f ≤ 0.23) take λ1, layers 7–12 (mpool2–relu4, 67–131 px: 0.30–0.58) λ2, layers 13–20
#: (conv5–fc8, 163 px and more: f ≥ 0.72, and everything past the last conv block) λ3. On torchvision's
#: AlexNet at 224² the same boundaries fall at the same layers (conv2 0.23, pool2 0.30, conv4 0.58, conv5 0.73).
RF_LAMBDA = ((0.25, LAMBDA_TV[0]), (2.0 / 3.0, LAMBDA_TV[1]))
#: The paper's N_Φ is over its 100 test images.
N_PHI_IMAGES = 100


def preset_lambda_tv(layers, index: int, side: int) -> float:
    """Table 3's bold λ_TV for layer ``index`` of the table ``layers`` on an input of ``side`` pixels."""
    from workbench.preimage.presets import last_conv_block

    end = last_conv_block(layers)
    if end is None or index > end:
        return LAMBDA_TV[2]
    seen = layers[index].rf_size / side
    for fraction, value in RF_LAMBDA:
        if seen <= fraction + 1e-9:
            return value
    return LAMBDA_TV[2]


def natural_images(model):
    """The images σ and N_Φ are measured on: the model's calibration images
    (:func:`workbench.preimage.presets.calibration_images`), else, for an input of other channels (HOG's
    grey image), the photos the packages ship in its channels; None when there are none."""
    from workbench.preimage.presets import calibration_images

    data = calibration_images(model)
    size = getattr(model, "input_size", None)
    if data is None and size is not None:
        from workbench.data.photos import SOURCE, natural_photos

        names, images = natural_photos(size[0], tuple(size[1:]))
        if names:
            data = torch.from_numpy(images), f"{len(names)} {SOURCE}"
    return data


@torch.no_grad()
def image_norm(model, x0: torch.Tensor) -> tuple[float, str]:
    """σ: the average Euclidean norm of the model's natural images (:func:`natural_images`) in the engine's
    units (255 · (p − mean)), and where it comes from; the reference ``x0``'s own norm without them."""
    data = natural_images(model)
    if data is None:
        return float(x0.flatten().norm()), "the reference image"
    images, source = data
    mean = torch.tensor(model.mean, dtype=images.dtype).view(1, -1, 1, 1)
    x = 255.0 * (images - mean)
    return float(x.flatten(1).norm(dim=1).mean()), source


def lambda_alpha_rule(sigma: float, h: int, w: int, alpha: float, B: float = B_RANGE) -> float:
    """λ_α ≈ σ^α / (HW B^α) (CVPR sect. 2), so that λ_α R_α(x) ≈ 1 when most pixels of σx are near ±B."""
    return math.exp(alpha * math.log(sigma) - math.log(h * w) - alpha * math.log(B))


def priors(sigma: float, lambda_alpha: float, lambda_tv: float, alpha: float, beta: float):
    """The callable (image → (λ_α R_α(x/σ), λ_TV R_TV^β(x/σ))) per image of a batch (N, D, H, W) in the
    engine's units: R_α element-wise over the vectorised image, R_TV summed over colour channels."""

    def terms(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image / sigma
        r_alpha = x.abs().pow(alpha).flatten(1).sum(1)
        r_tv = tv_beta(x, beta, 1.0) * (x.shape[-2] * x.shape[-1])  # tv_beta divides by HW·V^β
        return lambda_alpha * r_alpha, lambda_tv * r_tv

    return terms


def ijcv_priors(alpha: float, beta: float, B: float, V: float):
    """The IJCV 2016 priors (eqs. 5–6) as the same kind of callable."""

    def terms(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return alpha_norm(image, alpha, B), tv_beta(image, beta, V)

    return terms


def mean_pairwise_distance(codes: list[torch.Tensor]) -> float:
    """N_Φ: the average Euclidean distance over every pair of ``codes`` (CVPR sect. 4)."""
    if len(codes) < 2:
        raise ValueError("N_Φ is an average pairwise distance: it needs at least two codes")
    flat = [c.flatten().double() for c in codes]
    return float(sum(float(torch.linalg.norm(a - b)) for a, b in itertools.combinations(flat, 2))
                 / (len(flat) * (len(flat) - 1) / 2))


@torch.no_grad()
def code_normaliser(model, phi, scale: torch.Tensor, mean: torch.Tensor, device, limit: int = N_PHI_IMAGES,
                    mask: torch.Tensor | None = None) -> tuple[float | None, str]:
    """N_Φ of layer ``phi``'s codes over the first ``limit`` calibration images of ``model`` (masked like the
    data term when ``mask`` is given), and what they are; (None, why) for a model without such images."""
    data = natural_images(model)
    if data is None or len(data[0]) < 2:
        return None, "no calibration images"
    images, source = data[0][:limit], data[1]
    codes = []
    for i in range(0, len(images), 64):
        x = 255.0 * (images[i:i + 64].to(device) - mean)
        code = phi(x * scale)
        if mask is not None:
            code = code * mask
        codes += list(code.cpu())
    return mean_pairwise_distance(codes), f"{len(images)} images of the {source}"
