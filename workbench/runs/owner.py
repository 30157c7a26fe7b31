"""Who owns a running run: its process (pid and start time on this host) or, from another host, its
heartbeat; how a run.json's status is read (``interrupted`` when its owner is gone); text from a
run folder made safe to print."""

from __future__ import annotations

import datetime as _dt
import os
import socket
from typing import Any

from workbench.errors import UserError

STATUSES = ("running", "done", "cancelled", "failed")
#: A running run whose owner cannot be asked (another host) is interrupted after this silence.
STALE_SECONDS = 120.0



def _host() -> str:
    return socket.gethostname()


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` (psutil: the kernel's, in seconds since the epoch), so a reused pid
    is not taken for the owner; None where it cannot be read."""
    import psutil

    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except (psutil.Error, OSError, OverflowError, ValueError):
        return None


#: The largest process id any kernel hands out (Linux's pid_max is at most 2**22).
PID_MAX = 2**22


def _pid_alive(pid: Any, start: Any) -> bool:
    """Whether process ``pid`` runs and started at ``start``; a pid that is not a process id
    (0 or -1 would ask about a whole process group, 2**70 does not fit) is a dead owner."""
    import psutil

    if isinstance(pid, bool) or not isinstance(pid, int) or not 1 <= pid <= PID_MAX:
        return False
    try:
        if not psutil.pid_exists(pid):
            return False
    except (psutil.Error, OSError, OverflowError, ValueError):
        return False
    if start is not None:
        now = _process_start(pid)
        if now is not None and now != start:
            return False
    return True


def owner_fields() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "pid_start": _process_start(pid), "host": _host(), "heartbeat": _now()}


def status_of(info: dict[str, Any]) -> str:
    """A run.json's status, read as ``interrupted`` when it says running but its owner is gone.
    A status that is not one of :data:`STATUSES` is a UserError (the folder is damaged)."""
    status = info.get("status") if isinstance(info, dict) else None
    if not isinstance(status, str) or status not in STATUSES:
        raise UserError(f"run.json has no valid status ({clean_text(repr(status), 40)}): the folder is damaged")
    if status == "running" and not owner_alive(info):
        return "interrupted"
    return status


def owner_alive(info: dict[str, Any]) -> bool:
    """Whether the process that wrote a ``running`` run.json can still be running it: its pid on
    this host, else a heartbeat younger than :data:`STALE_SECONDS` (with or without a time zone)."""
    pid = info.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and info.get("host") == _host():
        return _pid_alive(pid, info.get("pid_start"))
    beat = info.get("heartbeat")
    if not isinstance(beat, str) or len(beat) > 64:
        return False
    try:
        when = _dt.datetime.fromisoformat(beat)
        now = _dt.datetime.now(when.tzinfo) if when.tzinfo is not None else _dt.datetime.now()
        age = (now - when).total_seconds()
    except (ValueError, TypeError, OverflowError):
        return False
    return -STALE_SECONDS < age < STALE_SECONDS


def clean_text(text: Any, most: int = 200) -> str:
    """``text`` safe to print on a terminal: control characters (ANSI and OSC escapes, newlines,
    carriage returns, bells) become spaces or are dropped, and it is cut to ``most`` characters."""
    import re
    import unicodedata

    text = re.sub(r"(\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"            # CSI: colours, cursor moves, clear screen
                  r"|(\x1b\]|\x9d)[^\x07\x1b\x9c]*(\x07|\x1b\\|\x9c)?"  # OSC: window title, hyperlinks
                  r"|\x1b[@-Z\\-_]", "", str(text)[: most * 4])  # other escapes
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\t\n\r\v\f":
            out.append(" ")
        elif cat in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            continue
        else:
            out.append(ch)
    cleaned = " ".join("".join(out).split())
    return cleaned if len(cleaned) <= most else cleaned[: most - 1] + "…"


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def live_owner(info: dict[str, Any]) -> str | None:
    """Who is still writing a run whose run.json is ``info`` (``process N on HOST``), or None."""
    if not isinstance(info, dict) or info.get("status") != "running" or not owner_alive(info):
        return None
    pid, host = info.get("pid"), info.get("host")
    return f"process {pid if isinstance(pid, int) else '?'} on {host if isinstance(host, str) else 'another host'}"
