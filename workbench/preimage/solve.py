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

The job receives its model opened (:func:`workbench.models.sources.open_model`): it never opens one itself.
Its parts live beside it: :mod:`.problem` (eq. 7 set up: Φ, Φ0, Z, C, the canvas and its pixels),
:mod:`.optimizer` (Algorithm 1 and one iteration of it), :mod:`.metrics` (what metrics.json measures);
this module is the job's loop, its --tol rule and what it saves.
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
from workbench.config.preimage import PreimageConfig
from workbench.errors import NonFiniteEnergy
from workbench.jobs import Artifact, Cancelled, CancelToken, Job, Log, Step
from workbench.preimage import cvpr2015, naturalness, presets, quality, visualise
from workbench.preimage.metrics import cvpr2015_metrics, restart_spread, run_metrics
from workbench.preimage.optimizer import PreimageOptimizer, algorithm1_step, initial_learning_rate
from workbench.preimage.problem import (Problem, build_problem, canvas_pixels, crop_centre, init_canvas, view_images,
                                        view_name)
# under their names before the split: benchmarks/feature_vis.py imports them from here (as it does build_problem and
# algorithm1_step; filtergan/traverse.py Problem and algorithm1_step, preview/reopen.py view_images)
from workbench.preimage.problem import canvas_pixels as _pixels, init_canvas as _init_canvas  # noqa: F401
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


def preimage_job(config: PreimageConfig, *, model, judge=None, cancel: CancelToken | None = None,
                 runs: RunStore | None = None, out: str | Path | None = None, figure=None,
                 threads: int | None = None) -> Job:
    """Solve for ``config.restarts`` pre-images with ``model``, yielding events; returns a :class:`PreimageResult`.
    ``model`` is the model opened by the caller (a :class:`~workbench.models.LoadedModel` from
    :func:`workbench.models.sources.open_model`, with the user's consent where it imports code): a job never
    opens a model itself (issue 21); it runs on ``config.device``. ``judge`` is ``config.judge``'s model,
    opened by the caller with :func:`workbench.preimage.quality.open_judge` (None where that gives None).
    ``figure`` (a :class:`~workbench.export.style.FigureStyle`) sizes ``images/grid.png``/``grid.pdf``.
    ``threads`` fixes the intra-op thread count (a sweep cell's, the same on every executor); by
    default :func:`~workbench.threads.job_threads` chooses it from the problem's size."""
    from workbench.device import resolve_device

    config.validate()
    _check_judge_passed(config, judge)
    cancel = cancel or CancelToken()
    device = resolve_device(config.device)
    model = model.to(device)
    if getattr(model, "notice", None):
        yield Log(model.notice, "warning")
    layer = model.layer(config.layer)
    config.validate_for(model, layer)  # the options alone were checked above, the image decoded once
    if judge is not None:
        quality.check_judge(config, model, layer, judge)  # refused before the run folder exists
    if threads is None:
        threads = job_threads(model.input_size, config.restarts if _schedule(config, device) == "batched" else 1)
    store = runs or RunStore(Path(out).parent if out is not None else None)
    run = store.create(config.method, to_dict(config), device=str(device), folder=out, model=_facts(model))
    yield Artifact("run", str(run.path))
    return (yield from finalise(run, _solve(config, model, layer, device, cancel, run, figure, judge),
                                threads=threads))


def _check_judge_passed(config: PreimageConfig, judge) -> None:
    """The caller's programming error, not the user's: ``config.judge`` names a judge for a maximisation
    and none was handed in (the job opens no model), or one was handed in that the config does not name
    (run.json would not say which model scored ``p_judge``)."""
    wanted = config.judge is not None and config.method == "maximize"
    if wanted and judge is None:
        raise TypeError(f"preimage_job: config.judge is {config.judge!r} but no judge= was passed: open it with "
                        "workbench.preimage.quality.open_judge(config, model) (a job opens no model)")
    if not wanted and judge is not None:
        raise ValueError("preimage_job: judge= was passed but config.judge names none for this "
                         f"{config.method}: set config.judge to the judge's spec")


def _facts(model) -> dict[str, Any] | None:
    facts = getattr(model, "facts", None)
    return facts() if callable(facts) else None


def _schedule(config: PreimageConfig, device: torch.device) -> str:
    """Restarts as one batch on accelerators, one at a time on CPUs (unless the config says)."""
    if config.schedule != "auto":
        return config.schedule
    return "sequential" if device.type == "cpu" else "batched"


def _solve(config: PreimageConfig, model, layer, device, cancel, run: Run, figure=None, judge=None):
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

    canvases, generators = zip(*(init_canvas(config, problem, x0, k, device, B) for k in range(K)))
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
        terms_sum = visualise.energy(problem, config.alpha, config.beta, B, V, config.diversity,
                                     priors=visualise.prior_weight(config, model.input_size))
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
                snap = canvas_pixels(problem, xs)
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
        x_final = torch.cat([crop_centre(x.detach(), T) for x in xs])
        x_final = 255.0 * (problem.to_pixels(x_final).clamp(0.0, 1.0) - problem.mean)  # a valid image, scored as stored
    pixels = canvas_pixels(problem, [x_final], crop=False, view=False)
    images = view_images(pixels, view_name(problem))  # the view a reopened run shows too, bit for bit
    metrics = run_metrics(config, model, problem, x_final, x0, info, layer)
    metrics.update(B=B, B_plus=B_plus, V=V, **restart_spread(images))
    metrics.update({k: info[k] for k in ("preset", "parametrisation", "transforms") if k in info})
    if reference is not None:  # IJCV sect. 5.2.3, Fig. 7: gradient statistics of each pre-image vs the reference
        hi = naturalness.gradient_histogram_intersection(pixels, reference)
        metrics["gradient_histogram_intersection"] = hi
        metrics["gradient_histogram_intersection_mean"] = float(np.mean(hi))
    if config.formulation == "cvpr2015":
        metrics.update(cvpr2015_metrics(model, problem, x_final, info, device))
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
    images = canvas_pixels(problem, xs)
    for k, image in enumerate(images):
        run.save_image(f"restart_{k + 1}.png", image)
    run.save_tensors("preimages.safetensors", {"images": torch.from_numpy(canvas_pixels(problem, xs, view=False))})
    run.write_metrics({"partial": True, "iterations_done": iterations, "view": view_name(problem)})


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
