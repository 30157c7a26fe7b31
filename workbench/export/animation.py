"""The optimisation as an animation (GIF or MP4, through imageio and its ffmpeg plugin): one frame
per kept iteration, the restarts side by side, each frame labelled with its iteration.

Frames are the same labelled grid as the figures (:class:`~workbench.export.figures.FigureGrid`),
drawn once and then updated in place (new pixels, new iteration label), so a long
optimisation renders in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from workbench.errors import UserError
from workbench.export.figures import FigureGrid
from workbench.export.plots import to_rgb8
from workbench.export.render import check_target
from workbench.export.style import FigureStyle, style_or_default
from workbench.runs import atomic_path

ANIMATION_FORMATS = ("gif", "mp4")

#: Pixels per inch of an animation's frames: a screen's, so a 9 pt label is 12 pixels high.
SCREEN_DPI = 96
#: An animation for a talk lasts at least this long (seconds): few frames play slower, down to
#: :data:`MIN_FPS`, rather than flashing past in two seconds.
MIN_SECONDS = 6.0
MIN_FPS = 2.0
MAX_AUTO_FPS = 10.0
#: The last frame (the result) is held this long (seconds) before the animation ends or loops.
HOLD_SECONDS = 2.0


def talk_timing(n: int, fps: float | None = None, hold: float | None = None) -> tuple[float, int]:
    """(frames per second, how many times the last frame repeats) for ``n`` frames: ``fps`` as
    given, else what makes them last :data:`MIN_SECONDS` (between :data:`MIN_FPS` and
    :data:`MAX_AUTO_FPS`); the result held :data:`HOLD_SECONDS` (or ``hold``)."""
    if fps is None:
        fps = min(MAX_AUTO_FPS, max(MIN_FPS, n / MIN_SECONDS))
    hold = HOLD_SECONDS if hold is None else hold
    return float(fps), max(0, int(round(hold * fps)))


def _caption(title: str, iterations: Sequence[int] | None, i: int, n: int) -> str:
    step = f"iteration {iterations[i]}" if iterations is not None else f"frame {i + 1} of {n}"
    return f"{title} · {step}" if title else step


def animation_frames(frames: Sequence[np.ndarray], *, tile: int | None = None, iterations: Sequence[int] | None = None,
                     title: str = "", style: FigureStyle | None = None, even: bool = False,
                     reference: np.ndarray | None = None) -> list[np.ndarray]:
    """Each frame (K, H, W, C) in [0, 1] as one labelled row of K tiles (after the ``reference``,
    when given, which stays), (H, W, 3) uint8.

    Frames are drawn at :data:`SCREEN_DPI`, where the style's fonts read as on a screen: on a
    column or a page each tile is ``tile`` pixels high, at least the images' own height (never
    shrunk; the frame grows wider if it must); a slide is 1280 × 720 pixels with the tiles fitted in.
    ``even`` pads the frames to even sizes (what an H.264 video needs)."""
    from workbench.export.render import print_context

    style = style_or_default(style)
    if iterations is not None and len(iterations) != len(frames):
        iterations = None
    n = len(frames)
    lead = [reference] if reference is not None else []
    tile = max(int(tile or 0), int(np.asarray(frames[0]).shape[1]))  # native resolution at least
    # the longest caption lays the figure out, so the title's height is the same in every frame
    longest = max(range(n), key=lambda i: len(_caption(title, iterations, i, n)))
    grid = FigureGrid([lead + list(frames[0])],
                      col_labels=["reference"] * len(lead) + [f"restart {k + 1}" for k in range(len(frames[0]))],
                      title=_caption(title, iterations, longest, n))
    fixed = None if style.slide else tile / SCREEN_DPI
    drawing = grid.draw(style, tile=fixed)
    dpi = SCREEN_DPI if fixed is None else (tile + 0.5) / drawing.tile_height
    out = []
    with print_context(style):
        drawing.fig.set_dpi(dpi)
        for i, frame in enumerate(frames):
            for k, tile_image in enumerate(frame):
                if (0, len(lead) + k) in drawing.images:
                    drawing.images[(0, len(lead) + k)].set_data(to_rgb8(tile_image))
            if drawing.title is not None:
                drawing.title.set_text(_caption(title, iterations, i, n))
            drawing.fig.canvas.draw()
            rgb = np.asarray(drawing.fig.canvas.buffer_rgba())[:, :, :3]
            if even:
                h, w = rgb.shape[:2]
                rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
            out.append(np.ascontiguousarray(rgb))
    return out


def save_animation(frames: Sequence[np.ndarray], path: str | Path, *, fps: float | None = None, tile: int | None = None,
                   iterations: Sequence[int] | None = None, title: str = "", style: FigureStyle | None = None,
                   overwrite: bool = False, reference: np.ndarray | None = None, hold: float | None = None) -> Path:
    """Write ``frames`` as a looping GIF or an H.264 MP4 (by the suffix), atomically: at ``fps``
    (default: :func:`talk_timing`, at least :data:`MIN_SECONDS` long), the last frame held ``hold``
    seconds, the ``reference`` beside the restarts, tiles at their native resolution at least."""
    if len(frames) == 0:
        raise UserError("no frames were kept: set 'keep a frame every N iterations' above 0 and run again")
    if fps is not None and not fps > 0:
        raise UserError(f"frames per second must be positive (got {fps})")
    fps, repeats = talk_timing(len(frames), fps, hold)
    path, fmt = check_target(path, overwrite)
    if fmt not in ANIMATION_FORMATS:
        raise UserError(f"an animation is saved as .gif or .mp4, not .{fmt}")
    pictures = animation_frames(frames, tile=tile, iterations=iterations, title=title, style=style,
                                even=fmt == "mp4", reference=reference)
    with atomic_path(path) as tmp:
        if fmt == "gif":  # the result stays on screen: the last frame lasts longer
            import imageio.v3 as iio

            step = int(round(1000 / fps))
            durations = [step] * (len(pictures) - 1) + [step * (1 + repeats)]
            iio.imwrite(tmp, np.stack(pictures), extension=".gif", plugin="pillow", duration=durations, loop=0)
        else:  # a video's frames come at one rate: the last one repeats
            _write_mp4(tmp, pictures + [pictures[-1]] * repeats, fps)
    return path


def _write_mp4(target: Path, pictures: list[np.ndarray], fps: float) -> None:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UserError("an MP4 needs the imageio-ffmpeg package: pip install imageio-ffmpeg") from None
    h, w = pictures[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(target), (w, h), fps=fps, codec="libx264", pix_fmt_in="rgb24",
                                         pix_fmt_out="yuv420p", macro_block_size=1, quality=8,
                                         output_params=["-f", "mp4", "-movflags", "+faststart"],
                                         ffmpeg_log_level="error")
    writer.send(None)
    try:
        for picture in pictures:
            writer.send(np.ascontiguousarray(picture))
    finally:
        writer.close()


def save_gif(frames: Sequence[np.ndarray], path: str | Path, **options) -> Path:
    """:func:`save_animation` (kept for older callers; the suffix chooses GIF or MP4)."""
    return save_animation(frames, path, **options)
