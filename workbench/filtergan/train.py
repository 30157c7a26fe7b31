"""Training the filter-GAN: Algorithm 1 of the ICLR 2018 submission, as a job.

Each iteration samples m latent vectors z^(i) ~ N(0, I) and m training images I^(i), passes
I^(i) through the frozen CNN with the real filters, CNN_ℓ(I^(i)), and with the generated
ones, Conv(CNN_{ℓ−1}(I^(i)), G(z^(i))) followed by the rest of layer ℓ, then

- step 7, D ascends  log D(real) + log(1 − D(fake));
- step 8, G descends log(1 − D(fake)) + λ ‖z − Q(fake)‖², where we use the usual
  non-saturating form −log D(fake) of the first term (Goodfellow et al. 2014, sect. 3), which
  has the same fixed point but does not vanish while D wins;
- step 9, Q (D's trunk and the Q head) descends ‖z − Q(fake)‖².

All updates use RMSprop (step 10). The paper gives no learning rate, λ, latent size or batch
size; ours are the defaults of :class:`FilterGanConfig`.

The run folder holds ``checkpoint.safetensors`` + ``checkpoint.json`` (G, D, both optimisers,
the random generator's state and the step), rewritten every ``checkpoint_every`` steps and
at the end, so a run can be resumed and yields the same numbers as one uninterrupted run.
``tensors/generator.safetensors`` holds the final G alone (what evaluation and traversal need).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from workbench.config import from_dict, to_dict
from workbench.config.filtergan import FilterGanConfig  # noqa: F401  (its home before the config package)
from workbench.errors import UserError
from workbench.jobs import Artifact, CancelToken, Job, Log, Step
from workbench.threads import job_threads
from workbench.runs import (Run, RunBackup, RunStore, atomic_path, claim_run, finalise, owner_fields, read_json,
                            write_json)

KIND = "filtergan"
CHECKPOINT = "checkpoint.safetensors"
GENERATOR_FILE = "tensors/generator.safetensors"




@dataclass
class FilterGan:
    """A trained filter-GAN, reopened from its run folder."""

    config: FilterGanConfig
    model: Any                 # LoadedModel
    split: Any                 # LayerSplit
    generator: Any             # FilterGenerator
    run: Run
    device: torch.device

    @torch.no_grad()
    def filters(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.generator(z.to(self.device))


def saved_config(config: dict) -> dict:
    """A run's saved FilterGanConfig fields; runs made before G had a choice of parametrisation
    used the per-channel one."""
    return {"generator": "channel", **config}


def _networks(config: FilterGanConfig, split, features_shape, device: torch.device, g: torch.Generator):
    from workbench.filtergan.networks import Discriminator, FilterGenerator

    G = FilterGenerator(split.conv.weight, split.conv.bias if split.conv.bias is not None
                        else torch.zeros(split.conv.out_channels), config.latent_dim, config.rank, config.hidden, g,
                        kind=config.generator)
    with torch.no_grad():
        probe = split.real_activation(torch.zeros(1, *features_shape))
    D = Discriminator(tuple(probe.shape[1:]), config.latent_dim, hidden=config.hidden, generator=g)
    return G.to(device), D.to(device)


def _optimizers(config: FilterGanConfig, G, D):
    opt_G = torch.optim.RMSprop(G.parameters(), lr=config.lr)
    opt_D = torch.optim.RMSprop(D.d_parameters(), lr=config.lr)
    opt_Q = torch.optim.RMSprop(D.q_parameters(), lr=config.lr)
    return opt_G, opt_D, opt_Q


def train_filter_gan(config: FilterGanConfig, *, model, cancel: CancelToken | None = None, runs: RunStore | None = None,
                     out: str | Path | None = None, resume: bool = False, figure=None) -> Job:
    """Train G, D and Q (Algorithm 1) of ``model``'s layer ``config.layer``: a model the caller opened
    (the job loads none; ``config.model`` is what run.json records). Returns the :class:`~workbench.runs.Run`.

    ``figure`` (a :class:`~workbench.export.style.FigureStyle`) sizes the loss plot (default: a page).

    With ``resume`` and an ``out`` folder holding a checkpoint, training continues from it up
    to ``config.steps``; the config must otherwise match the one the run was started with.
    """
    from workbench.device import describe, resolve_device
    from workbench.filtergan.layer import split_at

    config.validate()
    cancel = cancel or CancelToken()
    device = resolve_device(config.device)
    model = model.to(device) if hasattr(model, "to") and not isinstance(model, torch.nn.Module) else model
    split = split_at(model, config.layer)
    config.validate(tuple(split.conv.weight.shape))
    threads = job_threads(model.input_size, config.batch_size)
    state = None
    backup = None
    if resume:
        if out is None or not (Path(out) / "run.json").is_file():
            raise UserError(f"nothing to resume in {out}: it is not a run folder; train without --resume")
        # first, so a run still being trained is named as such: exclusive, no other process trains,
        # resumes or evaluates it meanwhile (and the folder holds no link: runs.check_contained)
        claim = claim_run(out, "resume")
        try:
            if not (Path(out) / CHECKPOINT).is_file():
                raise UserError(f"nothing to resume in {out}: it has no {CHECKPOINT}; train without --resume")
            run = RunStore(Path(out).parent).open(out)
            saved = _saved(run)
            mismatched = [k for k, v in to_dict(saved).items()
                          if k not in ("steps", "device") and to_dict(config)[k] != v]
            if mismatched:
                raise UserError(f"cannot resume {out}: its run used different {', '.join(mismatched)}; "
                                f"use the same options")
            state = _read_checkpoint_state(run.path)
            backup = RunBackup(run.path)
        except BaseException:
            claim.release()
            raise
        run._update(status="running", finished=None, error=None, config=to_dict(config), **owner_fields())
    else:
        store = runs or RunStore(Path(out).parent if out is not None else None)
        run = store.create(KIND, to_dict(config), device=describe(device), folder=out,
                         model=model.facts() if hasattr(model, "facts") else None)
    try:
        yield Artifact("run", str(run.path))
        job = finalise(run, _train(config, model, split, run, state, device, cancel, figure),
                       on_stop=_record_stop(run), threads=threads)
        if backup is None:
            return (yield from job)
        return (yield from backup.restoring(job, run))
    finally:
        if backup is not None:
            claim.release()


def _record_stop(run: Run):
    def on_stop(status: str) -> None:
        if status == "cancelled":
            run.update_metrics(cancelled_at=getattr(run, "completed_steps", 0))
    return on_stop


def _train(config: FilterGanConfig, model, split, run: Run, state, device, cancel: CancelToken, figure=None):
    from workbench.filtergan.layer import batched, digits_of, normalize

    x_train, _ = digits_of(model, "train")
    x_train = x_train[:config.train_images]
    yield Log(f"filter-GAN on {getattr(model, 'name', 'model')}:{config.layer}; caching CNN_ℓ−1 of {len(x_train)} training digits")
    features = batched(lambda x: split.prefix(normalize(x, model)), x_train, device)
    real = batched(split.real_activation, features, device)
    g = torch.Generator().manual_seed(config.seed)
    G, D = _networks(config, split, tuple(features.shape[1:]), device, g)
    opt_G, opt_D, opt_Q = _optimizers(config, G, D)
    history: dict[str, list[float]] = {"step": [], "loss_D": [], "loss_G": [], "loss_Q": [], "D_real": [], "D_fake": []}
    start = 0
    if state is not None:
        _load_checkpoint(run.path, G, D, opt_G, opt_D, opt_Q, g, device)
        start = int(state["step"])
        history = state["history"]
        yield Log(f"resumed from step {start}")
    z_show = torch.randn(4, config.latent_dim, generator=torch.Generator().manual_seed(config.seed + 1)).to(device)
    n = len(features)
    m = min(config.batch_size, n)
    t0 = time.monotonic()
    acc = {k: 0.0 for k in history if k != "step"}
    count = 0
    step = start
    for step in range(start + 1, config.steps + 1):
        cancel.check()
        z = torch.randn(m, config.latent_dim, generator=g).to(device)
        idx = torch.randint(0, n, (m,), generator=g).to(device)
        a_real = real[idx]
        weight, bias = G(z)
        a_fake = split.activation(features[idx], weight, bias)

        d_real, _ = D(a_real)
        d_fake, _ = D(a_fake.detach())
        loss_D = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        opt_D.step()

        d_fake_g, q = D(a_fake)
        loss_Q_g = (z - q).pow(2).sum(1).mean()
        loss_G = F.binary_cross_entropy_with_logits(d_fake_g, torch.ones_like(d_fake_g)) + config.lambda_info * loss_Q_g
        opt_G.zero_grad(set_to_none=True)
        loss_G.backward()
        opt_G.step()

        _, q = D(a_fake.detach())
        loss_Q = (z - q).pow(2).sum(1).mean()
        opt_Q.zero_grad(set_to_none=True)
        loss_Q.backward()
        opt_Q.step()

        values = {"loss_D": loss_D.item(), "loss_G": loss_G.item(), "loss_Q": loss_Q.item(),
                  "D_real": torch.sigmoid(d_real).mean().item(), "D_fake": torch.sigmoid(d_fake).mean().item()}
        if not all(np.isfinite(v) for v in values.values()):
            raise UserError(f"training diverged at step {step} (non-finite loss): lower --lr")
        for k, v in values.items():
            acc[k] += v
        count += 1
        if step % config.log_every == 0 or step == config.steps:
            history["step"].append(step)
            for k in acc:
                history[k].append(acc[k] / count)
            acc = {k: 0.0 for k in acc}
            count = 0
        images = None
        if step % config.sample_every == 0 or step == config.steps:
            images = _sample_sheet(G, z_show, split)[None]
        run.completed_steps = step
        yield Step(step, config.steps, values, images=images, stage="Algorithm 1")
        if step % config.checkpoint_every == 0 and step != config.steps:
            _save_checkpoint(run.path, G, D, opt_G, opt_D, opt_Q, g, step, history)
    elapsed = time.monotonic() - t0
    _save_checkpoint(run.path, G, D, opt_G, opt_D, opt_Q, g, step, history)
    run.save_tensors("generator.safetensors", G.state_dict())
    yield Artifact("generator", GENERATOR_FILE)
    sheet = _sample_sheet(G, z_show, split, with_real=True)
    run.save_image("filters.png", np.kron(sheet, np.ones((2, 2, 1), np.float32)))
    yield Artifact("filters", "images/filters.png")
    _save_loss_plot(run, history, figure)
    yield Artifact("losses", "images/losses.png")
    metrics = run.metrics()
    metrics.update(history=history, steps=step, train_seconds=round(elapsed + metrics.get("train_seconds", 0.0), 1),
                   final={k: history[k][-1] for k in history if k != "step"} if history["step"] else {},
                   z_dependence=_z_dependence(G, config, device))
    run.write_metrics(metrics)
    yield Log(f"trained {step} steps in {elapsed:.0f} s; run folder {run.path}")
    return run


@torch.no_grad()
def _sample_sheet(G, z: torch.Tensor, split, with_real: bool = False) -> np.ndarray:
    from workbench.filtergan.plots import filter_sheet

    weight, _ = G(z)
    rows = [w.cpu().numpy() for w in weight]
    if with_real:
        rows = [split.conv.weight.detach().cpu().numpy()] + rows
    return filter_sheet(rows)


@torch.no_grad()
def _z_dependence(G, config: FilterGanConfig, device: torch.device) -> float:
    """Mean over output channels of std_z(W_j(z)) / ‖W_j real‖: 0 for a constant G."""
    z = torch.randn(64, config.latent_dim, generator=torch.Generator().manual_seed(config.seed + 2)).to(device)
    weight, _ = G(z)
    spread = weight.flatten(2).std(0).norm(dim=1)
    return float((spread / G.base_weight.flatten(1).norm(dim=1).clamp_min(1e-12)).mean())


def _save_loss_plot(run: Run, history: dict[str, list[float]], figure=None) -> None:
    """``images/losses.png`` and ``losses.pdf``."""
    from workbench.export.render import save_run_figure
    from workbench.filtergan.plots import loss_figure

    if not history["step"]:
        return
    save_run_figure(run, "losses", loss_figure(history, style=figure), figure)


def _optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"{prefix}.{pid}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    return tensors, {"param_groups": sd["param_groups"], "state_keys": {str(p): list(st) for p, st in sd["state"].items()}}


def _save_checkpoint(path: Path, G, D, opt_G, opt_D, opt_Q, g: torch.Generator, step: int, history) -> None:
    from safetensors.torch import save_file

    tensors = {f"G.{k}": v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    tensors.update({f"D.{k}": v.detach().cpu().contiguous() for k, v in D.state_dict().items()})
    meta = {}
    for name, opt in (("opt_G", opt_G), ("opt_D", opt_D), ("opt_Q", opt_Q)):
        t, m = _optimizer_tensors(name, opt)
        tensors.update(t)
        meta[name] = m
    tensors["rng"] = g.get_state()
    with atomic_path(path / CHECKPOINT) as tmp:
        save_file(tensors, str(tmp))
    write_json(path / "checkpoint.json", {"step": step, "optimizers": meta, "history": history})


def _saved(run: Run) -> FilterGanConfig:
    """The FilterGanConfig a run folder was trained with, checked like any input."""
    try:
        config = from_dict(FilterGanConfig, saved_config(_config_dict(run)))
    except UserError as exc:
        raise UserError(f"{run.path.name}/run.json: {exc}: the run folder is damaged") from None
    except TypeError as exc:
        raise UserError(f"{run.path.name}/run.json has a malformed filter-GAN config ({exc}): the run folder is damaged") from None
    return _checked(run, config)


def _checked(run: Run, config: FilterGanConfig, split=None) -> FilterGanConfig:
    """``config.validate`` (with the layer's filter shape once known), naming the folder."""
    try:
        config.validate(tuple(split.conv.weight.shape) if split is not None else None)
    except UserError as exc:
        raise UserError(f"{run.path.name}/run.json: {exc}") from None
    return config


def _config_dict(run: Run) -> dict:
    config = run.info.get("config")
    if not isinstance(config, dict):
        raise UserError(f"{run.path.name}/run.json holds no config object: the run folder is damaged")
    return config


def _read_checkpoint_state(path: Path) -> dict:
    """checkpoint.json, checked: a step and a loss history of equal-length lists."""
    state = read_json(path / "checkpoint.json", f"{path.name}/checkpoint.json")
    from workbench.config.filtergan import MAX_STEPS

    history = state.get("history") if isinstance(state, dict) else None
    keys = ("step", "loss_D", "loss_G", "loss_Q", "D_real", "D_fake")
    step = state.get("step") if isinstance(state, dict) else None
    ok = (isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= MAX_STEPS
          and isinstance(state.get("optimizers"), dict) and isinstance(history, dict)
          and all(isinstance(history.get(k), list) for k in keys)
          and len({len(history[k]) for k in keys}) == 1  # a ragged history cannot be plotted or continued
          and all((isinstance(v, float) and math.isfinite(v))
                  or (isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**53)
                  for k in keys for v in history[k]))
    if not ok:
        raise UserError(f"{path.name}/checkpoint.json is not a filter-GAN checkpoint: the run folder is damaged; "
                        f"train again without --resume")
    return state


def read_tensors(file: Path, what: str) -> dict[str, torch.Tensor]:
    """A safetensors file; anything else (empty, truncated, a pickle) is a one-line UserError."""
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except Exception as exc:
        detail = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise UserError(f"{what} {file.name} is not a readable safetensors file ({detail}): the run folder is damaged") from None


def _load_checkpoint(path: Path, G, D, opt_G, opt_D, opt_Q, g: torch.Generator, device) -> None:
    tensors = read_tensors(path / CHECKPOINT, f"{path.name}:")
    meta = _read_checkpoint_state(path)["optimizers"]
    try:
        G.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("G.")})
        D.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("D.")})
        for name, opt in (("opt_G", opt_G), ("opt_D", opt_D), ("opt_Q", opt_Q)):
            state = {int(p): {k: tensors[f"{name}.{p}.{k}"].to(device) if k != "step" else tensors[f"{name}.{p}.{k}"]
                              for k in keys} for p, keys in meta[name]["state_keys"].items()}
            opt.load_state_dict({"state": state, "param_groups": meta[name]["param_groups"]})
        g.set_state(tensors["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise UserError(f"the checkpoint in {path.name} does not fit this filter-GAN "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())[:100]}): train again without --resume") from None


def recorded_spec(info: dict, name: str):
    """The ModelSpec run.json recorded (``model.spec``), else the bare spec string ``name``."""
    from workbench.config.model import ModelSpec

    spec = (info.get("model") or {}).get("spec") if isinstance(info.get("model"), dict) else None
    return from_dict(ModelSpec, spec) if isinstance(spec, dict) else name


def load_filter_gan(run_dir: str | Path, *, device: str | torch.device = "auto", model=None,
                    trust: bool = False) -> FilterGan:
    """Reopen a finished (or checkpointed) filter-GAN run folder; ``trust`` is the user's consent, for this
    call only, to open a model it names that is code (see :func:`workbench.filtergan.layer.resolve_model`)."""
    from workbench.device import resolve_device
    from workbench.filtergan.layer import resolve_model, split_at
    from workbench.filtergan.networks import FilterGenerator

    run = RunStore(Path(run_dir).parent).open(run_dir)
    if run.info.get("kind") != KIND:
        raise UserError(f"{run_dir} is a {run.info.get('kind')} run, not a filter-GAN run: pass a folder made by `workbench filtergan train`")
    config = _saved(run)
    device = resolve_device(device)
    file = run.path / GENERATOR_FILE
    if file.is_file():
        tensors = read_tensors(file, f"{run.path.name}:")
    elif (run.path / CHECKPOINT).is_file():
        tensors = {k[2:]: v for k, v in read_tensors(run.path / CHECKPOINT, f"{run.path.name}:").items() if k.startswith("G.")}
    else:
        raise UserError(f"{run_dir} holds no trained generator yet: let `workbench filtergan train` finish or resume it")
    if model is None:
        model = resolve_model(recorded_spec(run.info, config.model), device, trust)
    split = split_at(model, config.layer)
    _checked(run, config, split)
    conv = split.conv
    G = FilterGenerator(conv.weight, conv.bias if conv.bias is not None else torch.zeros(conv.out_channels),
                        config.latent_dim, config.rank, config.hidden, kind=config.generator)
    try:
        G.load_state_dict(tensors)
    except (RuntimeError, KeyError, TypeError, ValueError):
        raise UserError(f"the generator in {run_dir} does not fit layer {config.layer} of {config.model}: "
                        "the model changed since training; train again") from None
    G.to(device).eval()
    for p in G.parameters():
        p.requires_grad_(False)
    return FilterGan(config, model, split, G, run, device)
