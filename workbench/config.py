"""Configs are dataclasses that round-trip through JSON.

``to_dict(config)`` gives plain JSON types; ``from_dict(cls, d)`` rebuilds the dataclass,
turning lists back into tuples where the field is annotated as a tuple, and rejecting
unknown keys and values of the wrong type (a run.json from elsewhere is input like any
other) with a one-line :class:`~workbench.errors.UserError`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

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
