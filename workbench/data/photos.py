"""The natural photos the installed packages ship: the workbench's stand-in for the ILSVRC images on
which the IJCV paper sets B and V (sect. 3.3) and measures the range M of a unit (sect. 6.2).

Every colour photograph of a natural scene that a dependency installs, nothing downloaded (9):

- scikit-image (``skimage/data``): astronaut, chelsea, coffee, rocket, motorcycle_left;
- scikit-learn (``sklearn/datasets/images``): china, flower;
- matplotlib (``mpl-data/sample_data``): grace_hopper.

Left out: motorcycle_right (the other half of motorcycle_left's stereo pair: the same scene twice),
photographs that are no scenes of the ILSVRC kind (hubble_deep_field, retina, ihc, cell,
microaneurysms: sky and microscopy), and the grey photographs (camera, coins, moon, page, text, brick,
grass, gravel, clock_motion): the ILSVRC photos the paper calibrates on are in colour, and a grey
image has no colour spread to measure B on.

Files are read with :func:`workbench.data.images.load_image` (allow-listed decoders, size checked).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: (name, package, file inside the package's data folder).
NATURAL_PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("astronaut", "skimage", "astronaut.png"),
    ("chelsea", "skimage", "chelsea.png"),
    ("coffee", "skimage", "coffee.png"),
    ("rocket", "skimage", "rocket.jpg"),
    ("motorcycle_left", "skimage", "motorcycle_left.png"),
    ("china", "sklearn", "china.jpg"),
    ("flower", "sklearn", "flower.jpg"),
    ("grace_hopper", "matplotlib", "grace_hopper.jpg"),
)

#: What run folders record as the source of a calibration on these photos.
SOURCE = "natural photos shipped with scikit-image, scikit-learn and matplotlib"


#: Where each package keeps its photos, inside the package's folder.
_DATA = {"skimage": ("data",), "sklearn": ("datasets", "images"), "matplotlib": ("mpl-data", "sample_data")}


def _folder(package: str) -> Path | None:
    """The package's photo folder, found without importing the package (importing scikit-learn's
    datasets takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*_DATA[package])


def photo_paths() -> list[tuple[str, Path]]:
    """(name, path) of every photo of :data:`NATURAL_PHOTOS` that is installed."""
    found = []
    for name, package, file in NATURAL_PHOTOS:
        folder = _folder(package)
        if folder is not None and (folder / file).is_file():
            found.append((name, folder / file))
    return found


def natural_photos(channels: int, size: tuple[int, int]) -> tuple[list[str], np.ndarray]:
    """The installed natural photos fitted to a model's input: their names and an (N, channels, H, W)
    float32 array in [0, 1] (centre-cropped to the aspect ratio and resampled, as reference images are)."""
    from workbench.data.images import load_image, prepare_image

    names, images = [], []
    for name, path in photo_paths():
        names.append(name)
        images.append(prepare_image(load_image(path), channels, size).transpose(2, 0, 1))
    if not images:
        return [], np.zeros((0, channels, *size), dtype=np.float32)
    return names, np.ascontiguousarray(np.stack(images), dtype=np.float32)
