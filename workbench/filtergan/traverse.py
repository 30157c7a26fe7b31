"""Latent traversals (filter-GAN, sect. 4): what moving in z does to an image.

For a sample x and a latent z, the activation profile is a(x|z) = layer_ℓ(CNN_{ℓ−1}(x); G(z))
(the convolution with the generated filters, then the rest of layer ℓ — the signal the
discriminator sees). Two dimensions i, j of z span a k×k grid z_k = z + u e_i + v e_j with
u, v ∈ linspace(−ξ, ξ, k), and for every z_k gradient descent from x finds

    x′_k = argmin_x′ ‖a(x′|z_k) − a(x|z)‖² + Ψ(x′).

We write the data term normalised as in the pre-image engine (IJCV eq. 2) with its weight C,
C ‖a(x′|z_k) − a(x|z)‖² / ‖a(x|z)‖², and Ψ = R_α + R_TV^β (eqs. 5–6 of the IJCV paper, the
natural-image prior of Mahendran & Vedaldi 2015 that sect. 4 cites), minimised from x with the
engine's Algorithm 1: the data term is a pre-image :class:`~workbench.preimage.problem.Problem`
whose Φ is a(·|z_k) (one z_k per cell, no mask, no jitter), and every iteration is
:func:`workbench.preimage.optimizer.algorithm1_step` — the engine's loop body (the same terms in the same order, then
:class:`~workbench.preimage.optimizer.PreimageOptimizer`'s step) on the parametrised images
x′ = x + upsample(δ). The paper gives no weights; ours (the config defaults) were chosen by
looking at grids of the shipped conv4 GAN:

- C = 3000 rather than the inversion preset (100 for conv4): the search starts at x, where Ψ
  is already at its natural level, and with C = 100 the prior outweighs the profile change, so
  every cell only drifts towards the prior;
- x′ = x + upsample(δ) with δ at ``resolution`` = 8 (bilinear): the bundled digits are 8×8
  images upsampled to 32×32, and a per-pixel δ matches the changed profile with pixel speckle
  (an adversarial-looking pattern) instead of moving strokes (``resolution=None`` gives it back);
- ξ = 12 (z ~ N(0, I)): along one dimension the changes within ±3 are barely visible; at
  ±20 the corners of the grid fade towards a grey blur.

How much of a profile change an input can make depends on G more than on this solve: with
the per-filter generator (``generator="channel"``) the pre-image error after 200 iterations
was 85 % of the profile change at x (ξ = 10); 1000 iterations or C × 10 did not lower it and
δ at 16×16 only to 75 %, because those changes are, to first order, no more reachable by an
input change than random ones.
The default "shared" generator (see :class:`~workbench.filtergan.networks.FilterGenerator`)
moves all filters by one transformation of layer ℓ−1's maps, and the same solve then keeps
less of the change unexplained (see the shipped run's README for the numbers).

The centre of the grid (u = v = 0, k odd) has zero data term at x, so it reproduces x up to
the pull of Ψ; ``centre_error`` measures that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench.config import to_dict
from workbench.config.filtergan import TraversalConfig  # noqa: F401
from workbench.errors import UserError
from workbench.jobs import Artifact, CancelToken, Job, Log, Step
from workbench.runs import RunStore, finalise
from workbench.threads import job_threads

KIND = "filtergan-traverse"


@dataclass
class TraversalResult:
    run: Any
    images: np.ndarray      # (k, k, H, W, C) in [0, 1]
    reference: np.ndarray   # (H, W, C)
    metrics: dict


def latent_grid(z: torch.Tensor, dims: tuple[int, int], xi: float, k: int) -> torch.Tensor:
    """z_k = z + u e_i + v e_j for u (rows) and v (columns) in linspace(−ξ, ξ, k): (k·k, D)."""
    steps = torch.linspace(-xi, xi, k, dtype=z.dtype)
    grid = z.repeat(k * k, 1)
    uu, vv = torch.meshgrid(steps, steps, indexing="ij")
    grid[:, dims[0]] += uu.reshape(-1).to(z.device)
    grid[:, dims[1]] += vv.reshape(-1).to(z.device)
    return grid


def smoothness(images: np.ndarray) -> dict[str, float]:
    """Neighbouring cells change smoothly: RMS pixel change between 4-neighbours, and its ratio
    to the RMS change between all pairs of cells (well below 1 for a smooth grid)."""
    k = images.shape[0]
    flat = images.reshape(k * k, -1).astype(np.float64)
    rms = lambda a, b: float(np.sqrt(((a - b) ** 2).mean()))  # noqa: E731
    neighbours = [rms(images[r, c], images[r + dr, c + dc]) for r in range(k) for c in range(k)
                  for dr, dc in ((0, 1), (1, 0)) if r + dr < k and c + dc < k]
    d = np.sqrt(((flat[:, None] - flat[None]) ** 2).mean(2))
    all_pairs = float(d[np.triu_indices(k * k, 1)].mean())
    n = float(np.mean(neighbours))
    return {"neighbour_rms": n, "all_pairs_rms": all_pairs, "neighbour_ratio": n / max(all_pairs, 1e-12),
            "neighbour_rms_max": float(np.max(neighbours))}


def traversal_job(fgan, config: TraversalConfig, *, cancel: CancelToken | None = None, runs: RunStore | None = None,
                  out: str | Path | None = None, figure=None) -> Job:
    """The k×k traversal grid of sect. 4 for the trained filter-GAN ``fgan`` (a loaded
    :class:`~workbench.filtergan.train.FilterGan`, the one of the run ``config.run``: the job opens no
    model and no run itself); writes ``images/grid.png`` and ``grid.pdf`` to its run folder (at the
    size ``figure``, a :class:`~workbench.export.style.FigureStyle`; default a page)."""
    from workbench.data.images import load_reference
    from workbench.device import describe
    from workbench.preimage import presets
    from workbench.preimage.optimizer import PreimageOptimizer, algorithm1_step, initial_learning_rate
    from workbench.preimage.problem import Problem

    config.validate()
    cancel = cancel or CancelToken()
    latent_dim = fgan.config.latent_dim
    config.validate(latent_dim, fgan.model.input_size)
    device, split, model = fgan.device, fgan.split, fgan.model
    image, label = load_reference(config.sample, model.input_size)
    g = torch.Generator().manual_seed(config.seed)
    z = torch.randn(1, latent_dim, generator=g)
    dims = tuple(config.dims) if config.dims is not None else tuple(int(d) for d in torch.randperm(latent_dim, generator=g)[:2])
    k = config.grid
    zk = latent_grid(z, dims, config.xi, k)
    weight0, bias0 = fgan.filters(z)
    weights, biases = fgan.filters(zk)

    c, h, w = model.input_size
    mean = torch.tensor(model.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(model.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    scale = 1.0 / (255.0 * std)
    x0 = 255.0 * (torch.from_numpy(image).permute(2, 0, 1)[None].to(device) - mean)

    B = presets.preset_B(model, presets.ALPHA)
    B_plus, V = presets.B_PLUS_FACTOR * B, presets.V_FACTOR * B
    C = config.C if config.C is not None else presets.preset_C(split.kinds, split.output_index)

    with torch.no_grad():
        a0 = split.activation(split.prefix(x0 * scale), weight0, bias0)
        if float(a0.pow(2).sum()) == 0.0:
            raise UserError(f"layer {split.name} is silent for {config.sample}: pick another sample")
    # The data term as an engine problem (eq. 2 without mask or jitter): Φ = a(·|z_k), one z_k per cell.
    problem = Problem(phi=Profile(split, weights, biases), scale=scale, mean=mean, phi0=a0, mask=None,
                      loss_kind="inversion", Z=1.0, C=C, T=1, size=(h, w))
    store = runs or RunStore(Path(out).parent if out is not None else None)
    cfg = to_dict(config)
    cfg["dims"] = list(dims)
    threads = job_threads(model.input_size, k * k)
    run = store.create(KIND, cfg, device=describe(device), folder=out,
                         model=model.facts() if hasattr(model, "facts") else None)

    def solve():
        yield Artifact("run", str(run.path))
        yield Log(f"traversal of {config.sample} in z dims {dims[0]}, {dims[1]} (ξ = {config.xi}, {k}×{k}), "
                  f"C = {C:g}, B = {B:g}")
        r = config.resolution or h
        delta = torch.zeros(k * k, c, r, r if config.resolution else w, device=device, requires_grad=True)
        opt = PreimageOptimizer(delta, initial_learning_rate(B, presets.ALPHA, delta.shape[-2] * delta.shape[-1]), B_plus)

        def canvas(d: torch.Tensor) -> torch.Tensor:
            if not config.resolution:
                return x0 + d
            return x0 + F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)

        for it in range(1, config.iters + 1):
            cancel.check()
            terms = algorithm1_step(problem, delta, opt, presets.ALPHA, presets.BETA, B, V, canvas=canvas)
            if not bool(torch.isfinite(terms["energy"]).all()):
                raise UserError("the traversal diverged (non-finite energy): lower C or xi")
            snap = None
            if it % config.snapshot_every == 0 or it == config.iters:
                snap = _pixels(terms["image"], mean)
            yield Step(it, config.iters, {name: terms[name].mean().item() for name in ("energy", "loss", "R_alpha", "R_tv")},
                       images=snap, stage="traversal")
        with torch.no_grad():
            xs = canvas(delta)
            final_loss = problem.loss(problem.code(xs)).cpu().numpy()
            shift = problem.loss(problem.code(x0.expand_as(xs))).cpu().numpy()
        pixels = _pixels(xs, mean).reshape(k, k, h, w, c)
        centre = k // 2
        ref = np.clip(image, 0.0, 1.0)
        diff = np.sqrt(((pixels - ref[None, None]) ** 2).reshape(k * k, -1).mean(1))
        metrics = {
            "dims": list(dims), "xi": config.xi, "grid": k, "C": C, "B": B, "label": label,
            "centre_error": float(diff.reshape(k, k)[centre, centre]),
            "mean_distance_from_sample": float(diff.mean()),
            "distance_from_sample": diff.reshape(k, k).tolist(),
            "preimage_error": final_loss.reshape(k, k).tolist(),
            "preimage_error_mean": float(final_loss.mean()),
            "profile_change_at_x": shift.reshape(k, k).tolist(),
            "profile_change_at_x_mean": float(shift.mean()),
            **smoothness(pixels),
        }
        _save(run, pixels, ref, metrics, config, dims, bool(getattr(model, "trained", True)), figure=figure)
        run.save_tensors("traversal.safetensors", {"images": torch.from_numpy(pixels), "z": zk, "x0": x0.cpu()})
        run.write_metrics(metrics)
        yield Artifact("grid", "images/grid.png")
        yield Log(f"centre error {metrics['centre_error']:.4f} (RMS on [0, 1]); neighbour RMS change "
                  f"{metrics['neighbour_rms']:.4f} vs {metrics['all_pairs_rms']:.4f} between all cells")
        return TraversalResult(run, pixels, ref, metrics)

    return (yield from finalise(run, solve(), threads=threads))


class Profile(torch.nn.Module):
    """Φ of the traversal: model input → a(·|z_k) = rest(Conv(CNN_{ℓ−1}(·), G(z_k))), cell k with its own filters."""

    def __init__(self, split, weights: torch.Tensor, biases: torch.Tensor) -> None:
        super().__init__()
        self.split, self.weights, self.biases = split, weights, biases

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.split.activation(self.split.prefix(x), self.weights, self.biases)


def _pixels(x: torch.Tensor, mean: torch.Tensor) -> np.ndarray:
    """Paper units → pixels in [0, 1], (N, H, W, C) float32."""
    p = (x / 255.0 + mean).clamp(0.0, 1.0)
    return np.ascontiguousarray(p.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32))


def traversal_figure(pixels: np.ndarray, dims: tuple[int, int], xi: float, title: str | None = None):
    """The k×k grid as a labelled :class:`~workbench.export.figures.FigureGrid`; rows move z_i, columns z_j."""
    from workbench.export.figures import FigureGrid

    k = pixels.shape[0]
    steps = np.linspace(-xi, xi, k)
    rows = [[pixels[r, c] for c in range(k)] for r in range(k)]
    return FigureGrid(rows, col_labels=[f"z{dims[1]} {s:+.1f}" for s in steps],
                      row_labels=[f"z{dims[0]} {s:+.1f}" for s in steps], title=title or "")


def grid_image(pixels: np.ndarray, dims: tuple[int, int], xi: float, title: str | None = None) -> np.ndarray:
    """The k×k grid as a labelled (H, W, 3) uint8 image (the window's view), tiles 64 pixels high."""
    return traversal_figure(pixels, dims, xi, title).render(tile=64)


def _save(run, pixels: np.ndarray, ref: np.ndarray, metrics: dict, config: TraversalConfig, dims,
          trained: bool = True, figure=None) -> None:
    from workbench.export.figures import model_caption
    from workbench.export.render import save_run_figure

    title = model_caption(f"{config.sample}: traversal of z{dims[0]}, z{dims[1]} (±{config.xi:g}); centre = the sample",
                          trained)
    save_run_figure(run, "grid", traversal_figure(pixels, dims, config.xi, title).figure(figure), figure)
    run.save_image("sample.png", ref)
