"""Assessing the generator (filter-GAN, sect. 5.2).

(i) Accuracy. Ten latent vectors z^(1..10) give ten filter sets; every image, after CNN_{ℓ−1},
goes through layer ℓ with each set and the ten outputs are averaged,
(1/10) Σ_i layer_ℓ(CNN_{ℓ−1}(x); G(z^(i))), where layer_ℓ is the convolution followed by the
rest of the layer (frozen batch-norm, ReLU, pooling). The following layers are re-trained on
that signal (our choice: fine-tuned from the CNN's own weights, Adam, a few epochs on the
digits train split) and ``accuracy_generated`` is measured on the test split, against
``accuracy_real`` of the untouched CNN. As a control, ``accuracy_real_retrained`` runs the
same re-training on the real layer's output.

Controls (ours; the paper has none). Re-training the following layers repairs almost anything
fed to them, so a high ``accuracy_generated`` alone does not show that the generated filters
are good filters of layer ℓ. The same procedure (the same ten-set average, the same
re-training with the same seed and batches) is run on two kinds of filter sets that are not
produced by G, each drawn with the config's seed:

- ``noise``: the real filters plus Gaussian noise, per filter set i and output channel j
  scaled to the norm of the generated filter's offset, ‖ε_ij‖ = ‖G(z^(i))_j − w_j‖ (biases
  moved by |b_ij(z) − b_j| with a random sign; the "shared" G keeps the real biases, and so
  does this control);
- ``permuted``: the generated filters with the entries of every filter (its C_in × k × k
  weights) shuffled by a permutation of its own, biases kept. We permute entries rather than
  output channels: a channel permutation leaves the filter bank the same set of filters (the
  MDS and every per-filter statistic cannot tell it from the real one) and tests only the
  wiring to layer ℓ+1, which re-training a linear layer undoes; shuffling the entries keeps
  each filter's norm and distribution of values, in its own channel, and destroys only its
  structure, which is what "good filters" is about.

For the generated filters and each control, ``accuracy_<kind>_frozen`` is the test accuracy
of the untouched following layers (no re-training) on the averaged signal, and
``activation_change_relative[kind]`` = ‖ā − a_real‖ / ‖a_real‖ over the test split, where ā
is the averaged signal: how far each replacement moves what layer ℓ+1 sees;
``accuracy_frozen_single_set[kind]`` is the frozen accuracy with one filter set alone (no
average), the mean over the sets — averaging independent noise cancels more of it than
averaging generated sets, which share G's offset from the real filters. ``margins``
gives accuracy_generated minus each control's, in points, frozen and re-trained
(``test_images`` tells the size of one image: 100 / test_images points).

(ii) Diversity. MDS (scikit-learn, metric SMACOF) of the real filters of layer ℓ together
with the filters generated for ``mds_samples`` random z. Correspondence: each generated
output channel c is assigned the real filter π(c), where π is the one-to-one matching
(Hungarian algorithm) between the mean generated filter of each channel (over the sampled z)
and the real filters that minimises the total Euclidean distance. By construction of G
(channel j starts at real filter j, and D sees channels in order) π is expected to be the
identity; ``matching_identity_fraction`` reports how often it is.

Spread: for real filter j with generated filters g_js (s = 1..S),
``spread_relative`` = mean_j mean_s ‖g_js − ḡ_j‖ / ‖w_j‖ in filter space (0 = collapsed onto
one filter), ``mds_spread_mean`` = the same mean distance to the cluster centre measured in
the MDS plane, divided by the mean distance from a real filter to its nearest other real
filter there, and ``nearest_real_fraction`` = how many generated filters have their own real
filter as nearest real filter (clusters around each real filter).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench.errors import UserError
from workbench.filtergan.layer import batched
from workbench.jobs import Artifact, CancelToken, Job, Log, Step

from workbench.config.filtergan import FILTER_SETS, FilterGanEvalConfig  # noqa: F401


def evaluation_job(fgan, config: FilterGanEvalConfig | None = None, *, cancel: CancelToken | None = None,
                   out: str | Path | None = None, runs=None, figure=None) -> Job:
    """Sect. 5.2 (i) and (ii) for the trained filter-GAN ``fgan`` (a loaded
    :class:`~workbench.filtergan.train.FilterGan`: the job opens no model and no run itself); adds
    to its run's ``metrics.json`` and ``images/mds.png`` (and ``mds.pdf``, at the size ``figure``, a
    :class:`~workbench.export.style.FigureStyle`).

    A run that must not change (the shipped one, or any with ``out`` given) is first copied to a
    new run folder — ``out``, or a new folder in the store ``runs`` — and the evaluation is written
    there. The folder written (the run itself, or the copy) ends through :func:`workbench.runs.finalise`
    like every job's: its run.json says ``running`` while the evaluation computes, then ``done``,
    ``cancelled`` or ``failed`` with the error. Its results (metrics, MDS plot and tensors) are
    written only once everything is computed, each file atomically, so a cancelled or failed
    evaluation leaves them as they were. As after a ``--resume``, the status is how the last job in
    the folder ended: a training that was stopped early stays recorded in ``metrics.json``
    (``cancelled_at``, ``history``), not in the status. Returns the metrics it added, with ``run``:
    the folder that holds them.
    """
    from workbench.runs import RunStore, check_new_folder, claim_run, copy_run, finalise, owner_fields, read_only_reason

    config = config or FilterGanEvalConfig()
    config.validate()
    config.validate(fgan)
    cancel = cancel or CancelToken()
    source = fgan.run
    reason = None if out is not None else read_only_reason(source.path)
    if reason is not None and runs is None:
        raise UserError(f"{source.path} is read-only ({reason}): pass --out DIR to evaluate it into a new run folder")
    if out is not None:
        check_new_folder(out)
    copying = bool(reason or out)
    # a run another process still writes (training, a resume) is evaluated by nobody; evaluating in
    # place holds it exclusively, copying it holds it against writers only
    claim = claim_run(source.path, "evaluate", write=not copying)
    try:
        target = copy_run(source, runs or RunStore(Path(out).parent), folder=out) if copying else source
        target._update(status="running", finished=None, error=None, **owner_fields())

        def body() -> Job:
            yield Artifact("run", str(target.path))
            if copying:
                yield Log(f"{source.path} stays as it is: the evaluation is written to {target.path}")
            return (yield from _evaluate(fgan, config, target, cancel, figure))

        return (yield from finalise(target, body()))
    finally:
        claim.release()


def _evaluate(fg, config: FilterGanEvalConfig, target, cancel: CancelToken, figure=None) -> Job:
    """The body of :func:`evaluation_job`: computes everything, then writes it to the run ``target``."""
    from workbench.filtergan.layer import digits_of, normalize
    from workbench.models.train import accuracy

    device, split, model = fg.device, fg.split, fg.model
    g = torch.Generator().manual_seed(config.seed)
    z = torch.randn(config.filter_sets, fg.config.latent_dim, generator=g)
    weights, biases = fg.filters(z)

    x_train, y_train = digits_of(model, "train")
    x_train, y_train = x_train[:config.train_images], y_train[:config.train_images]
    x_test, y_test = digits_of(model, "test")
    yield Log(f"sect. 5.2 (i): layer {split.name} replaced by the mean over {config.filter_sets} generated filter sets")

    prefix = lambda x: split.prefix(normalize(x, model))  # noqa: E731
    f_train, f_test = batched(prefix, x_train, device), batched(prefix, x_test, device)
    cancel.check()
    acc_real = accuracy(nn.Sequential(split.prefix, split.conv, split.rest, split.suffix), (x_test, y_test),
                        torch.tensor(model.mean, device=device).view(1, -1, 1, 1),
                        torch.tensor(model.std, device=device).view(1, -1, 1, 1))
    real_w, real_b = real_filters(split)
    sets = {"generated": (weights, biases),
            **{kind: control_filters(real_w, real_b, weights, biases, kind, config.seed) for kind in CONTROLS}}
    a_real = (batched(split.real_activation, f_train, device), batched(split.real_activation, f_test, device))
    total = (1 + len(sets)) * config.retrain_epochs * ((len(y_train) + config.batch_size - 1) // config.batch_size)
    progress = [0, total]
    retrained: dict[str, float] = {}
    frozen: dict[str, float] = {}
    change: dict[str, float] = {}
    single: dict[str, float] = {}
    for kind, (w, b) in sets.items():
        cancel.check()
        a_test, single[kind] = averaged_activation(split, f_test, w, b, device, single_set=(split.suffix, y_test))
        a = (averaged_activation(split, f_train, w, b, device), a_test)
        frozen[kind] = frozen_accuracy(split.suffix, a_test, y_test)
        change[kind] = float((a[1] - a_real[1]).norm() / a_real[1].norm().clamp_min(1e-12))
        retrained[kind] = yield from _retrain(split.suffix, a, y_train, y_test, config, device, cancel, progress, kind)
        yield Log(f"{kind}: accuracy {retrained[kind]:.4f} re-trained, {frozen[kind]:.4f} with the following "
                  f"layers frozen; the averaged signal moved {change[kind]:.3f} of its norm")
        del a
    acc_gen = retrained["generated"]
    acc_real_rt = yield from _retrain(split.suffix, a_real, y_train, y_test, config, device, cancel, progress, "real")
    yield Log(f"accuracy real {acc_real:.4f}, generated {acc_gen:.4f} (real re-trained {acc_real_rt:.4f})")
    offset = (weights - real_w).flatten(2).norm(dim=2) / real_w.flatten(1).norm(dim=1).clamp_min(1e-12)

    yield Log(f"sect. 5.2 (ii): MDS of the {split.conv.out_channels} real filters and {config.mds_samples} generated sets")
    cancel.check()
    mds = diversity(fg, config)
    cancel.check()
    from workbench.filtergan.plots import mds_figure, mds_title

    from workbench.export.figures import model_caption

    plot = mds_figure(mds["coords"], mds["real_index"], mds["is_real"], style=figure,
                      title=model_caption(mds_title(fg.config.layer, split.conv.out_channels, config.mds_samples),
                                          getattr(fg.model, "trained", True)))
    metrics: dict[str, Any] = {
        "accuracy_real": acc_real, "accuracy_generated": acc_gen, "accuracy_real_retrained": acc_real_rt,
        "accuracy_drop_points": round(100 * (acc_real - acc_gen), 3),
        "accuracy_generated_frozen": frozen["generated"],
        **{f"accuracy_{kind}": retrained[kind] for kind in CONTROLS},
        **{f"accuracy_{kind}_frozen": frozen[kind] for kind in CONTROLS},
        "accuracy_frozen_single_set": single,
        "margins": {kind: {"frozen_points": round(100 * (frozen["generated"] - frozen[kind]), 3),
                           "retrained_points": round(100 * (acc_gen - retrained[kind]), 3)} for kind in CONTROLS},
        "activation_change_relative": change,
        "perturbation_relative": float(offset.mean()),
        "test_images": int(len(y_test)),
        "controls": dict(CONTROL_DESCRIPTIONS),
        "eval_config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        **{k: v for k, v in mds.items() if not isinstance(v, np.ndarray)},
    }
    from workbench.export.render import save_run_figure

    save_run_figure(target, "mds", plot, figure)
    target.save_tensors("mds.safetensors", {k: torch.as_tensor(mds[k]) for k in
                                            ("coords", "real_index", "channel", "sample", "is_real", "z")})
    target.update_metrics(**metrics)
    metrics["run"] = str(target.path)
    yield Artifact("mds", "images/mds.png")
    yield Artifact("mds tensors", "tensors/mds.safetensors")
    return metrics


#: The controls of sect. 5.2 (i) (see the module docstring), in the order they are evaluated.
CONTROLS = ("noise", "permuted")
CONTROL_DESCRIPTIONS = {
    "noise": "real filters + Gaussian noise, per set and output channel of the norm of the generated "
             "filter's distance from the real one",
    "permuted": "generated filters with the entries of each filter (C_in x k x k) randomly permuted, biases kept",
}


def real_filters(split) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer ℓ's own (weight, bias); a zero bias for a convolution without one."""
    conv = split.conv
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, device=conv.weight.device)
    return conv.weight.detach(), bias.detach()


