"""What the Deformation dock checks before it measures, computed without Qt: the layers a
measurement covers and the memory its representations would hold (Ruderman et al. 2018's
per-layer distances keep every image's representation at every measured layer)."""

from __future__ import annotations

import numpy as np


def measured_layers(model, stride: int) -> list[str] | None:
    """The layers a measurement with ``stride`` covers: None (the job's own choice: every layer)
    for 1, else the input and every ``stride``-th layer of the model's table (the last one kept)."""
    if stride <= 1:
        return None
    names = [info.name for info in model.layers()]
    picked = names[stride - 1::stride]
    if names and names[-1] not in picked:
        picked.append(names[-1])
    return ["input", *picked]


def representation_bytes(model, n: int, layers: list[str] | None) -> int:
    """What measuring ``n`` images holds: their unit-normalised representation at each layer
    (float32), as :func:`workbench.deformation.sensitivity.deformation_sensitivity` keeps them."""
    sizes = {info.name: int(np.prod(info.shape)) for info in model.layers() if info.shape}
    sizes["input"] = int(np.prod(model.input_size))
    names = layers if layers is not None else ["input", *(info.name for info in model.layers())]
    return 4 * n * sum(sizes.get(name, 0) for name in names)


def memory_limit() -> int:
    """The most a measurement may hold: the job's own cap, and a share of the memory available."""
    from workbench.deformation.sensitivity import MAX_REPRESENTATION_BYTES
    from workbench.limits import MEMORY_SHARE, available_memory

    return int(min(MAX_REPRESENTATION_BYTES, MEMORY_SHARE * available_memory()[0]))
