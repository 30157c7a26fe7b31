"""Importing Python code a model needs, without letting the current directory shadow installed packages.

``python -m`` puts the current directory first on ``sys.path``, so a ``timm/`` folder in it would
replace the installed timm (and the loader used to put it first itself). Every import the model
sources make goes through :func:`search_path`: the folders the user names (``--path DIR``) come
first, then the installed packages, and the current directory — where a callable the user typed
may live, as with ``python -m`` — only last (``cwd=False``: not at all, for the zoo's packages), so
a folder there never replaces an installed package. ``sys.path`` is put back afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from types import ModuleType
from typing import Iterator, Sequence


@contextlib.contextmanager
def search_path(paths: Sequence[str] = (), cwd: bool = False) -> Iterator[None]:
    """``sys.path`` for the duration of an import: ``paths`` first, then the installed packages,
    then the current directory if ``cwd`` (never before them)."""
    here = os.getcwd()
    given = [os.path.abspath(os.path.expanduser(p)) for p in paths]
    saved = list(sys.path)
    try:
        rest = [p for p in saved if p not in ("", ".") and os.path.abspath(p) != here and p not in given]
        sys.path[:] = given + rest + ([here] if cwd and here not in given else [])
        importlib.invalidate_caches()
        yield
    finally:
        sys.path[:] = saved


def import_module(name: str, paths: Sequence[str] = ()) -> ModuleType:
    """``importlib.import_module(name)`` with :func:`search_path` (errors propagate as they are)."""
    with search_path(paths):
        return importlib.import_module(name)


def attribute(obj: object, dotted: str) -> object:
    """``obj.a.b`` for ``dotted`` ``"a.b"`` (AttributeError propagates)."""
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def installed(name: str) -> bool:
    """Whether top-level package ``name`` is installed (found outside the current directory), importing nothing."""
    import importlib.machinery

    cwd = os.getcwd()
    search = [p for p in sys.path if p not in ("", ".", cwd) and os.path.abspath(p) != cwd]
    return name in sys.modules or importlib.machinery.PathFinder.find_spec(name, search) is not None
