"""How natural a maximisation result is, measured rather than looked at (issue 19).

An image that makes a network say "goldfish" may be a goldfish or an adversarial texture of
high-frequency colour (Nguyen et al. 2015; Olah et al. 2017, "Feature Visualization", the
"enemy of feature visualization"). Four checks tell them apart:

- the target's probability on the image, and after a Gaussian blur of σ = 1.5 px at 224 px
  (scaled with the input) and at half resolution (down by 2, antialiased, and back): a picture of
  an object keeps its class under both, a texture tuned to the pixel grid loses it;
- the slope of the radially averaged power spectrum, log P(f) against log f: ≈ −2 for natural
  photos (van der Schaaf & van Hateren 1996), ≈ 0 for white noise;
- a second, independently trained network's probability of the target (``--judge``).

For a hidden channel there is no probability: the activation kept after the blur and at half
resolution, as a fraction of the image's own, takes its place.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

#: the blur's σ in pixels at a 224-pixel input; scaled with min(H, W)
BLUR_SIGMA_224 = 1.5


def blur_sigma(size: tuple[int, int]) -> float:
    return BLUR_SIGMA_224 * min(size) / 224.0


def gaussian_blur(p: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of a batch (N, C, H, W), kernel ±3σ, edges reflected."""
    if sigma <= 0:
        return p
    r = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-r, r + 1, dtype=p.dtype, device=p.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = p.shape[1]
    r_h, r_w = min(r, p.shape[-2] - 1), min(r, p.shape[-1] - 1)
    x = F.pad(p, (r_w, r_w, r_h, r_h), mode="reflect" if min(r_h, r_w) > 0 else "replicate")
    x = F.conv2d(x, k[r - r_w:r + r_w + 1].view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k[r - r_h:r + r_h + 1].view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def half_resolution(p: torch.Tensor) -> torch.Tensor:
    """The image at half its resolution (antialiased), resampled back to its size for the network."""
    h, w = p.shape[-2:]
    small = F.interpolate(p, size=(max(1, h // 2), max(1, w // 2)), mode="bilinear", antialias=True,
                          align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def spectral_slope(image: np.ndarray) -> float:
    """The slope of log P(f) against log f, P the radially averaged power spectrum of the image's
    luminance (H, W[, C] in [0, 1]), windowed (Hann) against edge effects, fitted over radii from
    2 cycles per image to 80 % of the Nyquist limit. Natural photos ≈ −2, white noise ≈ 0."""
    a = np.asarray(image, dtype=np.float64)
    grey = a.mean(axis=2) if a.ndim == 3 else a
    h, w = grey.shape
    grey = (grey - grey.mean()) * np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey))) ** 2
    yy, xx = np.indices((h, w))
    r = np.hypot((yy - h // 2) * (min(h, w) / h), (xx - w // 2) * (min(h, w) / w)).round().astype(int)
    counts = np.bincount(r.ravel())
    radial = np.bincount(r.ravel(), power.ravel()) / np.maximum(counts, 1)
    radii = np.arange(2, int(0.8 * min(h, w) / 2) + 1)
    keep = radii[(radial[radii] > 0)]
    if len(keep) < 3:
        return float("nan")
    return float(np.polyfit(np.log(keep), np.log(radial[keep]), 1)[0])


def is_class_output(model, layer) -> bool:
    """Whether ``layer`` is the network's class scores: its last layer, one unit per class name
    (C or C × 1 × 1, as a convolutional classifier gives them); then its channel is a class."""
    names = getattr(model, "class_names", None)
    if not names:
        return False
    layers = model.layers()
    return layer.index == layers[-1].index and math.prod(layer.shape) == len(names)


@torch.no_grad()
def probabilities(forward, pixels: torch.Tensor, target: int) -> torch.Tensor:
    """softmax(forward(pixels))[:, target] for a batch of [0, 1] pixels (scores N × C, or N × C × 1 × 1)."""
    return forward(pixels).float().flatten(1).softmax(1)[:, target]


@torch.no_grad()
def quality_metrics(pixels: torch.Tensor, score, *, kind: str, judge=None, sigma: float | None = None) -> dict:
    """The checks above for a batch of results ``pixels`` (N, C, H, W) in [0, 1] (as saved).

    ``score(pixels)`` gives the target's value per image: its probability when ``kind`` is
    "probability" (the metrics are ``p_target``, ``p_blur``, ``p_half``) or its activation when
    "activation" (``blur_retention``, ``half_retention``: the blurred and half-resolution image's
    activation over the image's). ``judge(pixels)``, if given, is a second network's probability of
    the target (``p_judge``). ``sigma`` is the blur's (default :func:`blur_sigma` of the size).
    """
    sigma = blur_sigma(tuple(pixels.shape[-2:])) if sigma is None else sigma
    base = score(pixels)
    blurred = score(gaussian_blur(pixels, sigma))
    half = score(half_resolution(pixels))
    out: dict = {}
    if kind == "probability":
        out["p_target"] = [float(v) for v in base]
        out["p_blur"] = [float(v) for v in blurred]
        out["p_half"] = [float(v) for v in half]
    else:
        safe = base.clamp_min(1e-12)
        out["blur_retention"] = [float(v) if b > 0 else 0.0 for v, b in zip(blurred / safe, base)]
        out["half_retention"] = [float(v) if b > 0 else 0.0 for v, b in zip(half / safe, base)]
    out["blur_sigma"] = sigma
    out["spectral_slope"] = [spectral_slope(p.permute(1, 2, 0).cpu().numpy()) for p in pixels]
    if judge is not None:
        out["p_judge"] = [float(v) for v in judge(pixels)]
    return out


def open_judge(config, model):
    """The ``--judge`` model of ``config`` (a :class:`~workbench.config.preimage.PreimageConfig`) for a run
    of ``model``, opened through the registry on ``config.device``, or None without one (or for a method
    other than maximize, which the judge does not score). The callers of
    :func:`~workbench.preimage.solve.preimage_job` (CLI, API, sweep cell, the window's worker) open it here
    and hand it to the job, which opens no model (issue 21). A judge spec is never code the user confirmed
    now (it may come from a run folder, a sweep or the window's settings): no Python is imported.
    What can be refused before the judge is opened (a hidden layer) is refused first."""
    if config.judge is None or config.method != "maximize":
        return None
    layer = model.layer(config.layer)
    check_judge(config, model, layer)
    from workbench.device import resolve_device
    from workbench.models.sources import open_model

    judge = open_model(config.judge, device=resolve_device(config.device), imports=False)
    check_judge(config, model, layer, judge)
    return judge


def check_judge(config, model, layer, judge=None) -> None:
    """Refuses a ``--judge`` that cannot score this run: the run maximises a class of ``model``'s
    output (``layer``), and ``judge`` (when given) scores as many classes as ``model``."""
    from workbench.errors import UserError

    if not is_class_output(model, layer):
        last = model.layers()[-1].name
        raise UserError(f"--judge scores a class: maximize a channel of {model.name}'s class scores ({last}), "
                        f"not {layer.name}")
    if judge is not None and (not judge.class_names or len(judge.class_names) != len(model.class_names)):
        theirs = len(judge.class_names) if judge.class_names else "no"
        raise UserError(f"--judge {config.judge} has {theirs} class names, {model.name} has "
                        f"{len(model.class_names)}: a judge must score the same classes")


def _judge_probability(judge, target: int):
    c, h, w = judge.input_size
    mean = torch.tensor(judge.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(judge.std, dtype=torch.float32).view(1, -1, 1, 1)

    def forward(p: torch.Tensor) -> torch.Tensor:
        if p.shape[1] != c:
            p = p.mean(1, keepdim=True).expand(-1, c, -1, -1)
        if tuple(p.shape[-2:]) != (h, w):
            p = F.interpolate(p, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        d = judge.device
        return judge.module((p.to(d) - mean.to(d)) / std.to(d))

    return lambda p: probabilities(forward, p, target)


@torch.no_grad()
def run_quality(model, layer, problem, images: np.ndarray, target: int, judge=None) -> dict:
    """:func:`quality_metrics` of a maximisation's saved results ``images`` (K, H, W, C) in [0, 1]
    for the component ``problem.phi0`` picks (a class of the output layer: its probability)."""
    device = problem.mean.device
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(device)

    def code(p):
        return problem.code(255.0 * (p - problem.mean))

    if is_class_output(model, layer):
        kind = "probability"
        score = lambda p: probabilities(code, p, target)  # noqa: E731
    else:
        kind = "activation"
        score = lambda p: (code(p) * problem.phi0).flatten(1).sum(1)  # noqa: E731
    return quality_metrics(pixels, score, kind=kind, judge=_judge_probability(judge, target) if judge else None)
