"""Helpers the tests share (import them: ``from tests._helpers import ...``); fixtures live in the
conftest files."""

from __future__ import annotations

from pathlib import Path


def marked_processes(mark: str) -> list[int]:
    """The processes whose environment carries ``mark`` (read from /proc): a command started with
    the mark in its environment, and everything it started in turn."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids
