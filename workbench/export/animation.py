"""The optimisation as an animated GIF (PIL): one frame per kept iteration, restarts side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from workbench.errors import UserError
from workbench.export.figures import check_target
from workbench.export.grid import labelled_grid
from workbench.runs import atomic_path


def animation_frames(frames: Sequence[np.ndarray], *, tile: int = 128, iterations: Sequence[int] | None = None,
                     title: str = "") -> list[np.ndarray]:
    """Each frame (K, H, W, C) in [0, 1] as one labelled row of K tiles (uint8 RGB)."""
    out = []
    for i, frame in enumerate(frames):
        caption = f"iteration {iterations[i]}" if iterations is not None else f"frame {i + 1}"
        labels = [f"restart {k + 1}" for k in range(len(frame))]
        out.append(labelled_grid([list(frame)], col_labels=labels, title=f"{title}  {caption}".strip(), tile=tile,
                                 pad=max(4, tile // 20), font_size=max(12, tile // 9)))
    return out


def save_gif(frames: Sequence[np.ndarray], path: str | Path, *, fps: float = 10.0, tile: int = 128,
             iterations: Sequence[int] | None = None, title: str = "", overwrite: bool = False) -> Path:
    """Write ``frames`` as a looping GIF at ``fps`` frames per second, atomically."""
    if len(frames) == 0:
        raise UserError("no frames were kept: set 'keep a frame every N iterations' above 0 and run again")
    if not fps > 0:
        raise UserError(f"frames per second must be positive (got {fps})")
    path, fmt = check_target(path, overwrite)
    if fmt != "gif":
        raise UserError(f"an animation is saved as .gif, not .{fmt}")
    pictures = [Image.fromarray(a) for a in animation_frames(frames, tile=tile, iterations=iterations, title=title)]
    with atomic_path(path) as tmp:
        pictures[0].save(tmp, format="GIF", save_all=True, append_images=pictures[1:],
                         duration=int(round(1000 / fps)), loop=0, optimize=False)
    return path
