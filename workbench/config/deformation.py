"""The deformation-sensitivity config (Ruderman et al. 2018, sect. 2.1): random thin-plate-spline
deformations of ``n`` images, ``seeds`` repeats, the normalized cosine distance per layer. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config import option


@dataclass
class DeformConfig:
    model: str = option("digits-vgg", "the model (see ModelSpec)", cli=False)
    arch: str | None = option(None, "architecture for a weights file", cli=False)
    images: str = option("auto", "'digits' (bundled test digits), 'photos' (the natural photos the installed "
                         "packages ship), a folder of image files, or 'auto': digits for a grey-input net, "
                         "photos for a colour one")
    n: int = option(128, "number of images (128, as in the paper)")
    grid: int = option(3, "control points per side (3 for CIFAR-size images, sect. 2.1)")
    max_disp: float = option(2.0, "maximum control-point displacement in pixels (2 for CIFAR-size images)")
    seeds: int = option(3, "repeats with different deformations")
    seed: int = option(0, "first seed (repeats use seed, seed+1, ...)")
    layers: tuple[str, ...] | None = option(None, "layer names (default: the paper's layers for the CIFAR-style "
                                            "nets, otherwise the input and every layer)", parse="names", metavar="A,B,..")
    init: str | None = option(None, "measure a fresh initialization instead of the weights: truncnormal, default "
                              "or gaussian:SIGMA")
    batch_size: int = option(64, "images per forward pass")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    pairs: int = option(4, "example pairs (original, deformed, displacement) saved as images", cli=False)


@dataclass
class SmoothnessConfig:
    """Filter smoothness, TV(W)/‖W‖₁ per conv layer (Ruderman et al. 2018, sect. 4.1)."""

    model: str = option("digits-vgg", "the model (see ModelSpec)", cli=False)
    init: str | None = option(None, "measure a fresh initialization of the architecture: truncnormal, default or "
                              "gaussian:SIGMA")
    seed: int = option(0, "seed of the fresh initialization")
