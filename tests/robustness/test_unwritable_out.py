"""``--out`` on a read-only or a full file system: one line, exit code 2, nothing left behind.

Tests run as root, where permissions stop nothing, so the file system is simulated: below the
working folder, creating a folder (read-only) or writing a file (both) fails with the errno a
real one gives. Everything the commands read lives outside it.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

import pytest

from .test_bad_inputs import (CARICATURE, DEFORM, DEMO, INVERT, MAXIMIZE, STUDY, TRAIN, TRAVERSE, ZOO,
                             _fill, _snapshot, assert_refused, run_cli)

COMMANDS = {"invert": INVERT, "maximize": MAXIMIZE, "caricature": CARICATURE, "demo": DEMO, "deform": DEFORM,
            "study": STUDY, "train": TRAIN, "traverse": TRAVERSE, "zoo": ZOO}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class FaultyDisk:
    """Makes writes below ``root`` fail: ``readonly`` (EROFS, even mkdir) or full (ENOSPC, files only)."""

    def __init__(self, root: Path, code: int) -> None:
        self.root, self.code = str(root.resolve()), code
        self.real_open, self.real_os_open = builtins.open, os.open
        self.real_mkdir, self.real_replace, self.real_rename = os.mkdir, os.replace, os.rename

    def _inside(self, path) -> bool:
        try:
            return os.path.abspath(os.fspath(path)).startswith(self.root)
        except TypeError:  # a file descriptor
            return False

    def _fail(self, path):
        raise OSError(self.code, os.strerror(self.code), os.fspath(path))

    def mkdir(self, path, *args, **kwargs):
        if self.code == errno.EROFS and self._inside(path):
            self._fail(path)
        return self.real_mkdir(path, *args, **kwargs)

    def os_open(self, path, flags, *args, **kwargs):
        if flags & WRITE_FLAGS and self._inside(path):
            self._fail(path)
        return self.real_os_open(path, flags, *args, **kwargs)

    def open(self, file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and self._inside(file):
            self._fail(file)
        return self.real_open(file, mode, *args, **kwargs)

    def replace(self, src, dst, *args, **kwargs):
        if self._inside(dst):
            self._fail(dst)
        return self.real_replace(src, dst, *args, **kwargs)

    def rename(self, src, dst, *args, **kwargs):
        if self._inside(dst):
            self._fail(dst)
        return self.real_rename(src, dst, *args, **kwargs)

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(os, "mkdir", self.mkdir)
        monkeypatch.setattr(os, "open", self.os_open)
        monkeypatch.setattr(os, "replace", self.replace)
        monkeypatch.setattr(os, "rename", self.rename)
        monkeypatch.setattr(builtins, "open", self.open)
        monkeypatch.setattr(io, "open", self.open)


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC], ids=["read-only", "full"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_out_on_a_disk_that_refuses_writes(command, code, assets, tmp_path, monkeypatch, capsys):
    import tempfile

    disk = tmp_path / "disk"
    disk.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    argv = _fill(COMMANDS[command], assets, disk / "out")
    before = _snapshot(assets, disk, tmp)
    FaultyDisk(disk, code).install(monkeypatch)
    rc, err, shown = run_cli(argv, capsys)
    monkeypatch.undo()
    assert_refused(rc, err, shown)
    assert ("read-only" in err.lower() or "space" in err.lower() or "cannot write" in err.lower()), err
    assert _snapshot(assets, disk, tmp) == before, "the failed command left files behind"
