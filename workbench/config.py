"""Configs are dataclasses that round-trip through JSON.

``to_dict(config)`` gives plain JSON types; ``from_dict(cls, d)`` rebuilds the dataclass,
turning lists back into tuples where the field is annotated as a tuple, and rejecting
unknown keys with a one-line :class:`~workbench.errors.UserError`.
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
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UserError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        hint = hints.get(key)
        if isinstance(value, list) and _is_tuple(hint):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[key] = value
    return cls(**kwargs)


def _is_tuple(hint: Any) -> bool:
    if hint is None:
        return False
    origin = typing.get_origin(hint)
    if origin is tuple:
        return True
    if origin is typing.Union or origin is types.UnionType:
        return any(_is_tuple(a) for a in typing.get_args(hint))
    return False
