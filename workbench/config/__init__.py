"""One typed config per analysis, the single source of its options (no torch here).

Each analysis has one dataclass (:mod:`workbench.config.preimage`, ...; the model to open is a
:class:`~workbench.config.model.ModelSpec`). Its fields, defaults and help texts are the CLI's
options (:func:`add_options`, :func:`from_args`), the window's fields and their defaults, the
Python API's keyword arguments and what run.json records; ``tests/test_config_drift.py`` fails
if any of them drifts from the dataclass.

``to_dict(config)`` gives plain JSON types; ``from_dict(cls, d)`` rebuilds the dataclass,
turning lists back into tuples where the field is annotated as a tuple, and rejecting
unknown keys and values of the wrong type (a run.json from elsewhere is input like any
other) with a one-line :class:`~workbench.errors.UserError`. :func:`clean` is its forgiving
twin for saved window settings: it keeps what fits and names what it drops.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Callable, TypeVar

from workbench.errors import UserError

T = TypeVar("T")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    if not isinstance(data, dict):
        raise UserError(f"a {cls.__name__} must be a JSON object, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UserError(f"unknown {cls.__name__} option(s): {', '.join(map(str, unknown))}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        hint = hints.get(key)
        if isinstance(value, list) and _is_tuple(hint):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        if hint is not None and not _fits(value, hint):
            raise UserError(f"{cls.__name__} option {key} = {_short(value)}: expected {_name(hint)}")
        kwargs[key] = value
    return cls(**kwargs)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (int, float, str, bool, None, tuples)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_fits(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(args) == len(value) and all(_fits(v, a) for v, a in zip(value, args))
    if origin in (list, dict):
        return isinstance(value, origin)
    return True


def _name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_tuple(hint: Any) -> bool:
    if hint is None:
        return False
    origin = typing.get_origin(hint)
    if origin is tuple:
        return True
    if origin is typing.Union or origin is types.UnionType:
        return any(_is_tuple(a) for a in typing.get_args(hint))
    return False


# --- options: a field's CLI flag and help ---------------------------------------------------

def option(default: Any, help: str, *, flag: str | tuple[str, ...] | None = None, metavar: str | None = None,
           methods: tuple[str, ...] | None = None, cli: bool = True, required: bool = False,
           choices: tuple[str, ...] | None = None, parse: str | None = None) -> Any:
    """A dataclass field with what the CLI and the window need to offer it.

    ``flag`` defaults to ``--field-name``; ``methods`` limits it to some subcommands; ``cli=False``
    keeps an internal field off the command line; ``required`` makes the CLI insist although the
    field has a default (the API and the window use the default); ``parse`` names a text form
    for the command line: ``"input_size"`` (``3x64x64``) or ``"floats"`` (``0.5,0.5,0.5``)
    or ``"names"`` (``conv1,conv2``) or ``"ints"`` (``0-7,9``)."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "methods": methods, "cli": cli,
            "required": required, "choices": choices, "parse": parse}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed in configs")
    return dataclasses.field(default=default, metadata={"workbench": meta})


def options(cls: type) -> list[tuple[dataclasses.Field, dict[str, Any]]]:
    """The fields of ``cls`` with their option metadata (a plain field: no help, not on the CLI)."""
    out = []
    for f in dataclasses.fields(cls):
        meta = dict(f.metadata.get("workbench") or {"help": "", "flag": None, "metavar": None, "methods": None,
                                                   "cli": False, "required": False, "choices": None, "parse": None})
        flags = meta["flag"] or "--" + f.name.replace("_", "-")
        meta["flags"] = (flags,) if isinstance(flags, str) else tuple(flags)
        out.append((f, meta))
    return out


def add_options(parser, cls: type, *, method: str | None = None, skip: tuple[str, ...] = (),
                given_only: bool = False) -> None:
    """One argparse option per CLI field of ``cls`` (for ``method`` when given), its default the
    dataclass's: ``--iters`` for ``iters``, two numbers for ``tuple[int, int]``, one or more for
    ``tuple[int, ...]``, a switch for ``bool``. With ``given_only`` an option left out is absent
    from the parsed arguments (a resumed run keeps its saved value); the help still shows the default."""
    import argparse

    hints = typing.get_type_hints(cls)
    for f, meta in options(cls):
        if not meta["cli"] or f.name in skip or (method is not None and meta["methods"] and method not in meta["methods"]):
            continue
        hint = _strip_none(hints[f.name])
        default = f.default
        text = meta["help"]
        if default is not None and not isinstance(default, bool) and not meta["required"] and "default" not in text:
            text += f" (default {default})"
        kwargs: dict[str, Any] = {"dest": f.name, "help": text}
        if meta["required"]:
            kwargs["required"] = True
        else:
            kwargs["default"] = argparse.SUPPRESS if given_only else default
        if hint is bool:
            kwargs["action"] = "store_true"
        elif meta["parse"]:
            kwargs["type"] = _parser(meta["parse"], meta["flags"][-1])
            kwargs["metavar"] = meta["metavar"]
        else:
            origin, args = typing.get_origin(hint), typing.get_args(hint)
            if origin is tuple:
                kwargs["type"] = args[0]
                kwargs["nargs"] = "+" if len(args) == 2 and args[1] is Ellipsis else len(args)
            elif hint in (int, float, str):
                kwargs["type"] = hint
            kwargs["metavar"] = meta["metavar"] or meta["flags"][-1].lstrip("-").upper().replace("-", "_")
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
        parser.add_argument(*meta["flags"], **kwargs)


def _parser(kind: str, flag: str) -> Callable[[str], Any]:
    """The text form's parser for argparse: a bad value is argparse's own one-line error (exit 2)."""
    import argparse

    from workbench.config.parse import parse_floats, parse_input_size

    parse = {"input_size": parse_input_size,
             "names": lambda text: tuple(n for n in text.replace(",", " ").split() if n),
             "ints": lambda text: parse_ints(flag, text)}.get(kind, lambda text: parse_floats(flag, text))

    def checked(text: str) -> Any:
        try:
            return parse(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return checked


def parse_ints(flag: str, text: str, most: int | None = None) -> tuple[int, ...]:
    """``0-7,9`` as (0, 1, ..., 7, 9): whole numbers and inclusive ranges, comma-separated. The one
    parser of integer lists (``--seeds``, ``--channels``, ``digits:0-9``); the numbers are counted
    before any range is expanded, and more than ``most`` (:data:`workbench.limits.MAX_LIST`) are refused."""
    from workbench.limits import MAX_LIST, count_range

    most = MAX_LIST if most is None else most
    bounds: list[tuple[int, int]] = []
    total = 0
    for part in (p.strip() for p in str(text).replace(" ", ",").split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if not (lo.isdecimal() and (not sep or hi.isdecimal())):
            raise UserError(f"{flag} takes whole numbers and ranges such as 0-7,9, not '{str(text)[:80]}'")
        if max(len(lo), len(hi)) > 30:
            raise UserError(f"{flag}: {part[:24]}... is far too large a number")
        if sep and int(hi) < int(lo):
            raise UserError(f"{flag}: the range {part} ends before it starts: write it low-high, e.g. 0-7")
        a, b = int(lo), int(hi) if sep else int(lo)
        total += count_range(flag, a, b, most)
        if total > most:
            raise UserError(f"{flag} names more than {most:,} numbers in all; the limit is {most:,} per list: "
                            f"narrow it")
        bounds.append((a, b))
    if not bounds:
        raise UserError(f"{flag} needs at least one number, e.g. 0-7")
    return tuple(k for a, b in bounds for k in range(a, b + 1))


def from_args(cls: type[T], args: Any, **given: Any) -> T:
    """``cls`` from parsed arguments: the fields :func:`add_options` added, then ``given``."""
    values = {}
    for f in dataclasses.fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            values[f.name] = tuple(value) if isinstance(value, list) else value
    values.update(given)
    return cls(**values)


def defaults(cls: type) -> dict[str, Any]:
    """The defaults of ``cls`` as plain JSON types."""
    return to_dict(cls())


#: What a window's integer field holds (a QSpinBox is 32-bit).
INT_LIMIT = 2**31 - 1


def clean(cls: type, data: Any) -> tuple[dict[str, Any], list[str]]:
    """The fields of ``data`` (saved settings, a run.json's config) that fit ``cls``, and the names
    of those it drops: unknown, wrong type, not in its choices, non-finite or too large. Never raises."""
    if not isinstance(data, dict):
        return {}, ["the configuration"]
    fields = {f.name: meta for f, meta in options(cls)}
    hints = typing.get_type_hints(cls)
    kept, dropped = {}, []
    for key, value in data.items():
        if key not in fields:
            continue
        value = tuple(value) if isinstance(value, list) else value
        hint = hints[key]
        if (_fits(value, hint) and _small(value)
                and (not fields[key]["choices"] or value is None or value in fields[key]["choices"])):
            kept[key] = float(value) if _strip_none(hint) is float and isinstance(value, int) else value
        else:
            dropped.append(key)
    return kept, dropped


def _small(value: Any) -> bool:
    if isinstance(value, tuple):
        return len(value) <= 4096 and all(_small(v) for v in value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return abs(value) <= INT_LIMIT
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) < 1e12
    return True


def _strip_none(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def field_names(cls: type, keep: Callable[[dict[str, Any]], bool] = lambda meta: True) -> list[str]:
    return [f.name for f, meta in options(cls) if keep(meta)]
