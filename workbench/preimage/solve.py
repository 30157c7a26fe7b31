"""The natural pre-image job: inversion, activation maximisation and caricature.

Minimises eq. 7 of Mahendran & Vedaldi (IJCV 2016),

    x* = argmin_x  R_α(x) + R_TV^β(x) + C · E_τ[ ℓ(Φ(jitter(x; τ)), Φ0) ],

with Algorithm 1, for K restarts at once. x lives in the paper's units (mean-subtracted
pixels on a 0–255 scale) on a canvas T−1 pixels larger than the model's input, so that
every jittered window is a full input; the result is the canvas's central window.
Φ maps x to the model's own normalisation first: model_input = x / (255 · std).

Restarts are independent problems. On a GPU they are solved as one batch; on a CPU one
restart at a time is faster per image (the "sequential" schedule), and both schedules give
the same numbers to float tolerance because every restart draws its noise and its jitter
from its own generator.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.config import to_dict
from workbench.config.preimage import (MAX_EXPONENT, MAX_ITERS, MAX_JITTER, MAX_RESTARTS, MAX_WEIGHT,  # noqa: F401
                                         METHODS, SCHEDULES, PreimageConfig)
from workbench.errors import NonFiniteEnergy, UserError
from workbench.jobs import Artifact, Cancelled, CancelToken, Job, Log, Step
from workbench.preimage import cvpr2015, naturalness, presets, quality, visualise
from workbench.preimage.objectives import channel_mask, inner_product_loss, inversion_loss, spatial_window_mask
from workbench.preimage.optimizer import PreimageOptimizer, initial_learning_rate
from workbench.preimage.regularizers import alpha_norm, jitter, tv_beta
from workbench.runs import Run, RunStore, finalise
from workbench.threads import job_threads

#: Restarts whose energies each Step (and energies.json) carries one by one; beyond, only their mean.
MAX_RESTART_CURVES = 32


@dataclass
class PreimageResult:
    run: Run | None
    images: np.ndarray                    # (K, H, W, C) in [0, 1]
    reference: np.ndarray | None          # (H, W, C) in [0, 1]
    metrics: dict[str, Any]
    frames: list[np.ndarray] = field(default_factory=list)   # each (K, H, W, C)
    #: (K, H, W, C) the optimised images, pixels in [0, 1], as tensors/preimages.safetensors stores them and
    #: the metrics score them; ``images`` is their view (each stretched to [0, 1] for activation maximisation)
    pixels: np.ndarray | None = None


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


def preimage_job(config: PreimageConfig, *, cancel: CancelToken | None = None, runs: RunStore | None = None,
                 out: str | Path | None = None, model=None, figure=None, threads: int | None = None) -> Job:
    """Solve for ``config.restarts`` pre-images, yielding events; returns a :class:`PreimageResult`.
    ``figure`` (a :class:`~workbench.export.style.FigureStyle`) sizes ``images/grid.png``/``grid.pdf``.
    ``threads`` fixes the intra-op thread count (a sweep cell's, the same on every executor); by
    default :func:`~workbench.threads.job_threads` chooses it from the problem's size."""
    from workbench.device import resolve_device

    config.validate()
    cancel = cancel or CancelToken()
    device = resolve_device(config.device)
    if model is None:
        from workbench.models import load_model

        yield Log(f"loading {config.model}")
        model = load_model(config.model, device=device, imports=False)  # a config names no code to import
    else:
        model = model.to(device)
    if getattr(model, "notice", None):
        yield Log(model.notice, "warning")
    layer = model.layer(config.layer)
    config.validate_for(model, layer)  # the options alone were checked above, the image decoded once
    if threads is None:
        threads = job_threads(model.input_size, config.restarts if _schedule(config, device) == "batched" else 1)
    store = runs or RunStore(Path(out).parent if out is not None else None)
    run = store.create(config.method, to_dict(config), device=str(device), folder=out, model=_facts(model))
    yield Artifact("run", str(run.path))
    return (yield from finalise(run, _solve(config, model, layer, device, cancel, run, figure), threads=threads))


def _facts(model) -> dict[str, Any] | None:
    facts = getattr(model, "facts", None)
    return facts() if callable(facts) else None


def _schedule(config: PreimageConfig, device: torch.device) -> str:
    """Restarts as one batch on accelerators, one at a time on CPUs (unless the config says)."""
    if config.schedule != "auto":
        return config.schedule
    return "sequential" if device.type == "cpu" else "batched"


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


def _init_canvas(config: PreimageConfig, problem: Problem, x0: torch.Tensor | None, k: int,
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


def _crop_centre(x: torch.Tensor, T: int) -> torch.Tensor:
    lo = (T - 1) // 2
    return jitter(x, T, torch.tensor([[lo, lo]]))


def _solve(config: PreimageConfig, model, layer, device, cancel, run: Run, figure=None):
    t_start = time.monotonic()
    reference, label = (None, None)
    if config.method in ("invert", "caricature"):
        from workbench.data.images import load_reference

        reference, label = load_reference(config.image, model.input_size)
        run.save_image("reference.png", reference)
    problem, info = build_problem(config, model, layer, device, reference)
    if info.get("saturation"):
        yield Log(info["saturation"], "warning")
    x0 = None
    if reference is not None:
        x0 = 255.0 * (torch.from_numpy(reference).permute(2, 0, 1)[None].to(device) - problem.mean)
    B = config.B if config.B is not None else presets.preset_B(model, config.alpha)
    B_plus = config.B_plus if config.B_plus is not None else presets.B_PLUS_FACTOR * B
    V = config.V if config.V is not None else presets.preset_V(model, config.beta, B)
    priors = None
    if config.formulation == "cvpr2015":
        sigma, sigma_source = cvpr2015.image_norm(model, x0)
        c_in, h_in, w_in = model.input_size
        lambda_alpha = config.lambda_alpha if config.lambda_alpha is not None else \
            cvpr2015.lambda_alpha_rule(sigma, h_in, w_in, config.alpha)
        priors = cvpr2015.priors(sigma, lambda_alpha, info["lambda_tv"], config.alpha, config.beta)
        # CVPR 2015 has no hard bound (λ_α R_α alone keeps the range): a bound no float32 pixel reaches
        B_plus = float(torch.finfo(torch.float32).max)
        info.update(formulation="cvpr2015", sigma=sigma, sigma_source=sigma_source, lambda_alpha=lambda_alpha)
        yield Log(f"CVPR 2015 formulation: λ_TV={info['lambda_tv']:g}, λ_α={lambda_alpha:.4g}, σ={sigma:.4g} "
                  f"(the {sigma_source})")
    fine_tune = config.fine_tune_iters
    if fine_tune is None:
        fine_tune = presets.FINE_TUNE_ITERS if config.method == "invert" else 0
    schedule = _schedule(config, device)
    K = config.restarts
    # issue 19: the preset's (or the config's) parametrisation and transforms; pixels is the paper's path
    preset, parametrisation, transforms_name, lr = visualise.choices(config, model.input_size)
    info.update(preset=preset, parametrisation=parametrisation, transforms=transforms_name)
    judge = quality.load_judge(config, model, layer, device) if config.method == "maximize" else None
    natural = parametrisation != "pixels"
    if natural:
        from workbench.preimage.transforms import make_transforms

        transforms = make_transforms(transforms_name, problem.T)
        problem.T, problem.stretch = 1, False   # the transforms jitter; P(θ) is already in [0, 1]
        info.update(lr=lr, T=transforms.jitter)
    yield Log(f"{config.method} {model.name}:{layer.name} (rf {layer.rf_size}, stride {layer.stride}), "
              f"C={info['C']:g}, " + (f"{parametrisation} with {transforms_name} transforms (preset {preset}), "
                                      if natural else f"jitter T={problem.T}, ")
              + f"{K} restart(s), {config.iters}+{fine_tune} iterations, {schedule} on {device.type}")

    canvases, generators = zip(*(_init_canvas(config, problem, x0, k, device, B) for k in range(K)))
    if schedule == "batched":
        groups = [list(range(K))]
        xs = [torch.cat(canvases).requires_grad_(True)]
    else:
        groups = [[k] for k in range(K)]
        xs = [c.clone().requires_grad_(True) for c in canvases]
    if natural:
        optimizers = visualise.setup(config, problem, parametrisation, lr, groups, generators, x0, device,
                                     classes=quality.is_class_output(model, layer))
        xs = [opt.x for opt in optimizers]
        terms_sum = visualise.energy(problem, config.alpha, config.beta, B, V, config.diversity)
    else:
        eta0 = initial_learning_rate(B, config.alpha, area=xs[0].shape[-2] * xs[0].shape[-1])
        optimizers = [PreimageOptimizer(x, eta0, B_plus) for x in xs]

    total = config.iters + fine_tune
    frames: list[np.ndarray] = []
    history: list[tuple[int, dict[str, float]]] = []  # every Step's values, saved as energies.json
    T = problem.T
    lo = (T - 1) // 2
    t = 0
    used, skip_main = 0, False  # --tol: iterations computed; the main phase converged
    try:
        for t in range(total):
            cancel.check()
            tuning = t >= config.iters
            if skip_main and not tuning:
                continue
            if tuning and t == config.iters:
                for opt in optimizers:
                    opt.scale_learning_rate(presets.FINE_TUNE_RATE)
            terms = {"energy": 0.0, "loss": 0.0, "R_alpha": 0.0, "R_tv": 0.0}
            each: dict[str, float] = {}  # per restart, "<term>@<k>" (k from 1), for the energy plot
            for i, (group, x, opt) in enumerate(zip(groups, xs, optimizers)):
                if natural:
                    step = opt.step(problem, terms_sum, transforms, transform=not tuning)
                    xs[i] = opt.x
                elif T > 1 and not tuning:
                    offsets = torch.stack([torch.randint(0, T, (2,), generator=generators[k]) for k in group])
                    step = algorithm1_step(problem, x, opt, config.alpha, config.beta, B, V, offsets=offsets,
                                           priors=priors)
                else:
                    offsets = torch.tensor([[lo, lo]] * len(group))
                    step = algorithm1_step(problem, x, opt, config.alpha, config.beta, B, V, offsets=offsets,
                                           priors=priors)
                energy, loss, r_alpha, r_tv = step["energy"], step["loss"], step["R_alpha"], step["R_tv"]
                with torch.no_grad():
                    for name, v in (("energy", energy), ("data", problem.C * loss), ("R_alpha", r_alpha), ("R_tv", r_tv)):
                        if 1 < K <= MAX_RESTART_CURVES:
                            each.update((f"{name}@{k + 1}", e) for k, e in zip(group, v.tolist()))
                    for name, v in (("energy", energy), ("loss", loss), ("R_alpha", r_alpha), ("R_tv", r_tv)):
                        terms[name] += float(v.sum())
            if not math.isfinite(terms["energy"]):
                raise NonFiniteEnergy(_divergence(terms, t + 1, problem.C, config))
            values = {k: v / K for k, v in terms.items()}
            values["data"] = problem.C * values["loss"]  # C·ℓ: E = R_α + R_TV + C·ℓ
            values.update(each)
            history.append((t + 1, values))
            used += 1
            converged = config.tol is not None and converged_phase(history, config, tuning)
            last = t == total - 1 or (converged and (tuning or fine_tune == 0))
            snap = None
            want_frame = config.frame_every > 0 and (t % config.frame_every == 0 or last)
            if (config.snapshot_every > 0 and (t % config.snapshot_every == 0)) or last or want_frame:
                snap = _pixels(problem, xs)
                if want_frame:
                    frames.append(snap)
            yield Step(t + 1, total, values, images=snap if (config.snapshot_every > 0 or last) else None,
                       stage="fine-tuning" if tuning else "optimizing")
            if converged:
                if last:
                    break
                skip_main = True
    except (Cancelled, KeyboardInterrupt, GeneratorExit):  # GeneratorExit: the driver closed the job
        _save_partial(run, problem, xs, t)
        _save_energies(run, history)
        raise
    _save_energies(run, history)
    if natural:   # issue 19: each restart's most robust iterate (visualise.NaturalStep.kept)
        xs = [opt.kept() for opt in optimizers]

    with torch.no_grad():
        x_final = torch.cat([_crop_centre(x.detach(), T) for x in xs])
        x_final = 255.0 * (problem.to_pixels(x_final).clamp(0.0, 1.0) - problem.mean)  # a valid image, scored as stored
    pixels = _pixels(problem, [x_final], crop=False, view=False)
    images = view_images(pixels, _view_name(problem))  # the view a reopened run shows too, bit for bit
    metrics = _metrics(config, model, problem, x_final, x0, info, layer)
    metrics.update(B=B, B_plus=B_plus, V=V, **restart_spread(images))
    metrics.update({k: info[k] for k in ("preset", "parametrisation", "transforms") if k in info})
    if reference is not None:  # IJCV sect. 5.2.3, Fig. 7: gradient statistics of each pre-image vs the reference
        hi = naturalness.gradient_histogram_intersection(pixels, reference)
        metrics["gradient_histogram_intersection"] = hi
        metrics["gradient_histogram_intersection_mean"] = float(np.mean(hi))
    if config.formulation == "cvpr2015":
        metrics.update(_cvpr2015_metrics(model, problem, x_final, info, device))
    if natural:
        metrics["lr"] = lr
        kept = [k for opt in optimizers for k in (opt.kept_steps() or [])]
        if kept:
            metrics["kept_iteration"] = kept
    if config.method == "maximize":
        metrics.update(quality.run_quality(model, layer, problem, pixels, config.channel, judge))
    if config.method == "maximize" and max(metrics["activation"]) <= 0.0:
        yield Log(f"the {metrics['component']} of channel {config.channel} in {layer.name} stayed at "
                  f"{max(metrics['activation']):.3g} in every restart (an inactive unit after a ReLU gets no "
                  f"gradient): try other seeds, --channel-mean or the layer before the ReLU", "warning")
    metrics["seconds"] = round(time.monotonic() - t_start, 3)
    metrics["iterations_used"] = used
    metrics["schedule"] = schedule
    if label is not None:
        metrics["reference_label"] = label
    yield from _save(run, config, model, layer, images, reference, metrics, frames, figure, pixels=pixels)
    return PreimageResult(run, images, reference, metrics, frames, pixels)


def converged_phase(history: list[tuple[int, dict[str, float]]], config: PreimageConfig, tuning: bool) -> bool:
    """The --tol rule: the mean energy of the last ``tol_window`` iterations of this phase differs from
    the window before by less than ``tol`` relative to it (main phase: only after ``min_iters``)."""
    w = config.tol_window
    first = config.iters + 1 if tuning else 1
    if len(history) < 2 * w or history[-2 * w][0] < first or (not tuning and history[-1][0] < config.min_iters):
        return False
    energies = [v["energy"] for _, v in history[-2 * w:]]
    before, now = sum(energies[:w]) / w, sum(energies[w:]) / w
    return abs(now - before) <= config.tol * max(abs(before), 1e-12)


def _divergence(terms: dict[str, float], iteration: int, C: float, config: PreimageConfig) -> str:
    """Which term of eq. 7 overflowed, and the setting that tames it."""
    remedy = {"R_tv": f"lower --beta (now {config.beta:g})",
              "R_alpha": f"lower --alpha (now {config.alpha:g}) or raise --B",
              "loss": f"lower C (now {C:g}) or check the model's input normalisation"}
    bad = next((name for name in ("R_tv", "R_alpha", "loss") if not math.isfinite(terms[name])), "loss")
    return f"the energy became non-finite at iteration {iteration} ({bad} = {terms[bad]}): {remedy[bad]}"


def _save_energies(run: Run, history: list[tuple[int, dict[str, float]]]) -> None:
    """energies.json: every iteration's Step values (E, ℓ, C·ℓ, R_α, R_TV; per restart "<term>@<k>"),
    so a reopened run plots its energy curves again. Compact JSON, 7 significant digits."""
    from workbench.runs import atomic_path

    keys = list(history[0][1]) if history else []
    data = {"iterations": [t for t, _ in history],
            "values": {key: [float(f"{v.get(key, math.nan):.7g}") for _, v in history] for key in keys}}
    text = json.dumps(data, separators=(",", ":"))
    with atomic_path(run.path / "energies.json") as tmp:
        tmp.write_text(text)


def _save_partial(run: Run, problem: Problem, xs: list[torch.Tensor], iterations: int) -> None:
    """What a stopped run had: each restart's current image and how far it got."""
    images = _pixels(problem, xs)
    for k, image in enumerate(images):
        run.save_image(f"restart_{k + 1}.png", image)
    run.save_tensors("preimages.safetensors", {"images": torch.from_numpy(_pixels(problem, xs, view=False))})
    run.write_metrics({"partial": True, "iterations_done": iterations, "view": _view_name(problem)})


def _pixels(problem: Problem, xs: list[torch.Tensor], crop: bool = True, view: bool = True) -> np.ndarray:
    """Canvases → (K, H, W, C) float32 pixels in [0, 1], a detached CPU copy.

    Inversions and caricatures are shown in the model's own pixel values. Activation
    maximisation has no reference image, so each pre-image is stretched to [0, 1] for
    display, as the paper's figures are (vl_imsc in the authors' code): ``view=False`` gives the
    image itself, clipped to [0, 1] (what tensors/preimages.safetensors keeps).
    """
    with torch.no_grad():
        x = torch.cat([_crop_centre(x.detach(), problem.T) if crop else x.detach() for x in xs])
        if problem.stretch and view:
            lo = x.amin(dim=(1, 2, 3), keepdim=True)
            hi = x.amax(dim=(1, 2, 3), keepdim=True)
            p = (x - lo) / (hi - lo).clamp_min(1e-6)
        else:
            p = problem.to_pixels(x).clamp_(0.0, 1.0)
        return np.ascontiguousarray(p.permute(0, 2, 3, 1).cpu().numpy(), dtype=np.float32)


@torch.no_grad()
def _metrics(config, model, problem: Problem, x: torch.Tensor, x0, info, layer) -> dict[str, Any]:
    """Eq. 3 per restart (invert), the reached activation (maximize), classification consistency."""
    metrics: dict[str, Any] = {"model": model.name, "trained": bool(getattr(model, "trained", True)),
                               "layer": layer.name, "method": config.method,
                               "C": info["C"], "jitter": info["T"], "rf_size": layer.rf_size, "stride": layer.stride,
                               "view": _view_name(problem)}
    code = problem.code(x)
    if config.method == "invert":
        err = inversion_loss(code, problem.phi0, problem.mask).cpu().numpy()
        metrics["reconstruction_error"] = [float(e) for e in err]
        metrics["reconstruction_error_mean"] = float(err.mean())
        metrics["reconstruction_error_std"] = float(err.std())
    else:
        score = -inner_product_loss(code, problem.phi0, 1.0).cpu().numpy()
        metrics["activation"] = [float(s) for s in score]
        metrics["activation_std"] = float(score.std())
        metrics["Z"] = info["Z"]
        if config.method == "maximize":
            metrics.update(channel=config.channel, component=info["component"], neuron=info["neuron"],
                           M=info["M"], M_source=info["M_source"], rho=info["rho"],
                           C_over_rho2=info["C"] / info["rho"] ** 2,  # 1 at the default C = ρ² (presets.maximize_C)
                           activation_over_M=[float(s / info["M"]) for s in score])
        else:
            ref = float((problem.phi0 * problem.phi0).sum())
            metrics["activation_over_reference"] = [float(s / ref) for s in score]
    if model.has_classifier and x0 is not None:
        logits = model.module(torch.cat([x0, x]) * problem.scale)
        pred = logits.argmax(1).cpu().numpy()
        prob = logits.float().softmax(1).amax(1).cpu().numpy()  # softmax probability of the predicted class
        metrics["reference_prediction"] = int(pred[0])
        metrics["reference_probability"] = float(prob[0])
        metrics["predictions"] = [int(p) for p in pred[1:]]
        metrics["probabilities"] = [float(p) for p in prob[1:]]
        metrics["classification_consistency"] = float((pred[1:] == pred[0]).mean())
        top = top_predictions(logits, model.class_names)
        metrics["reference_top5"], metrics["top5"] = top[0], top[1:]
    elif model.has_classifier:
        logits = model.module(x * problem.scale)
        metrics["predictions"] = [int(p) for p in logits.argmax(1).cpu().numpy()]
        metrics["probabilities"] = [float(p) for p in logits.float().softmax(1).amax(1).cpu().numpy()]
        metrics["top5"] = top_predictions(logits, model.class_names)
        if config.method == "maximize" and quality.is_class_output(model, layer):
            c = config.channel
            p = logits.float().softmax(1)[:, c]
            metrics.update(target_class=c, target_name=str(model.class_names[c]),
                           target_logit=[float(v) for v in logits[:, c].cpu()],
                           target_probability=[float(v) for v in p.cpu()])
    return metrics


@torch.no_grad()
def _cvpr2015_metrics(model, problem: Problem, x: torch.Tensor, info, device) -> dict[str, Any]:
    """The CVPR 2015 run's constants and its Tables 1 and 3 error ‖Φ(x*) − Φ0‖ / N_Φ per restart (N_Φ over
    the model's calibration images, :func:`workbench.preimage.cvpr2015.code_normaliser`)."""
    out: dict[str, Any] = {k: info[k] for k in ("formulation", "lambda_tv", "lambda_tv_preset", "lambda_alpha", "sigma",
                                                "sigma_source")}
    n_phi, source = cvpr2015.code_normaliser(model, problem.phi, problem.scale, problem.mean, device, mask=problem.mask)
    out.update(N_phi=n_phi, N_phi_source=source)
    if n_phi:
        mask = problem.mask if problem.mask is not None else 1.0
        distance = ((problem.code(x) - problem.phi0) * mask).flatten(1).norm(dim=1).cpu().numpy()
        out["reconstruction_error_nphi"] = [float(d / n_phi) for d in distance]
        out["reconstruction_error_nphi_mean"] = float(np.mean(distance / n_phi))
    return out


def top_predictions(logits: torch.Tensor, names: list[str] | None, k: int = 5) -> list[list[dict[str, Any]]]:
    """Each image's ``k`` most probable classes (softmax of ``logits``), most probable first, as
    {"class", "name", "probability"}; the name is None where the model has no class names."""
    probs = logits.float().softmax(1)
    p, idx = probs.topk(min(k, probs.shape[1]), dim=1)
    return [[{"class": int(c), "name": str(names[c]) if names and 0 <= c < len(names) else None,
              "probability": float(q)} for c, q in zip(row_i.tolist(), row_p.tolist())]
            for row_i, row_p in zip(idx.cpu(), p.cpu())]


def restart_spread(images: np.ndarray) -> dict[str, float]:
    """How far the K restarts' pre-images lie apart: the mean and largest pixel RMS between two
    restarts (pixels in [0, 1]). Near 0, the code pins the image down; large, it is ambiguous —
    the reading of multiple reconstructions in IJCV sect. 5.3 (Fig. 12)."""
    k = len(images)
    if k < 2:
        return {}
    flat = images.reshape(k, -1).astype(np.float64)
    rms = [float(np.sqrt(np.mean((flat[i] - flat[j]) ** 2))) for i in range(k) for j in range(i + 1, k)]
    return {"restart_rms_mean": float(np.mean(rms)), "restart_rms_max": float(np.max(rms))}


def _view_name(problem: Problem) -> str:
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


def _save(run: Run, config, model, layer, images, reference, metrics, frames, figure=None, pixels=None):
    from workbench.export.figures import preimage_figure
    from workbench.export.render import save_run_figure

    run.write_metrics(metrics)
    for k, image in enumerate(images):
        run.save_image(f"restart_{k + 1}.png", image)
    # the window's Export draws this same figure from the same metrics (grid.png and grid.pdf)
    save_run_figure(run, "grid", preimage_figure(images, reference, metrics).figure(figure), figure)
    # the optimised images themselves (pixels in [0, 1]); restart_*.png and grid.png show their view
    run.save_tensors("preimages.safetensors", {"images": torch.from_numpy(images if pixels is None else pixels)})
    if frames:
        # 8-bit, as the animation shows them: a quarter of float32 (36 frames of 4 restarts at 224² is 22 MB)
        stack = np.clip(np.rint(np.stack(frames) * 255.0), 0, 255).astype(np.uint8)
        run.save_tensors("frames.safetensors", {"frames": torch.from_numpy(stack)})
    yield Artifact("grid", str(run.path / "images" / "grid.png"))
