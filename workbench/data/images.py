"""Reference images: files, bundled samples, and fitting them to a model's input.

Images are float32 arrays (H, W, C) in [0, 1]. :func:`prepare_image` converts between
grey and RGB when that is unambiguous and resizes (centre crop, then resample) to the
model's input size; anything else is a one-line :class:`UserError`.
"""

from __future__ import annotations

import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from workbench.errors import UserError

#: scikit-image sample photos shipped inside its wheel (no download needed).
SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "camera", "rocket", "coins", "moon", "page")
#: Largest image read, in pixels (a 30000×30000 "decompression bomb" is refused from its header).
MAX_IMAGE_PIXELS = 50_000_000


#: The raster decoders an image file is ever opened with (Pillow format names) and the file name
#: suffixes that stand for them. Pillow identifies a file by its content, not its name, and some of
#: its decoders run programs: EPS/PostScript is rendered by Ghostscript (``gs``), so a PostScript
#: "image" — named ``photo.png`` or not — would run the code in it. Every image the workbench reads
#: goes through :func:`open_image`, which lets Pillow try these decoders and no other: each is a
#: plain raster decoder in Pillow or its bundled C libraries (GIF: the first frame only).
IMAGE_FORMATS: dict[str, tuple[str, ...]] = {
    "PNG": (".png",), "JPEG": (".jpg", ".jpeg"), "BMP": (".bmp",), "TIFF": (".tif", ".tiff"),
    "WEBP": (".webp",), "GIF": (".gif",), "PPM": (".ppm", ".pgm", ".pbm", ".pnm"),
}
#: File name suffixes of :data:`IMAGE_FORMATS` (what a folder of images is scanned for).
IMAGE_SUFFIXES: tuple[str, ...] = tuple(s for suffixes in IMAGE_FORMATS.values() for s in suffixes)
_READABLE = "PNG, JPEG, BMP, TIFF, WebP, GIF or PPM"
#: Formats Pillow has no opener for but that are worth naming when refused (first bytes → name).
_NAMED = ((b"%PDF", "PDF"), (b"<svg", "SVG"), (b"<?xml", "XML/SVG"))


@contextmanager
def open_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS, *, decode: bool = True) -> Iterator[Any]:
    """The one way the workbench opens an image file: ``with open_image(path) as im`` gives a
    loaded PIL image.

    Only the raster decoders of :data:`IMAGE_FORMATS` are tried, whatever the file is called, so
    a file that is PostScript/EPS, PDF or any other format — one Pillow would hand to Ghostscript
    included — is refused in one line naming its format, and no program ever runs. The size is
    checked from the header before any pixel is decoded, so a decompression bomb is refused with
    one line instead of filling the memory (PIL's own bomb warning is caught here, for this call
    only); a folder, a missing, empty or non-regular file (a FIFO would block the read) likewise.
    A damaged file is one line whether it fails here or in the caller's block. ``decode=False``
    reads the header only (format and size), for checking many files before any work starts.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an image: give a {_READABLE} file")
    if not path.exists():
        raise UserError(f"image file not found: {path}")
    if not path.is_file():
        raise UserError(f"{path} is not a regular file: give a {_READABLE} file")
    if path.stat().st_size == 0:
        raise UserError(f"image file {path} is empty: use a {_READABLE} file")
    limit = f"the limit is {max_pixels / 1e6:g} megapixels; scale it down first"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # damaged metadata: only the pixels are read
            try:
                image = Image.open(path, formats=list(IMAGE_FORMATS))
            except UnidentifiedImageError:
                raise UserError(f"cannot read image {path}: {_format_name(path)}; the workbench opens only "
                                f"{_READABLE} images") from None
            with image:
                w, h = image.size
                if w * h > max_pixels:
                    raise UserError(f"image {path} is {w}×{h} pixels: {limit}")
                if decode:
                    image.load()
                yield image
    except Image.DecompressionBombError:
        raise UserError(f"image {path} is far too large: {limit}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # PIL raises all of these for damaged files
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"cannot read image {path}: {reason}; use a {_READABLE} file") from None


def _format_name(path: Path) -> str:
    """What a refused file is, from its first bytes only: Pillow's identification tests (pure byte
    comparisons; no decoder is opened) and a few formats Pillow has no opener for."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return "it cannot be read"
    for magic, name in _NAMED:
        if head.lstrip().startswith(magic):
            return f"its format is {name}"
    Image.init()
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        try:
            if accept is not None and accept(head[:16]):
                return f"its format is {name}" + (" (PostScript: opening it would run Ghostscript)"
                                                  if name == "EPS" else "")
        except Exception:  # an identification test that fails on these bytes names nothing
            continue
    return "its format is not one the workbench knows"


