"""The callable source: ``package.module:callable`` — a class or a function that returns an
``nn.Module`` — called with ``model_kwargs`` under the zoo's init seed; ``weights`` then loads
into what it built."""

from __future__ import annotations

import difflib
import inspect
import json
import os
import sys
from typing import Any

import torch
import torch.nn as nn

from workbench.config.model import ModelSpec
from workbench.errors import UserError, one_line
from workbench.models import zoo
from workbench.models.sources.describe import _describe_input, _finish, _read_sidecar
from workbench.models.sources.loaded import LoadedModel, NeedsTrust, _first_line, _or_list
from workbench.models.sources.weights import _load_state, _read_weights


def _load_callable(spec: ModelSpec, trust: bool, imports: bool, device: torch.device) -> LoadedModel:
    text = spec.model
    if not imports and not trust:
        raise NeedsTrust(text, "callable")
    if spec.arch is not None:
        raise UserError(f"--arch applies to model files; {text} builds its own module: drop --arch "
                        f"(pass --weights FILE to load weights into it)")
    factory = _import_callable(text)
    module = _call_factory(text, factory, spec.kwargs())
    sidecar = side = None
    meta: dict[str, Any] = {}
    if spec.weights is not None:
        path, state, kind = _read_weights(spec.weights, trust)
        _load_state(module, state, path, text, hint="check --weights and --model-kwargs")
        sidecar, side = _read_sidecar(path), path.with_suffix(".json").name
        meta = dict(sidecar or {})
        source = f"{path} ({kind} into callable {text})"
    else:
        source = f"callable {text} (its own initialisation)"
    io = _describe_input(text, spec, module, known=None, sidecar=sidecar, side=side,
                         guess_hint=None if sidecar else f"no sidecar {side} beside the weights" if side
                         else "nothing describes its input")
    # Without --weights the module is as the callable built it: it may have loaded trained weights
    # itself, and nothing here can tell; run.json says so in the source.
    return _finish(text, spec, module, io, trained=True, source=source, notices=[], dataset=meta.get("dataset"),
                   meta=meta, device=device, aliases=None)


def _import_callable(text: str) -> Any:
    """``package.module:attr`` imported with the current directory on ``sys.path`` (for the import only)."""
    import importlib

    module_name, _, attr_path = text.partition(":")
    saved = list(sys.path)
    try:
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)
        importlib.invalidate_caches()
        try:
            mod = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or module_name
            if module_name == missing or module_name.startswith(missing + "."):
                top = module_name.split(".")[0]
                raise UserError(f"cannot import {module_name} for {text} ({_first_line(exc)}): "
                                f"run from the folder that holds {top}, or install it") from None
            raise UserError(f"cannot import {module_name} for {text} ({_first_line(exc)}): "
                            f"install {missing.split('.')[0]}, which it imports") from None
        except ImportError as exc:
            raise UserError(f"cannot import {module_name} for {text} ({_first_line(exc)}): "
                            f"fix the module or its installation") from None
        except (Exception, SystemExit) as exc:
            raise UserError(f"importing {module_name} for {text} raised {type(exc).__name__}: {_first_line(exc)}; "
                            f"fix the module") from None
    finally:
        sys.path[:] = saved
    obj: Any = mod
    where = module_name
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3, cutoff=0.6)
            hint = f"did you mean {_or_list(close)}? " if close else ""
            raise UserError(f"{where} has no attribute '{part}' (for {text}): {hint}"
                            f"check the name after the colon") from None
        except Exception as exc:
            raise UserError(f"reading {part} of {where} for {text} raised {one_line(exc)}") from None
        where = f"{where}.{part}"
    return obj


def _call_factory(text: str, factory: Any, kwargs: dict[str, Any]) -> nn.Module:
    """The module a callable builds with ``kwargs``, under the zoo's init seed (global RNG left alone)."""
    shown = json.dumps(kwargs)[:80]
    if isinstance(factory, nn.Module):  # a module object defined at module level: used as it is
        if kwargs:
            raise UserError(f"{text} is an nn.Module object, not a class or factory: it takes no --model-kwargs ({shown})")
        return factory
    if not callable(factory):
        raise UserError(f"{text} is a {type(factory).__name__}, not a class or function: it must be an nn.Module "
                        f"class or a function that returns one")
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            raise UserError(f"{text} does not take --model-kwargs {shown} ({exc}); its parameters are "
                            f"({_parameters(signature)})") from None
    try:
        with zoo.seeded_init():
            module = factory(**kwargs)
    except TypeError as exc:
        raise UserError(f"calling {text} with --model-kwargs {shown} raised TypeError: {_first_line(exc)}; "
                        f"check --model-kwargs") from None
    except (Exception, SystemExit) as exc:
        raise UserError(f"calling {text} raised {type(exc).__name__}: {_first_line(exc)}") from None
    if not isinstance(module, nn.Module):
        raise UserError(f"{text} returned a {type(module).__name__}, not an nn.Module: it must be an nn.Module class "
                        f"or a function that returns one")
    return module


def _parameters(signature: inspect.Signature) -> str:
    """``num_classes=10, width=8, **kwargs``: names and defaults, without annotations."""
    parts = []
    for p in signature.parameters.values():
        prefix = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
        default = "" if p.default is p.empty else f"={p.default!r}"[:40]
        parts.append(f"{prefix}{p.name}{default}")
    return ", ".join(parts)


def claims(spec: ModelSpec) -> bool:
    return spec.kind == "callable"


def open(spec: ModelSpec, *, trust: bool, imports: bool, device: torch.device) -> LoadedModel:  # noqa: A001
    return _load_callable(spec, trust, imports, device)
