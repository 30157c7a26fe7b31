"""Transformation robustness: the image the network sees each iteration is a random transform of
the one being optimised, so only patterns that survive small shifts, scalings and rotations
are kept (Mahendran & Vedaldi, IJCV 2016, eq. 7: jitter; Olah et al. 2017, "Feature
Visualization": padding, jitter, scaling and rotation, Lucid's ``standard_transforms``).

Every draw comes from a :class:`torch.Generator`: the same seed gives the same numbers. All
of a batch's geometric transforms are one affine resampling (``affine_grid`` +
``grid_sample``), so the cost per iteration does not grow with the number of transforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from workbench.config.preimage import TRANSFORMS


@dataclass(frozen=True)
class Transforms:
    """Per-iteration random transforms of a batch of images (N, C, H, W) on the [0, 1] scale.

    ``pad`` pixels of ``pad_value`` are added around the image (Lucid pads 12 px of grey), then
    every image gets its own scale s ∈ [``scale_min``, ``scale_max``], rotation in
    ±``degrees`` and shift in ±``jitter`` pixels; the result is resampled to ``out_size``
    (the model's input). With ``scale_min`` below 1 the network also sees the image smaller,
    as a photo of the object from further away — the half-resolution robustness of
    :mod:`workbench.preimage.quality`. With ``blur`` > 0 every image is then blurred by a Gaussian of
    σ drawn in [0, ``blur``] pixels (at a 224-pixel output, scaled with it): the pattern must also hold
    seen out of focus, Lucid's scale robustness carried to the image's fine detail.
    """

    jitter: int = 0
    pad: int = 0
    scale_min: float = 1.0
    scale_max: float = 1.0
    degrees: float = 0.0
    pad_value: float = 0.5
    blur: float = 0.0

    def __call__(self, x: torch.Tensor, generator, out_size: tuple[int, int]) -> torch.Tensor:
        """``x`` transformed and resampled to ``out_size``; ``generator`` is one :class:`torch.Generator`
        for the batch or a list of one per image (restarts keep their own, so a batch of restarts
        gets the same numbers as the restarts one at a time)."""
        n = x.shape[0]
        if self.pad > 0:
            x = F.pad(x, (self.pad,) * 4, value=self.pad_value)
        h, w = x.shape[-2:]
        if isinstance(generator, (list, tuple)):
            u = torch.cat([torch.rand((1, 4), generator=g, dtype=torch.float64) for g in generator])
        else:
            u = torch.rand((n, 4), generator=generator, dtype=torch.float64)
        s = self.scale_min + (self.scale_max - self.scale_min) * u[:, 0]
        a = math.radians(self.degrees) * (2.0 * u[:, 1] - 1.0)
        tx = self.jitter * (2.0 * u[:, 2] - 1.0)
        ty = self.jitter * (2.0 * u[:, 3] - 1.0)
        oh, ow = out_size
        # in pixels from the centre: input = R(a) · output / s + t; in the normalised coordinates of
        # affine_grid ([-1, 1] across each side) the entries take the two sides' sizes.
        cos, sin = torch.cos(a) / s, torch.sin(a) / s
        theta = torch.zeros((n, 2, 3), dtype=torch.float64)
        theta[:, 0, 0] = cos * ow / w
        theta[:, 0, 1] = -sin * oh / w
        theta[:, 1, 0] = sin * ow / h
        theta[:, 1, 1] = cos * oh / h
        theta[:, 0, 2] = 2.0 * tx / w
        theta[:, 1, 2] = 2.0 * ty / h
        grid = F.affine_grid(theta.to(x.dtype).to(x.device), [n, x.shape[1], oh, ow], align_corners=False)
        # outside the image (a scale below 1) is the padding's grey, not a mirror image
        out = F.grid_sample(x - self.pad_value, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False) + self.pad_value
        if self.blur <= 0:
            return out
        return self._blur(out, generator, n)

    def _blur(self, x: torch.Tensor, generator, n: int) -> torch.Tensor:
        from workbench.preimage.quality import blur_sigma, gaussian_blur

        if isinstance(generator, (list, tuple)):
            u = torch.cat([torch.rand((1,), generator=g, dtype=torch.float64) for g in generator])
        else:
            u = torch.rand((n,), generator=generator, dtype=torch.float64)
        sigmas = self.blur * blur_sigma(tuple(x.shape[-2:])) / blur_sigma((224, 224)) * u
        return torch.cat([gaussian_blur(x[i:i + 1], float(s)) if s >= 0.05 else x[i:i + 1]
                          for i, s in enumerate(sigmas)])

    @property
    def identity(self) -> bool:
        return self.jitter == 0 and self.pad == 0 and self.scale_min == self.scale_max == 1.0 and \
            self.degrees == 0.0 and self.blur == 0.0


def make_transforms(name: str, stride_jitter: int) -> Transforms:
    """The transforms called ``name`` (:data:`TRANSFORMS`):

    - ``jitter``: the paper's, a shift of up to ``stride_jitter`` pixels (eq. 7; T = stride/4, sect. 5.2.1);
    - ``standard``: Lucid's ``standard_transforms`` in one resampling — pad 12, jitter 8 (+4),
      scale 0.9–1.1, rotation ±10° (Olah et al. 2017);
    - ``natural``: ``standard`` with scales down to 0.5, so the pattern must also hold at half the
      size, and a random blur of σ up to 1 px at 224 (scaled with the input), so it must also hold
      out of focus (measured in docs/fidelity.md, "Feature visualisation": at equal wall time the blur
      raised the blurred p of efficientnet-lite0's classes in the first 16–32 iterations on 5 of 6).
    """
    if name == "jitter":
        return Transforms(jitter=max(0, stride_jitter // 2))
    if name == "standard":
        return Transforms(jitter=12, pad=12, scale_min=0.9, scale_max=1.1, degrees=10.0)
    if name == "natural":
        return Transforms(jitter=12, pad=12, scale_min=0.5, scale_max=1.1, degrees=10.0, blur=1.0)
    from workbench.errors import UserError

    raise UserError(f"unknown transforms '{name}': use one of {', '.join(TRANSFORMS)}")
