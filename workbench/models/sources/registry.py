"""The registry's table: the sources by name, in the order they are asked, and the leaf modules
they declare. It imports no source at import time (each is imported by name when first asked),
so the tracer (:mod:`workbench.models.graph`) can ask for :func:`leaf_modules` without depending
on the sources' code."""

from __future__ import annotations

import importlib
from types import ModuleType

#: The sources, in the order they are asked (files last: it claims every remaining name).
SOURCES = ("callable", "timm", "memory", "zoo", "representations", "files")
PACKAGE = "workbench.models.sources"


def source(name: str) -> ModuleType:
    """The source module ``name`` (one of :data:`SOURCES`)."""
    if name not in SOURCES:
        raise KeyError(name)
    return importlib.import_module(f"{PACKAGE}.{name}")


def leaf_modules() -> tuple[type, ...]:
    """Every module type a source declares a leaf of the trace (its own layers, kept whole)."""
    found: list[type] = []
    for name in SOURCES:
        leaves = getattr(source(name), "leaves", None)
        if leaves is not None:
            found += [t for t in leaves() if t not in found]
    return tuple(found)
