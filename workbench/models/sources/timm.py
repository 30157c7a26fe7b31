"""The timm source: ``timm:NAME`` (extra ``[timm]``, imported only when used).

``timm.create_model(name, pretrained=False, **kwargs)`` seeded from ``zoo.INIT_SEED``;
pretrained weights only from the local Hugging Face cache, never downloaded."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from workbench.config.model import ModelSpec
from workbench.errors import UserError
from workbench.models import zoo
from workbench.models.sources.describe import _describe_input, _finish, _read_sidecar
from workbench.models.sources.loaded import LoadedModel, _or_list
from workbench.models.sources.loaded import _first_line as _line
from workbench.models.sources.weights import _head_classes, _load_state, _read_weights


def _load_timm(spec: ModelSpec, trust: bool, device: torch.device) -> LoadedModel:
    text, name, kwargs = spec.model, spec.model[len("timm:"):].strip(), spec.kwargs()
    if spec.arch is not None:
        raise UserError(f"--arch applies to model files; {text} is its own architecture: drop --arch")
    with zoo.seeded_init():
        module, trained, source, notice, input_size, mean, std = timm_model(name, kwargs)
    sidecar = side = None
    meta: dict[str, Any] = {}
    if spec.weights is not None:
        path, state, kind = _read_weights(spec.weights, trust)
        classes = _head_classes(module, state)
        if classes is not None and "num_classes" not in kwargs:
            with zoo.seeded_init():
                module = timm_model(name, {**kwargs, "num_classes": classes})[0]
        _load_state(module, state, path, text, hint="check --weights and --model-kwargs")
        sidecar, side = _read_sidecar(path), path.with_suffix(".json").name
        meta = dict(sidecar or {})
        trained, notice = True, None
        source = f"{path} ({kind} into {text}{f', {classes} classes' if classes is not None else ''})"
    io = _describe_input(text, spec, module, known=(tuple(input_size), tuple(mean), tuple(std), None),
                         sidecar=sidecar, side=side)
    return _finish(text, spec, module, io, trained=bool(trained), source=source, notices=[notice],
                   dataset=meta.get("dataset"), meta=meta, device=device, aliases=None)


TIMM_EXTRA = "pip install 'cnn-workbench[timm]'"


#: create_model keywords that would load weights from elsewhere than the local cache.
_TIMM_REFUSED = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir")


def timm_model(name: str, kwargs: dict) -> tuple[nn.Module, bool, str, str | None, tuple[int, int, int],
                                                  tuple[float, ...], tuple[float, ...]]:
    """``timm:NAME``: (module, trained, source, notice, input_size, mean, std).

    The architecture is ``timm.create_model(name, pretrained=False, **kwargs)`` initialized from
    ``zoo.INIT_SEED`` (global RNG untouched), in eval mode. Its pretrained weights are used only
    when already in the local Hugging Face cache (``$HF_HUB_CACHE``, ``$HUGGINGFACE_HUB_CACHE``,
    ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``, read at call time, as huggingface_hub does),
    from ``model.safetensors`` or, failing that, ``pytorch_model.bin`` read with ``weights_only=True``;
    nothing is downloaded. Found weights are handed to ``timm.create_model(..., pretrained=True,
    pretrained_cfg_overlay={"state_dict": ...})``, which loads a given state_dict before looking
    anywhere else and adapts it as it adapts its downloads (a head of another ``num_classes`` stays
    random: the notice says so; another ``in_chans`` sums or repeats the first conv's weights)."""
    from workbench.models import zoo

    name = str(name)
    spec = name if name.startswith("timm:") else f"timm:{name}"
    name = name[len("timm:"):] if name.startswith("timm:") else name
    try:
        import timm
        import timm.data
    except ImportError:
        raise UserError(f"{spec}: timm models need the optional extra: {TIMM_EXTRA}") from None
    if kwargs is not None and (not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs)):
        raise UserError(f"{spec}: the model's arguments must be a mapping of names to values, got {kwargs!r}")
    kwargs = dict(kwargs or {})
    refused = [k for k in kwargs if k in _TIMM_REFUSED]
    if refused:
        raise UserError(f"{spec}: the argument {refused[0]!r} is not accepted: pretrained weights are read only from "
                        f"the local Hugging Face cache; remove it")
    if ":" in name or not timm.is_model(name):
        close = difflib.get_close_matches(name, _timm_names(timm, name), n=3, cutoff=0.6)
        hint = f"did you mean {_or_list(close)}? " if close else ""
        raise UserError(f"unknown timm model '{name}': {hint}(see timm.list_models() for the names)")
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError as exc:  # a tag the architecture does not have
        tags = [m for m in timm.list_models(name.split(".")[0], pretrained=True)]
        raise UserError(f"{spec}: {_line(exc)}; its pretrained tags are {', '.join(tags[:6]) or 'none'}") from None
    cache = hub_cache_dir()
    found = _cached_weights(cfg, cache)
    overlay: dict[str, Any] = {}
    weights_path, state = None, None
    if found is not None:
        weights_path, state = found, _read_cached(found, spec)
        # timm loads a state_dict given in the cfg before any hub or URL (and adapts it as it does
        # downloads: the head of another num_classes, in_chans, its filter_fn); "source" "" keeps
        # it from resolving the hub first
        overlay = {"state_dict": state, "source": ""}
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(zoo.INIT_SEED)
            if overlay:
                model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
            else:
                model = timm.create_model(name, pretrained=False, **kwargs)
    except UserError:
        raise
    except TypeError as exc:
        raise UserError(f"{spec}: timm rejects the arguments {_show_kwargs(kwargs)} ({_line(exc)}): "
                        f"give only arguments timm.create_model('{name}') accepts") from None
    except Exception as exc:
        what = f"with the arguments {_show_kwargs(kwargs)} " if kwargs else ""
        hint = "fix the arguments" if kwargs else "try another model"
        if overlay:
            what += f"and the cached weights {weights_path} "
            hint += " or delete the cached file"
        raise UserError(f"{spec}: timm cannot build the model {what}({type(exc).__name__}: {_line(exc)}); {hint}") from None
    finally:
        overlay.clear()
    for attr in ("pretrained_cfg", "default_cfg"):
        value = getattr(model, attr, None)
        if isinstance(value, dict):
            value.pop("state_dict", None)
    model.eval()
    source_cfg = getattr(cfg, "source", None)
    for attr in ("pretrained_cfg", "default_cfg"):
        value = getattr(model, attr, None)
        if isinstance(value, dict) and "state_dict" in value:
            value.pop("state_dict", None)
            value["source"] = source_cfg
    data = timm.data.resolve_model_data_config(model) if hasattr(timm.data, "resolve_model_data_config") \
        else timm.data.resolve_data_config({}, model=model)
    size = tuple(int(v) for v in data["input_size"])
    if len(size) != 3:
        raise UserError(f"{spec}: timm gives the input size {size}, not (C, H, W): use an image model")
    channels = int(kwargs.get("in_chans", size[0]))  # timm's data config keeps the pretrained cfg's channels
    input_size = (channels, size[1], size[2])
    mean = tuple(float(v) for v in data["mean"])
    std = tuple(float(v) for v in data["std"])
    if len(mean) != channels:  # in_chans differs from the weights': the channels' average for each channel
        mean, std = (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels
    if weights_path is None:
        if _hub_id(cfg)[0] is None:
            notice = f"{spec}: timm knows no pretrained weights for this model; the model is UNTRAINED (random init)."
        else:
            notice = (f"{spec}: no pretrained weights in {cache} (looked for {_looked_for(cfg)}); the model is "
                      f"UNTRAINED (random init). Put the file there to use trained weights.")
        return model, False, f"untrained (random init, seed {zoo.INIT_SEED})", notice, input_size, mean, std
    notice = None
    if not _weights_loaded(model, state):
        raise UserError(f"{spec}: timm did not load the cached weights {weights_path}: they do not fit the "
                        f"model; delete the file or update timm")
    head = _untrained_head(model, state, cfg)
    if head:
        notice = f"{spec}: the classifier ({head}) is UNTRAINED (random init): its size differs from the pretrained weights'."
    return model, True, str(weights_path), notice, input_size, mean, std  # type: ignore[return-value]


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache as huggingface_hub resolves it, from the environment now."""
    home = os.path.expanduser(os.path.expandvars(os.environ.get(
        "HF_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")),
                                "huggingface"))))
    legacy = os.environ.get("HUGGINGFACE_HUB_CACHE", os.path.join(home, "hub"))
    return Path(os.path.expanduser(os.path.expandvars(os.environ.get("HF_HUB_CACHE", legacy))))


def _hub_id(cfg: Any) -> tuple[str | None, str | None, list[str]]:
    """(repo id, revision, file names to try) of a timm pretrained cfg; no repo when it has none."""
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None, None, []
    repo, _, revision = str(hub_id).partition("@")
    name = getattr(cfg, "hf_hub_filename", None)
    files = [name] if name else ["model.safetensors", "pytorch_model.bin"]
    return repo, revision or None, files


def _cached_weights(cfg: Any, cache: Path) -> Path | None:
    """The pretrained weights' file in the local cache, if there; never a network call."""
    repo, revision, files = _hub_id(cfg)
    if repo is None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in files:
        if not (filename.endswith(".safetensors") or filename.endswith(".bin") or filename.endswith(".pth")):
            continue
        try:
            found = try_to_load_from_cache(repo, filename, cache_dir=str(cache), revision=revision)
        except Exception:
            continue
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _looked_for(cfg: Any) -> str:
    """Where in the hub cache the weights would be, as the huggingface_hub client lays it out."""
    repo, revision, files = _hub_id(cfg)
    folder = "models--" + str(repo).replace("/", "--")
    return (f"{folder}/snapshots/<commit>/{' or '.join(files)}{f' at revision {revision}' if revision else ''}, "
            f"as `hf download {repo}` puts it")


def _read_cached(found: Path, spec: str) -> dict[str, torch.Tensor]:
    """Weights found in the Hugging Face cache: safetensors, or a state_dict read ``weights_only``."""
    path = found
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors.torch import load_file

            state = load_file(str(path))
        except Exception as exc:
            raise UserError(f"{spec}: the cached weights {path} are not a readable safetensors file ({_line(exc)}): "
                            f"delete the file or download it again") from None
    else:
        import pickle

        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
            raise UserError(f"{spec}: the cached weights {path} cannot be read as plain tensors ({_line(exc)}): "
                            f"delete the file or download model.safetensors instead") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{spec}: the cached weights {path} are not a state_dict: delete the file or download it again")
    return state


def _weights_loaded(model: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``model`` holds ``state``'s tensors (all that fit by name and shape, at least one)."""
    own = model.state_dict()
    common = [k for k, v in state.items() if k in own and own[k].shape == v.shape and v.dtype.is_floating_point]
    return bool(common) and sum(torch.equal(own[k].to(state[k].dtype), state[k]) for k in common) >= max(1, len(common) // 2)


def _untrained_head(model: nn.Module, state: dict[str, torch.Tensor], cfg: Any) -> str | None:
    """The classifier's name when the pretrained weights' head did not fit (another num_classes)."""
    classifier = getattr(cfg, "classifier", None)
    if classifier is None:
        return None
    names = [classifier] if isinstance(classifier, str) else list(classifier)
    own = model.state_dict()
    for name in names:
        key = f"{name}.weight"
        if key in own and (key not in state or state[key].shape != own[key].shape):
            return name
    return None


def _timm_names(timm: Any, name: str) -> list[str]:
    names = list(timm.list_models())
    if "." in name:
        names += list(timm.list_models(pretrained=True))
    return names


def _show_kwargs(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "(none)"


def claims(spec: ModelSpec) -> bool:
    return spec.kind == "timm"


def open(spec: ModelSpec, *, trust: bool, imports: bool, device: torch.device) -> LoadedModel:  # noqa: A001
    return _load_timm(spec, trust, device)
