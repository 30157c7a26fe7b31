"""The callable source: ``package.module:callable`` — a class or a function that returns an
``nn.Module`` — called with ``model_kwargs`` under the zoo's init seed; ``weights`` then loads
into what it built.

Consent (README, Security). Typing the spec on your own command line, or passing it to the Python
API, is consent to import that module and call that callable (``imports=True``); a spec read from a
file — a run folder, a sweep or atlas folder, the window's settings — is not, and needs ``trust``
each time (:class:`~workbench.models.sources.loaded.NeedsTrust`). Even with consent, before
anything is called:

- a module of the standard library is refused before it is imported (``os:system``,
  ``subprocess:run``, ``builtins:exec`` build no network);
- the object must be an ``nn.Module`` class, an ``nn.Module`` object, or a Python function (or a
  class's classmethod/staticmethod) defined in the package named before the colon: never a
  built-in, a ``functools.partial`` or another callable object, and never a function the package
  merely re-exports from elsewhere;
- what it returns must be an ``nn.Module``.

The module is imported with the folders of ``--path`` first, then the installed packages, then
the current directory (:mod:`workbench.models.imports`): the current directory never shadows an
installed package."""

from __future__ import annotations

import difflib
import inspect
import json
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
    factory = _import_callable(text, spec.path)
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


def _import_callable(text: str, path: str | None = None) -> Any:
    """``package.module:attr``, imported with ``path`` first and the current directory last
    (:func:`workbench.models.imports.search_path`), and checked before it is called (:func:`_check_factory`)."""
    import importlib

    from workbench.models.imports import search_path

    module_name, _, attr_path = text.partition(":")
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names:
        raise UserError(f"{text} names the standard library's {top}, which builds no nn.Module: refused "
                        f"(a model is an nn.Module class or a function that returns one)")
    with search_path([path] if path else (), cwd=True):
        try:
            mod = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or module_name
            if module_name == missing or module_name.startswith(missing + "."):
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
    _check_factory(text, obj, top)
    return obj


def _check_factory(text: str, obj: Any, package: str) -> None:
    """Refuse, before calling it, an object that cannot be a model's class or factory defined in
    ``package`` (see the module docstring). Objects that are not callable at all are left to
    :func:`_call_factory`, which says what they are."""
    if isinstance(obj, nn.Module) or not callable(obj):
        return
    if inspect.isclass(obj):
        if not issubclass(obj, nn.Module):
            raise UserError(f"{text} is the class {obj.__name__}, not an nn.Module class: refused "
                            f"(a model is an nn.Module class or a function that returns one)")
        return
    function = getattr(obj, "__func__", obj)  # a classmethod or method: its function
    if not inspect.isfunction(function):
        what = "a built-in function" if inspect.isbuiltin(obj) or inspect.isbuiltin(function) else \
            f"a {type(obj).__name__} object"
        raise UserError(f"{text} is {what}, not a Python function or nn.Module class: refused "
                        f"(a model is an nn.Module class or a function that returns one)")
    defined = str(getattr(function, "__module__", "") or "")
    if defined.split(".")[0] != package:
        raise UserError(f"{text} is defined in {defined or 'no module'}, not in {package}: refused (name a "
                        f"function or class where it is defined, in the package you mean)")


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
