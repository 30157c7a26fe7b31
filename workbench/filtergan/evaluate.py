"""Assessing the generator (filter-GAN, sect. 5.2).

(i) Accuracy. Ten latent vectors z^(1..10) give ten filter sets; every image, after CNN_{ℓ−1},
goes through layer ℓ with each set and the ten outputs are averaged,
(1/10) Σ_i layer_ℓ(CNN_{ℓ−1}(x); G(z^(i))), where layer_ℓ is the convolution followed by the
rest of the layer (frozen batch-norm, ReLU, pooling). The following layers are re-trained on
that signal (our choice: fine-tuned from the CNN's own weights, Adam, a few epochs on the
digits train split) and ``accuracy_generated`` is measured on the test split, against
``accuracy_real`` of the untouched CNN. As a control, ``accuracy_real_retrained`` runs the
same re-training on the real layer's output.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from workbench.errors import UserError
from workbench.jobs import Artifact, CancelToken, Job, Log, Step

from workbench.config.filtergan import FILTER_SETS, FilterGanEvalConfig  # noqa: F401


def evaluate_filter_gan(run_dir: str | Path, config: FilterGanEvalConfig | None = None, *,
                        cancel: CancelToken | None = None, model=None, fgan=None,
                        out: str | Path | None = None, runs=None) -> Job:
    """Sect. 5.2 (i) and (ii) for a trained run; adds to its ``metrics.json`` and ``images/mds.png``.

    Nothing is written until everything is computed, so a cancelled evaluation leaves the
    run folder as it was. A run that must not change (the shipped one, or any with ``out``
    given) is copied to a new run folder — ``out``, or a new folder in the store ``runs`` —
    and the evaluation is written there. Returns the metrics it added, with ``run``: the
    folder that holds them.
    """
    from workbench.runs import check_new_folder, read_only_reason

    reason = None if out is not None else read_only_reason(run_dir)
    if reason is not None and runs is None:
        raise UserError(f"{run_dir} is read-only ({reason}): pass --out DIR to evaluate it into a new run folder")
    if out is not None:
        check_new_folder(out)
    return (yield from _evaluate(run_dir, config, cancel, model, fgan, out, runs if reason or out else None))


def _evaluate(run_dir, config, cancel, model, fgan, out, runs) -> Job:
    from workbench.filtergan.layer import batched, digits_of, normalize
    from workbench.filtergan.train import load_filter_gan
    from workbench.models.train import accuracy

    config = config or FilterGanEvalConfig()
    config.validate()
    cancel = cancel or CancelToken()
    fg = fgan or load_filter_gan(run_dir, device=config.device, model=model)
    config.validate(fg)
    device, split, model = fg.device, fg.split, fg.model
    g = torch.Generator().manual_seed(config.seed)
    z = torch.randn(config.filter_sets, fg.config.latent_dim, generator=g)
    weights, biases = fg.filters(z)

    x_train, y_train = digits_of(model, "train")
    x_train, y_train = x_train[:config.train_images], y_train[:config.train_images]
    x_test, y_test = digits_of(model, "test")
    yield Log(f"sect. 5.2 (i): layer {split.name} replaced by the mean over {config.filter_sets} generated filter sets")

    def averaged(f: torch.Tensor) -> torch.Tensor:
        return torch.stack([split.activation(f, w, b) for w, b in zip(weights, biases)]).mean(0)

    def real(f: torch.Tensor) -> torch.Tensor:
        return split.real_activation(f)

    prefix = lambda x: split.prefix(normalize(x, model))  # noqa: E731
    f_train, f_test = batched(prefix, x_train, device), batched(prefix, x_test, device)
    cancel.check()
    a_gen = (batched(averaged, f_train, device), batched(averaged, f_test, device))
    a_real = (batched(real, f_train, device), batched(real, f_test, device))
    acc_real = accuracy(nn.Sequential(split.prefix, split.conv, split.rest, split.suffix), (x_test, y_test),
                        torch.tensor(model.mean, device=device).view(1, -1, 1, 1),
                        torch.tensor(model.std, device=device).view(1, -1, 1, 1))
    total = 2 * config.retrain_epochs * ((len(y_train) + config.batch_size - 1) // config.batch_size)
    progress = [0, total]
    acc_gen = yield from _retrain(split.suffix, a_gen, y_train, y_test, config, device, cancel, progress, "generated")
    acc_real_rt = yield from _retrain(split.suffix, a_real, y_train, y_test, config, device, cancel, progress, "real")
    yield Log(f"accuracy real {acc_real:.4f}, generated {acc_gen:.4f} (real re-trained {acc_real_rt:.4f})")

    yield Log(f"sect. 5.2 (ii): MDS of the {split.conv.out_channels} real filters and {config.mds_samples} generated sets")
    cancel.check()
    mds = diversity(fg, config)
    cancel.check()
    from workbench.filtergan.plots import mds_plot

    from workbench.export.figures import model_caption

    image = mds_plot(mds["coords"], mds["real_index"], mds["is_real"],
                     title=model_caption(f"MDS of {fg.config.layer} filters: {split.conv.out_channels} real, "
                                         f"{config.mds_samples} x {split.conv.out_channels} generated",
                                         getattr(fg.model, "trained", True)))
    metrics: dict[str, Any] = {
        "accuracy_real": acc_real, "accuracy_generated": acc_gen, "accuracy_real_retrained": acc_real_rt,
        "accuracy_drop_points": round(100 * (acc_real - acc_gen), 3),
        "eval_config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        **{k: v for k, v in mds.items() if not isinstance(v, np.ndarray)},
    }
    target = fg.run
    if out is not None or runs is not None:
        from workbench.runs import RunStore, copy_run

        target = copy_run(fg.run, runs or RunStore(Path(out).parent), folder=out)
        yield Log(f"{fg.run.path} stays as it is: the evaluation is written to {target.path}")
    target.save_image("mds.png", image)
    target.save_tensors("mds.safetensors", {k: torch.as_tensor(mds[k]) for k in
                                            ("coords", "real_index", "channel", "sample", "is_real", "z")})
    target.update_metrics(**metrics)
    metrics["run"] = str(target.path)
    yield Artifact("mds", "images/mds.png")
    yield Artifact("mds tensors", "tensors/mds.safetensors")
    return metrics


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
