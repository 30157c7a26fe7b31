"""CNN-HOG, CNN-HOGb and CNN-DSIFT (Mahendran & Vedaldi, CVPR 2015 sect. 3 "CNN-DSIFT and CNN-HOG";
IJCV 2016 sect. 4.1), built from the stages of :mod:`workbench.representations.stages` as named child
modules, so that the layer table lists each stage with its shape and receptive field and any stage
can be truncated at.

The networks follow the authors' own ``hog_net.m`` and ``dsift_net.m`` (aravindhm/deep-goggle), which
the papers call "numerically indistinguishable from the VLFeat reference implementations", with the
differences listed in docs/representations.md. Input: one grey channel on the paper's 0–255 scale
(the experiments feed ``255 · rgb2gray(x) − 128``; the workbench gives ``255 · (grey − 0.5)``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from workbench.representations import stages


class _Stages(nn.Module):
    """A representation computed by its named stages one after another (``STAGES``, the rows of its
    table): each stage is a child module, so each is a layer of the layer table."""

    STAGES: tuple[str, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.STAGES:
            x = getattr(self, name)(x)
        return x


class HOG(_Stages):
    """DPM V5 / UoCTTI HOG as a CNN (``bilinear=True``: HOGb, the same with bilinear orientation binning).

    ===========  ==================================================  ======================  ==========
    layer        what (paper)                                         output (224² input)     rf / stride
    ===========  ==================================================  ======================  ==========
    gradients    G_k = u_1k G_x + u_2k G_y, K = 18 (conv 3×3)         18 × 222 × 222          3 / 1
    binning      h_k = ‖g‖ 1[⟨g,u_k⟩ > ‖g‖ cos π/K]  (HOGb: bilinear)  18 × 222 × 222          3 / 1
    pooling      bilinear spatial pooling into b×b cells              18 × 28 × 28            18 / 8
    blocks       2×2 cells: 18 oriented + 9 unoriented per cell       108 × 29 × 29           26 / 8
    norm         l², factor from the unoriented components only       108 × 29 × 29           26 / 8
    clamp        min{x, 0.2}                                          108 × 29 × 29           26 / 8
    cells        blocks back to cells, averaged (×½)                  27 × 28 × 28            34 / 8
    ===========  ==================================================  ======================  ==========

    The 27 components of a cell are VLFeat's first 27 (18 directed bins, 9 undirected); UoCTTI's 4
    texture components are dropped, as in the papers. ``border="vlfeat"`` (default) gives a border cell
    its four blocks from replicated cells, as VLFeat's vl_hog does (29 × 29 blocks for 28 × 28 cells);
    ``border="zeros"`` is hog_net.m's: interior blocks only (27 × 27), zero-padded back to cells."""

    STAGES = ("gradients", "binning", "pooling", "blocks", "norm", "clamp", "cells")

    def __init__(self, cell_size: int = 8, *, bilinear: bool = False, orientations: int = 9, border: str = "vlfeat",
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        K = 2 * orientations
        self.cell_size, self.bilinear_orientations, self.orientations = int(cell_size), bool(bilinear), orientations
        self.border = border
        self.gradients = stages.directional_filters(K, dtype=dtype)
        self.binning = (stages.BilinearOrientationBinning if bilinear else stages.HardOrientationBinning)(K, dtype=dtype)
        self.pooling = stages.cell_pooling(K, self.cell_size, dtype=dtype)
        self.blocks = stages.hog_block_filters(orientations, border=border, dtype=dtype)
        self.norm = stages.UoCTTIBlockNorm(4, 3 * orientations, orientations)
        self.clamp = stages.Clamp(0.2)
        self.cells = stages.hog_cell_filters(orientations, border=border, dtype=dtype)



class DSIFT(_Stages):
    """Dense SIFT as a CNN: 8 orientations with bilinear binning, bilinear pooling into b×b cells,
    4×4-cell descriptors with VLFeat's ``fast`` cell weighting, l² normalisation, clamp at 0.2.

    ===========  ==================================================  ======================  ==========
    layer        what (paper)                                         output (224², stride 1) rf / stride
    ===========  ==================================================  ======================  ==========
    gradients    G_k, K = 8 (conv 3×3)                                8 × 222 × 222           3 / 1
    binning      h_k = ‖g‖ max{0, 1 − (K/2π) cos⁻¹(⟨g,u_k⟩/‖g‖)}     8 × 222 × 222           3 / 1
    pooling      bilinear spatial pooling into b×b cells              8 × 28 × 28             18 / 8
    blocks       4×4 cells, Gaussian-weighted per cell (fast)         128 × 25 × 25           42 / 8
    norm         l² (the standard LRN layer with a window over all)  128 × 25 × 25           42 / 8
    clamp        min{x, 0.2}                                          128 × 25 × 25           42 / 8
    ===========  ==================================================  ======================  ==========

    ``block_stride`` is the step between descriptors in cells: 1 (a descriptor every cell, "the same
    cell size and sampling" as HOG, IJCV sect. 5.1.3) by default; the authors' dsift_net.m uses 3
    with 5-pixel bins."""

    STAGES = ("gradients", "binning", "pooling", "blocks", "norm", "clamp")

    def __init__(self, cell_size: int = 8, *, block_stride: int = 1, orientations: int = 8, window: float = 2.0,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        K = int(orientations)
        self.cell_size, self.block_stride, self.orientations = int(cell_size), int(block_stride), K
        self.gradients = stages.directional_filters(K, dtype=dtype)
        self.binning = stages.BilinearOrientationBinning(K, dtype=dtype)
        self.pooling = stages.cell_pooling(K, self.cell_size, dtype=dtype)
        self.blocks = stages.sift_block_filters(K, 4, self.block_stride, window, self.cell_size, dtype=dtype)
        self.norm = stages.l2_normalisation(16 * K)
        self.clamp = stages.Clamp(0.2)



class SkimageHOG(nn.Module):
    """The configuration of the HOG stages that computes scikit-image's ``hog`` exactly (for the tests):
    ``skimage.feature.hog(img, orientations=9, pixels_per_cell=(b, b), cells_per_block=(2, 2),
    block_norm='L2-Hys', feature_vector=False)``.

    It shares the directional filters and :class:`~workbench.representations.stages.HardOrientationBinning`
    with :class:`HOG`, with scikit-image's choices where the definitions differ: full central differences
    and reflect padding (its gradient is zero across the border), directions offset by half a bin
    (its bins are [20°i, 20°(i+1)), not centred on 20°i), the 18 directed bins folded into 9 undirected
    ones, box pooling (the mean over each cell, no bilinear interpolation) and L2-Hys blocks.
    Output channel (r·2 + c)·9 + o is skimage's ``[..., r, c, o]``.

    The offset is half a bin less :attr:`EDGE` (1e-9 of a bin), so that a gradient exactly on a bin
    edge — every horizontal one, θ = 0° or 180°, as on the border rows where skimage's vertical
    derivative is 0 — goes to the upper bin, as in skimage's half-open [20°i, 20°(i+1)). Build it in
    float64 (``dtype=torch.float64``) to compare: in float32 the two directions either side of an edge
    have the same projection, and rounding breaks the tie."""

    EDGE = 1e-9

    def __init__(self, cell_size: int = 8, orientations: int = 9, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        K = 2 * orientations
        offset = 0.5 - self.EDGE
        self.gradients = stages.directional_filters(K, offset=offset, scale=1.0, padding=1, padding_mode="reflect",
                                                    dtype=dtype)
        self.binning = stages.HardOrientationBinning(K, offset=offset, dtype=dtype)
        fold = torch.zeros(orientations, K, 1, 1, dtype=torch.float64)
        for o in range(orientations):
            fold[o, o] = fold[o, o + orientations] = 1.0
        self.fold = stages._frozen(nn.Conv2d(K, orientations, 1, bias=False, dtype=dtype), fold)
        self.pooling = nn.AvgPool2d(cell_size)
        self.blocks = stages.L2HysBlocks(orientations, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.pooling(self.fold(self.binning(self.gradients(x)))))