def check_image(path: str | Path) -> None:
    """Refuse ``path`` in one line unless it is an allowed raster image of allowed size, from its header
    alone (see :func:`open_image`): a folder of images is checked whole before a job starts."""
    with open_image(path, decode=False):
        pass


def load_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file (:func:`open_image`: allow-listed decoders, size checked from the header)
    into (H, W, C) float32 in [0, 1]."""
    with open_image(path, max_pixels) as image:
        arr = _as_float(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UserError(f"image {path} has no pixels")
    return np.ascontiguousarray(arr)


def _as_float(im) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(im, dtype=np.float32) / 65535.0
    if im.mode in ("L", "RGB", "RGBA", "LA"):
        return np.asarray(im, dtype=np.float32) / 255.0
    if im.mode == "P":
        return np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def load_sample(name: str) -> tuple[np.ndarray, int | None]:
    """A bundled sample: ``digits:N`` (N-th test digit, with its label) or a photo name."""
    if name.startswith("digits:"):
        from workbench.data.digits import load_digits32

        number = name.split(":", 1)[1].strip()
        if not re.fullmatch(r"[+-]?\d{1,18}", number):
            raise UserError(f"bad sample '{name}': write digits:N with N a number, e.g. digits:0")
        index = int(number)
        x, y = load_digits32("test")
        if not 0 <= index < len(y):
            raise UserError(f"bad sample '{name}': there are {len(y)} test digits, use 0..{len(y) - 1}")
        return x[index].permute(1, 2, 0).numpy().copy(), int(y[index])
    if name in SAMPLE_PHOTOS:
        import skimage.data

        arr = getattr(skimage.data, name)().astype(np.float32)
        arr = arr / (255.0 if arr.max() > 1.0 else 1.0)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return np.ascontiguousarray(arr[:, :, :3]), None
    raise UserError(f"unknown sample '{name}': use digits:N or one of {', '.join(SAMPLE_PHOTOS)}")


def load_source(spec: str) -> tuple[np.ndarray, int | None]:
    """The image ``spec`` names, as stored: an existing file (with or without an extension),
    ``digits:N`` or a sample photo; (H, W, C) in [0, 1] and the label where there is one."""
    if not isinstance(spec, str) or not spec.strip():
        raise UserError("no reference image given: pass an image file, digits:N or a sample name")
    path = Path(spec)
    if path.is_file() or path.is_dir():
        return load_image(path), None
    if spec.startswith("digits:") or spec in SAMPLE_PHOTOS:
        return load_sample(spec)
    if path.suffix or len(path.parts) > 1:
        raise UserError(f"image file not found: {spec}")
    raise UserError(f"'{spec}' is neither an image file nor a sample: use a file, digits:N or one of "
                    f"{', '.join(SAMPLE_PHOTOS)}")


def load_reference(spec: str, input_size: tuple[int, int, int]) -> tuple[np.ndarray, int | None]:
    """A reference image for a model taking ``input_size`` = (C, H, W): (H, W, C) in [0, 1] and its label.

    ``spec`` is an existing file (with or without an extension), ``digits:N`` or a sample name.
    """
    image, label = load_source(spec)
    c, h, w = input_size
    return prepare_image(image, c, (h, w)), label


def prepare_image(image: np.ndarray, channels: int, size: tuple[int, int]) -> np.ndarray:
    """Fit ``image`` (H, W, C) to ``channels`` and ``size`` = (H, W); returns (H, W, channels)."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise UserError(f"image has shape {arr.shape}: expected height × width × channels")
    c = arr.shape[2]
    if c == 4:  # RGBA: composite on white would invent colour; an opaque alpha is just dropped
        arr, c = arr[:, :, :3], 3
    elif c == 2:  # grey + alpha
        arr, c = arr[:, :, :1], 1
    if c not in (1, 3):
        raise UserError(f"image has {c} channels: the model takes {channels}; use a grey or RGB image")
    if c == 3 and channels == 1:
        arr = (arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    elif c == 1 and channels == 3:
        arr = np.repeat(arr, 3, axis=2)
    elif c != channels:
        raise UserError(f"image has {c} channels but the model takes {channels}")
    if arr.shape[:2] != tuple(size):
        arr = _resize(arr, size)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop to the target aspect ratio, then resample with antialiasing (PIL)."""
    from PIL import Image

    h, w = arr.shape[:2]
    th, tw = size
    scale = min(h / th, w / tw)
    ch, cw = int(round(th * scale)), int(round(tw * scale))
    top, left = (h - ch) // 2, (w - cw) // 2
    arr = arr[top:top + ch, left:left + cw]
    channels = [Image.fromarray(arr[:, :, k], mode="F").resize((tw, th), Image.Resampling.BICUBIC)
                for k in range(arr.shape[2])]
    return np.clip(np.stack([np.asarray(c) for c in channels], axis=2), 0.0, 1.0)
