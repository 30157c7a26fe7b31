"""The text forms of a model's input options (``--input-size 3x64x64``, ``--mean 0.5,0.5,0.5``), parsed
to checked values. Beneath :mod:`workbench.config`, whose argparse types use them, and
:mod:`workbench.config.model`, whose spec checks them; no torch here.
"""

from __future__ import annotations

import math
import re
from typing import Any

from workbench.errors import UserError

#: Input limits: channels, height/width.
MAX_CHANNELS, MAX_SIDE = 64, 4096


def check_input_size(size: Any) -> tuple[int, int, int]:
    ok = (isinstance(size, (tuple, list)) and len(size) == 3
          and all(isinstance(v, int) and not isinstance(v, bool) for v in size))
    if not ok:
        raise UserError(f"--input-size must be CxHxW, e.g. 3x64x64, not {size!r}")
    c, h, w = size
    if not (1 <= c <= MAX_CHANNELS and 1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise UserError(f"--input-size {c}x{h}x{w} is out of range: C from 1 to {MAX_CHANNELS}, "
                        f"H and W from 1 to {MAX_SIDE}")
    return c, h, w


def parse_input_size(text: str) -> tuple[int, int, int]:
    """``3x64x64`` (or ``3,64,64``) as (C, H, W)."""
    parts = re.split(r"[x×,]", str(text).strip().lower())
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        raise UserError(f"--input-size must be CxHxW, e.g. 3x64x64, not '{text}'") from None
    return check_input_size(size)


def parse_floats(option: str, text: str) -> tuple[float, ...]:
    """``0.485,0.456,0.406`` as a tuple of finite floats."""
    try:
        values = tuple(float(p) for p in str(text).split(","))
    except ValueError:
        raise UserError(f"{option} takes comma-separated numbers, e.g. 0.5,0.5,0.5, not '{text}'") from None
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"{option} takes finite numbers, not '{text}'")
    return values
