"""Checks for the numbers a user gives, and for the memory a job would ask for.

Every config's ``validate()`` calls these, so an option out of range, a non-finite number or a
size that cannot fit in memory is one :class:`~workbench.errors.UserError` line, raised before
anything is allocated or written. ``name`` is how the user wrote the option (``--alpha``).
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

from workbench.errors import UserError

#: Seeds are 32-bit: jobs derive per-restart seeds as ``seed * 100003 + k``, which must stay a 64-bit integer.
SEED_MAX = 2**32 - 1
#: The share of the available memory one job may plan to use.
MEMORY_SHARE = 0.8
#: The most a JSON file of a run folder (run.json, metrics.json, results.json, ...) may hold.
MAX_JSON_BYTES = 128 * 2**20
#: The most numbers one list option may name (``--seeds 0-99999``): a range is counted, not expanded.
MAX_LIST = 100_000


def integer(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; a bool, a float or a string is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    _bounds(name, value, low, high)
    return value


def real(name: str, value: Any, low: float | None = None, high: float | None = None, *,
         positive: bool = False) -> float:
    """``value`` as a finite float in [low, high] (above 0 when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value}")
    if positive and not value > 0:
        raise UserError(f"{name} must be positive, got {value:g}")
    _bounds(name, value, low, high)
    return value


def seed(name: str, value: Any) -> int:
    return integer(name, value, 0, SEED_MAX)


def choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise UserError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"{name} must be a non-empty text, got {value!r}")
    return value


def _bounds(name: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise UserError(f"{name} must be at least {_show(low)}, got {_show(value)}")
    if high is not None and value > high:
        raise UserError(f"{name} must be at most {_show(high)}, got {_show(value)}")


def _show(value: float) -> str:
    if isinstance(value, int):
        return str(value) if abs(value) < 10**12 else f"{value:.3g}"
    return f"{value:g}"


def read_regular(path, limit: int, what: str) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes, checked before reading: a
    FIFO, a device (``/dev/zero``), a folder or a file over the limit is a one-line UserError.
    FileNotFoundError goes on (the caller says what is missing)."""
    import stat

    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} is not a regular file ({_file_kind(st.st_mode)}): give a file")
    if st.st_size > limit:
        raise UserError(f"{what} holds {size(st.st_size)}, over the limit of {size(limit)} for this file: "
                        f"it is not one the workbench wrote")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # swapped for a FIFO since the check: no wait
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UserError(f"{what} grew past the limit of {size(limit)} while it was read")
    return data


def _file_kind(mode: int) -> str:
    import stat

    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


def count_range(flag: str, lo: int, hi: int, most: int = MAX_LIST) -> int:
    """How many numbers ``lo-hi`` names, refused over ``most`` before anything is expanded."""
    n = hi - lo + 1
    if n > most:
        raise UserError(f"{flag}{'' if flag.endswith(':') else ' '}{lo}-{hi} names {n:,} numbers; the limit is {most:,} per list: narrow the range")
    return n


def available_memory(device: Any = None) -> tuple[int, str]:
    """Bytes a job may still allocate on ``device`` (free GPU memory, or the system's available RAM)."""
    kind = getattr(device, "type", str(device or "cpu")).split(":")[0]
    if kind == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free), "free memory on the GPU"
    import psutil

    try:
        return int(psutil.virtual_memory().available), "available memory"
    except (psutil.Error, OSError, RuntimeError):
        return 2**62, "available memory"


def gib(nbytes: float) -> str:
    value = nbytes / 2**30
    if value >= 10_000:
        return f"{value:.3g}"
    return f"{value:.1f}" if value >= 0.1 else f"{value:.2g}"


def size(nbytes: float) -> str:
    """``12 MiB``, ``2.0 GiB``: a file's size in a message."""
    return f"{gib(nbytes)} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.3g} MiB"


def require_memory(nbytes: float, what: str, hint: str, device: Any = None) -> None:
    """Refuse ``what`` if its estimated ``nbytes`` exceed the share of the memory available.

    The message gives the estimate and the limit: "... would need ~X GiB (limit Y GiB: ...); hint".
    """
    available, source = available_memory(device)
    limit = MEMORY_SHARE * available
    if nbytes > limit:
        raise UserError(f"{what} would need ~{gib(nbytes)} GiB (limit {gib(limit)} GiB: "
                        f"{int(MEMORY_SHARE * 100)} % of the {source}); {hint}")


def check_device_name(name: Any) -> str:
    """The spelling of a device: auto, cpu, cuda, cuda:N or mps (whether it exists is checked on use)."""
    import re

    if type(name).__name__ == "device" and type(name).__module__ == "torch":
        return str(name)
    if name is None or name == "auto":
        return "auto"
    if not isinstance(name, str) or not re.fullmatch(r"(cpu|mps)(:0)?|cuda(:\d{1,3})?", name):
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return name