@torch.no_grad()
def control_filters(real_w: torch.Tensor, real_b: torch.Tensor, weights: torch.Tensor, biases: torch.Tensor,
                    kind: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The control filter sets for generated ``weights`` (S, C_out, C_in, k, k) and ``biases`` (S, C_out).

    ``noise``: real + ε with ‖ε_ij‖ = ‖weights_ij − real_w_j‖ per set i and channel j (and the bias
    moved by |biases_ij − real_b_j| with a random sign); ``permuted``: each filter's entries
    shuffled. Drawn on the CPU from a generator seeded by ``seed`` (and the kind), so the same
    seed gives the same sets on every device."""
    device = weights.device
    if kind == "noise":
        g = torch.Generator().manual_seed(seed * 1_000_003 + 11)
        w, rw = weights.detach().cpu(), real_w.detach().cpu()
        dist = (w - rw).flatten(2).norm(dim=2)                                   # (S, C)
        noise = torch.randn(w.shape, generator=g, dtype=w.dtype)
        noise = noise * (dist / noise.flatten(2).norm(dim=2).clamp_min(1e-12)).view(*dist.shape, 1, 1, 1)
        sign = torch.randint(0, 2, biases.shape, generator=g).to(biases.dtype) * 2 - 1
        shift = sign * (biases.detach().cpu() - real_b.detach().cpu()).abs()
        return (rw + noise).to(device), (real_b.detach().cpu() + shift).to(device)
    if kind == "permuted":
        g = torch.Generator().manual_seed(seed * 1_000_003 + 12)
        flat = weights.detach().cpu().flatten(2)                                 # (S, C, D)
        order = torch.rand(flat.shape, generator=g).argsort(dim=2)
        return flat.gather(2, order).view_as(weights).to(device), biases.detach().clone()
    raise ValueError(f"unknown control {kind!r}: use one of {CONTROLS}")


@torch.no_grad()
def averaged_activation(split, features: torch.Tensor, weights: torch.Tensor, biases: torch.Tensor, device,
                        single_set: tuple[nn.Module, torch.Tensor] | None = None, batch_size: int = 256):
    """(1/S) Σ_i layer_ℓ(features; weights_i, biases_i), the signal sect. 5.2 feeds to layer ℓ+1.

    With ``single_set`` = (suffix, labels), also the frozen accuracy of every set i alone, from
    the same pass (the mean over the sets): returns (activations, that accuracy)."""
    out = []
    correct = torch.zeros(len(weights), dtype=torch.long)
    for i in range(0, len(features), batch_size):
        f = features[i:i + batch_size].to(device)
        each = [split.activation(f, w, b) for w, b in zip(weights, biases)]
        out.append(torch.stack(each).mean(0))
        if single_set is not None:
            suffix, y = single_set
            suffix.eval()
            for s, a in enumerate(each):
                correct[s] += int((suffix(a).argmax(1).cpu() == y[i:i + batch_size].cpu()).sum())
    activations = torch.cat(out)
    if single_set is None:
        return activations
    return activations, float((correct.double() / max(len(features), 1)).mean())


@torch.no_grad()
def frozen_accuracy(suffix: nn.Sequential, activations: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy of the untouched following layers on ``activations`` (no re-training)."""
    suffix.eval()
    pred = torch.cat([suffix(activations[i:i + 256]).argmax(1).cpu() for i in range(0, len(activations), 256)])
    return float((pred == y.cpu()).float().mean())


def _retrain(suffix: nn.Sequential, activations, y_train, y_test, config: FilterGanEvalConfig, device,
             cancel: CancelToken, progress: list[int], label: str):
    """Fine-tune a copy of the layers after ℓ on ``activations`` (train, test); test accuracy."""
    net = copy.deepcopy(suffix).to(device)
    for p in net.parameters():
        p.requires_grad_(True)
    a_train, a_test = activations
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(net.parameters(), lr=config.retrain_lr)
    y_train = y_train.to(device)
    n = len(y_train)
    for epoch in range(config.retrain_epochs):
        net.train()
        order = torch.randperm(n, generator=g).to(device)
        for i in range(0, n, config.batch_size):
            cancel.check()
            idx = order[i:i + config.batch_size]
            loss = F.cross_entropy(net(a_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            progress[0] += 1
            yield Step(progress[0], progress[1], {f"retrain_loss_{label}": loss.item()},
                       stage=f"re-training after {label} layer, epoch {epoch + 1}")
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(a_test[i:i + 256]).argmax(1).cpu() for i in range(0, len(a_test), 256)])
    return float((pred == y_test).float().mean())


@torch.no_grad()
def diversity(fg, config: FilterGanEvalConfig) -> dict[str, Any]:
    """MDS coordinates and spread of real + generated filters (see the module docstring)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.manifold import MDS

    g = torch.Generator().manual_seed(config.seed + 1)
    z = torch.randn(config.mds_samples, fg.config.latent_dim, generator=g)
    weights, _ = fg.filters(z)
    S, C = weights.shape[:2]
    gen = weights.flatten(2).cpu().double().numpy()                      # (S, C, D)
    real = fg.split.conv.weight.detach().flatten(1).cpu().double().numpy()  # (C, D)
    centre = gen.mean(0)
    cost = np.linalg.norm(centre[:, None, :] - real[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    pi = np.empty(C, dtype=np.int64)
    pi[rows] = cols
    real_norm = np.linalg.norm(real, axis=1)
    spread = np.linalg.norm(gen - centre[None], axis=2).mean(0)          # (C,) mean distance to the centre
    spread_relative = float((spread / np.maximum(real_norm[pi], 1e-12)).mean())
    offset_relative = float((np.linalg.norm(centre - real[pi], axis=1) / np.maximum(real_norm[pi], 1e-12)).mean())
    d_gen_real = np.linalg.norm(gen[:, :, None, :] - real[None, None, :, :], axis=3)  # (S, C, C_real)
    nearest = d_gen_real.argmin(2)
    nearest_fraction = float((nearest == pi[None, :]).mean())

    points = np.concatenate([real, gen.reshape(S * C, -1)])
    coords = MDS(n_components=2, metric_mds=True, n_init=1, init="classical_mds", max_iter=config.mds_iter,
                 random_state=config.seed, normalized_stress="auto").fit_transform(points)
    is_real = np.zeros(len(points), dtype=bool)
    is_real[:C] = True
    channel = np.concatenate([np.arange(C), np.tile(np.arange(C), S)])
    real_index = np.concatenate([np.arange(C), np.tile(pi, S)])
    sample = np.concatenate([-np.ones(C, dtype=np.int64), np.repeat(np.arange(S), C)])
    real_xy = coords[:C]
    gen_xy = coords[C:].reshape(S, C, 2)
    mds_radius = np.linalg.norm(gen_xy - gen_xy.mean(0, keepdims=True), axis=2).mean()
    rr = np.linalg.norm(real_xy[:, None] - real_xy[None], axis=2)
    np.fill_diagonal(rr, np.inf)
    return {
        "coords": coords.astype(np.float32), "is_real": is_real, "channel": channel, "real_index": real_index,
        "sample": sample, "z": z.numpy(),
        "spread_relative": spread_relative, "mean_offset_relative": offset_relative,
        "mds_spread_mean": float(mds_radius / rr.min(1).mean()), "nearest_real_fraction": nearest_fraction,
        "matching_identity_fraction": float((pi == np.arange(C)).mean()), "mds_points": int(len(points)),
    }
