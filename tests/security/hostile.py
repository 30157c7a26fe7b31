"""Hostile inputs for the security suite, built by the tests.

``postscript(marker)`` is a PostScript program that creates the file ``marker`` when Ghostscript
runs it: Pillow renders EPS by running ``gs``, so an image reader that lets Pillow pick the
decoder from the content runs it, whatever the file is called.
"""

from __future__ import annotations

import shutil
from pathlib import Path

GS = shutil.which("gs")
NO_GS = ("Ghostscript (gs) is not installed: Pillow cannot run an EPS file here, so the probe has nothing "
         "to prove (.ci/run installs it)")


def postscript(marker: Path, binary_header: bool = False) -> bytes:
    """An EPS file whose PostScript creates ``marker`` (``binary_header``: the DOS EPS form)."""
    text = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
            b"(" + str(marker).encode() + b") (w) file closefile\n"
            b"0 0 moveto 8 8 lineto stroke showpage\n")
    if not binary_header:
        return text
    import struct

    return b"\xc5\xd0\xd3\xc6" + struct.pack("<6I", 30, len(text), 0, 0, 0, 0) + b"\xff\xff" + text


def copy_of(folder: Path, where: Path) -> Path:
    target = where / folder.name
    shutil.copytree(folder, target)
    return target


def victim(where: Path) -> Path:
    """A user's folder that a hostile run folder points at: a thesis, a photo, a sub-folder."""
    folder = where / "users-folder"
    (folder / "chapters").mkdir(parents=True)
    (folder / "thesis.tex").write_text("\\documentclass{book} years of work\n")
    (folder / "chapters" / "one.tex").write_text("chapter one\n")
    (folder / "mds.png").write_bytes(b"\x89PNG not really")
    (folder / "secret.txt").write_text("password=hunter2\n")
    return folder


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (links not followed) and each file's bytes: compare before and after."""
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = p.read_bytes() if p.is_file() and not p.is_symlink() else ("link:" + str(p.readlink())).encode() \
            if p.is_symlink() else None
    return out
