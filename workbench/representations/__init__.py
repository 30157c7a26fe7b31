"""Fixed, differentiable shallow representations: HOG, HOGb and DSIFT as CNNs (Mahendran & Vedaldi,
CVPR 2015 sect. 3; IJCV 2016 sect. 4.1). See docs/representations.md.

``load("hog" | "hogb" | "dsift", cell_size=None, input_size=None, device="cpu")`` gives a
:class:`~workbench.models.loading.LoadedModel` that every analysis takes (layer table, truncation,
pre-images). A name may carry its cell size: ``hog@4``.

Its stage modules (``stages.LEAVES``) are leaves of the workbench's FX tracer (the representations
source declares them: ``workbench.models.sources.leaf_modules``), so each stage is one layer.
"""

from __future__ import annotations

from typing import Sequence

from workbench.errors import UserError
from workbench.representations.stages import LEAVES  # noqa: F401

#: The representations by name, with what they are.
NAMES = {  # the names workbench.config.model.REPRESENTATIONS lists
    "hog": "CNN-HOG: DPM V5 / UoCTTI HOG (hard orientation binning, 18 + 9 bins per cell)",
    "hogb": "CNN-HOGb: UoCTTI HOG with bilinear orientation binning",
    "dsift": "CNN-DSIFT: dense SIFT (8 orientations, bilinear binning, 4x4-cell descriptors)",
}
#: Cell size in pixels: 8 for HOG and DSIFT, "HOG and DSIFT cell sizes are set to 8 pixels" (IJCV sect. 5.1.1).
CELL_SIZE = 8
#: Default input: one grey channel, 224 x 224 (any multiple of the cell size works).
INPUT_SIZE = (1, 224, 224)
#: Pixel values in the paper's units: 255 * (grey - 0.5), the authors' 255 * rgb2gray(x) - 128 up to a
#: constant no stage sees (the model input is x / (255 * std) with x = 255 * (p - mean)).
MEAN, STD = (0.5,), (1.0 / 255.0,)
#: C of eq. 1 for HOG and DSIFT (IJCV sect. 5.1.1), the pre-image engine's default for these models.
PAPER_C = 100.0
#: The layer each representation is inverted from: its output.
OUTPUT_LAYER = {"hog": "cells", "hogb": "cells", "dsift": "clamp"}



def parse_name(text: str) -> tuple[str, int | None]:
    """``hog``, ``hogb``, ``dsift``, optionally ``@N`` (cell size): (name, cell size or None)."""
    name, _, cell = str(text).strip().lower().partition("@")
    if name not in NAMES:
        raise UserError(f"unknown representation '{text}': use one of {', '.join(NAMES)} (optionally @CELL, e.g. hog@4)")
    if not cell:
        return name, None
    if not cell.isdigit():
        raise UserError(f"bad cell size in '{text}': write NAME@N with N a whole number of pixels, e.g. hog@8")
    return name, int(cell)


def is_representation(text: str) -> bool:
    """Whether a model name names one of these representations (``hog``, ``hogb@4`` ...)."""
    try:
        parse_name(text)
    except UserError:
        return False
    return True


def build(name: str, cell_size: int | None = None, **options):
    """The ``nn.Module`` of a representation (see :mod:`workbench.representations.networks`)."""
    from workbench.representations.networks import DSIFT, HOG

    base, cell = parse_name(name)
    if cell is not None and cell_size is not None and cell != cell_size:
        raise UserError(f"two cell sizes for {base}: {name} and cell_size={cell_size}; give one")
    cell = cell_size if cell_size is not None else (cell if cell is not None else CELL_SIZE)
    if not isinstance(cell, int) or isinstance(cell, bool) or not 2 <= cell <= 64:
        raise UserError(f"cell size {cell!r} is out of range: use a whole number of pixels from 2 to 64 (the papers use 8)")
    if base == "dsift":
        return DSIFT(cell, **options)
    return HOG(cell, bilinear=base == "hogb", **options)


def min_side(name: str, cell: int = CELL_SIZE) -> int:
    """The smallest image side representation ``name`` takes: 2 cells for a HOG block, 4 for a SIFT
    descriptor, plus the 2 border pixels that have no gradient."""
    return (4 if parse_name(name)[0] == "dsift" else 2) * cell + 2


def load(name: str, cell_size: int | None = None, *, input_size: Sequence[int] | None = None,
         device: str = "cpu", **options):
    """A :class:`~workbench.models.loading.LoadedModel` of representation ``name`` (``hog``, ``hogb``,
    ``dsift``, or with its cell size ``hog@4``) for grey images of ``input_size`` (1, H, W), by default
    1 × 224 × 224. ``options`` go to the network (``block_stride`` for DSIFT)."""
    from workbench.config.model import ModelSpec
    from workbench.models.loading import from_module

    base, cell = parse_name(name)
    module = build(name, cell_size, **options)
    cell = module.cell_size
    size = tuple(INPUT_SIZE if input_size is None else input_size)
    if len(size) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in size):
        raise UserError(f"{base}: input_size must be (1, H, W), e.g. (1, 224, 224), not {input_size!r}")
    if size[0] != 1:
        raise UserError(f"{base} takes grey images, as in the papers' experiments: input size 1xHxW, not "
                        f"{'x'.join(map(str, size))} (RGB photos are converted to grey)")
    side = min_side(base, cell)
    if min(size[1:]) < side:
        raise UserError(f"{base} with {cell}-pixel cells needs images of at least {side}x{side} pixels, "
                        f"not {size[1]}x{size[2]}")
    label = base if cell == CELL_SIZE else f"{base}@{cell}"
    loaded = from_module(module, name=label, input_size=size, mean=MEAN, std=STD, device=device)
    loaded.source = f"hand-designed, not learned: {NAMES[base]}, {cell}-pixel cells (Mahendran & Vedaldi 2015)"
    loaded.spec = ModelSpec(model=label, input_size=size)
    # C = 100 for inversion from any stage, "set to 100 unless noted otherwise" (IJCV sect. 5.1.1); the
    # paper uses no jitter either, which a run asks for with --jitter 1 (the engine's default is stride/4).
    layers = [name for name, _ in module.named_children()]
    loaded.metadata = {"representation": base, "cell_size": cell, "output_layer": OUTPUT_LAYER[base],
                       "preimage_C": {name: PAPER_C for name in layers}, "preimage_jitter": 1, **dict(options)}
    return loaded


def load_spec(spec, *, device="cpu"):
    """``load_model``'s hook: a :class:`~workbench.config.model.ModelSpec` naming a representation
    (``--model hog``, ``--model dsift@4 --input-size 1x128x128``). Weights, an architecture or another
    normalisation do not apply to a fixed representation and are refused."""
    given = [flag for flag, value in (("--weights", spec.weights), ("--arch", spec.arch), ("--mean", spec.mean),
                                      ("--std", spec.std), ("--class-names", spec.class_names)) if value is not None]
    if given:
        raise UserError(f"{spec.model} is a fixed representation (no weights, no classes, its own pixel scale): "
                        f"drop {', '.join(given)}")
    return load(spec.model, spec.cell_size, input_size=spec.input_size, device=device)
