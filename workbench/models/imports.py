"""Importing Python code a model needs, without letting the current directory shadow installed packages.

``python -m`` puts the current directory first on ``sys.path``, so a ``timm/`` folder in it would
replace the installed timm. Every import the model sources make goes through :func:`import_module`:
the current directory (and ``''``) are left out of the search for the import, and only the folders
the user names (``--path DIR``) are searched before the installed packages. ``sys.path`` is put
back afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from types import ModuleType
from typing import Iterator, Sequence


@contextlib.contextmanager
def search_path(paths: Sequence[str] = ()) -> Iterator[None]:
    """``sys.path`` without the current directory, ``paths`` first, for the duration of an import."""
    cwd = os.getcwd()
    given = [os.path.abspath(os.path.expanduser(p)) for p in paths]
    saved = list(sys.path)
    try:
        sys.path[:] = given + [p for p in saved if p not in ("", ".", cwd) and os.path.abspath(p) != cwd
                               and p not in given]
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
