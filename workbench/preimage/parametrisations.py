"""How the optimised variables make an image: pixels (Mahendran & Vedaldi, IJCV 2016), a Fourier
basis with decorrelated colour (Olah et al. 2017, "Feature Visualization", Distill) and MACO's
phase under a fixed natural magnitude spectrum (Fel et al. 2023, "Unlocking feature visualization
for deeper networks with magnitude constrained optimization", NeurIPS).

Every parametrisation maps parameters θ to a batch of images (N, C, H, W) and back:

    image = P(θ),   θ = P⁻¹(image),   P(P⁻¹(image)) = image

(for MACO on the images it can make: an image whose magnitude spectrum is the template's).
``init(n, generator)`` draws θ from a :class:`torch.Generator`, so the same seed gives the same
numbers. Pixels are in the paper's units (x = 255 (p − mean), sect. 3) for ``pixels`` and on
the [0, 1] scale for the others, whose sigmoid keeps every pixel in range without projection.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from workbench.config.preimage import PARAMETRISATIONS

#: Lucid's colour correlation of ImageNet, the square root of its RGB covariance (Olah et al. 2017,
#: lucid/optvis/param/color.py): a decorrelated colour vector c becomes RGB as M c, M = this / max column norm.
COLOR_CORRELATION_SVD_SQRT = ((0.26, 0.09, 0.02),
                              (0.27, 0.00, -0.05),
                              (0.27, -0.09, 0.03))

#: colour photos shipped inside installed packages (no download): scikit-image's and scikit-learn's.
NATURAL_PHOTOS = ("skimage:astronaut", "skimage:coffee", "skimage:chelsea", "skimage:rocket",
                  "sklearn:china.jpg", "sklearn:flower.jpg")


def color_matrix(channels: int) -> torch.Tensor:
    """M of the colour decorrelation (Olah et al.): RGB = M · decorrelated; the identity for ≠ 3 channels."""
    if channels != 3:
        return torch.eye(channels)
    m = torch.tensor(COLOR_CORRELATION_SVD_SQRT, dtype=torch.float64)
    m = m / m.norm(dim=0).max()
    return m.float()


def _apply_color(s: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", m.to(s.device, s.dtype), s)


def _logit(p: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    p = p.clamp(eps, 1.0 - eps)
    return torch.log(p) - torch.log1p(-p)


def frequencies(h: int, w: int) -> torch.Tensor:
    """|f| of torch.fft.rfft2's bins for an h × w image, in cycles per pixel, shape (h, w // 2 + 1)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


class Pixels:
    """The paper's variables: the image itself, x in its units (sect. 3), projected by Algorithm 1."""

    name = "pixels"

    def __init__(self, channels: int, size: tuple[int, int], sigma: float = 1.0) -> None:
        self.channels, self.size, self.sigma = channels, tuple(size), sigma

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        h, w = self.size
        return torch.randn((n, self.channels, h, w), generator=generator) * self.sigma

    def image(self, theta: torch.Tensor) -> torch.Tensor:
        return theta

    def params(self, image: torch.Tensor) -> torch.Tensor:
        return image.clone()


class Fourier:
    """Olah et al. (2017): θ are the coefficients of the image's real 2-D Fourier transform in a
    decorrelated colour space, each scaled by 1/|f|^d (d = ``decay``, Lucid's 1), so that white
    θ make an image with a natural 1/f spectrum and gradient steps are equalised across
    frequencies; then RGB = M·s and a sigmoid to [0, 1] (lucid.optvis.param.spatial.fft_image,
    color.to_valid_rgb). Lucid's division by 4 is part of the scale."""

    name = "fourier"

    def __init__(self, channels: int, size: tuple[int, int], decay: float = 1.0, sigma: float = 0.01) -> None:
        self.channels, self.size, self.decay, self.sigma = channels, tuple(size), decay, sigma
        h, w = self.size
        f = frequencies(h, w)
        self.scale = (1.0 / f.clamp_min(1.0 / max(h, w)) ** decay) * math.sqrt(h * w) / 4.0   # (h, w//2+1)
        self.M = color_matrix(channels)

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        h, w = self.size
        return torch.randn((n, self.channels, h, w // 2 + 1, 2), generator=generator) * self.sigma

    def decorrelated(self, theta: torch.Tensor) -> torch.Tensor:
        spectrum = torch.view_as_complex(theta.contiguous()) * self.scale.to(theta.device)
        return torch.fft.irfft2(spectrum, s=self.size)

    def image(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(_apply_color(self.decorrelated(theta), self.M))

    def params(self, image: torch.Tensor) -> torch.Tensor:
        s = _apply_color(_logit(image), torch.linalg.inv(self.M.double()).float())
        spectrum = torch.fft.rfft2(s) / self.scale.to(image.device)
        return torch.view_as_real(spectrum).contiguous()


class NaturalSpectrum:
    """MACO's magnitude template |F(s)|, here estimated from the colour photos that scikit-image and
    scikit-learn ship (:data:`NATURAL_PHOTOS`; Fel et al. estimate theirs from ImageNet): each
    photo centre-cropped and resampled to the image size, taken to the decorrelated space of
    :class:`Fourier` (s = M⁻¹ logit p), windowed (Hann, energy kept) and the magnitudes of rfft2(s)
    averaged. Without the window the photos' borders, which the FFT wraps around, put a cross of
    energy on the f_x = 0 and f_y = 0 axes, and MACO images came out striped (looked at on
    efficientnet-lite0's goldfish: horizontal and vertical streaks, gone with the window).
    Computed once per size and kept in this object (a few hundred milliseconds at 224²)."""

    def __init__(self, photos: tuple[str, ...] = NATURAL_PHOTOS) -> None:
        self.photos = photos
        self._cache: dict[tuple[int, int, int], torch.Tensor] = {}

    def magnitude(self, channels: int, size: tuple[int, int]) -> torch.Tensor:
        key = (channels, int(size[0]), int(size[1]))
        if key not in self._cache:
            self._cache[key] = self._estimate(channels, key[1:])
        return self._cache[key]

    def _estimate(self, channels: int, size: tuple[int, int]) -> torch.Tensor:
        from workbench.data.images import prepare_image

        inv = torch.linalg.inv(color_matrix(channels).double()).float()
        h, w = size
        window = torch.outer(torch.hann_window(h, periodic=False), torch.hann_window(w, periodic=False))
        window = window / window.pow(2).mean().sqrt()
        total = None
        for spec in self.photos:
            p = torch.from_numpy(prepare_image(_photo(spec), channels, size)).permute(2, 0, 1)[None]
            s = _apply_color(_logit(p, 1.0 / 255.0), inv)
            s = (s - s.mean(dim=(2, 3), keepdim=True)) * window
            mag = torch.fft.rfft2(s).abs()[0]
            total = mag if total is None else total + mag
        return total / len(self.photos)


def _photo(spec: str) -> np.ndarray:
    """A bundled colour photo (H, W, 3) in [0, 1]."""
    source, name = spec.split(":", 1)
    if source == "skimage":
        import skimage.data

        arr = getattr(skimage.data, name)()
    else:
        from sklearn.datasets import load_sample_image

        arr = load_sample_image(name)
    return np.asarray(arr, dtype=np.float32)[..., :3] / 255.0


class Maco:
    """Fel et al. (2023): θ is the phase φ of the decorrelated image's spectrum; its magnitude is a
    fixed natural template A (:class:`NaturalSpectrum`): s = irfft2(A e^{iφ}), then RGB = M·s and a
    sigmoid as in :class:`Fourier`. Only where things are, not how much of each frequency, is
    optimised, so the image keeps a natural spectrum however hard the objective pulls."""

    name = "maco"

    def __init__(self, channels: int, size: tuple[int, int], spectrum: NaturalSpectrum | None = None) -> None:
        self.channels, self.size = channels, tuple(size)
        self.magnitude = (spectrum or NaturalSpectrum()).magnitude(channels, self.size)
        self.M = color_matrix(channels)

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        h, w = self.size
        return (torch.rand((n, self.channels, h, w // 2 + 1), generator=generator) * 2.0 - 1.0) * math.pi

    def decorrelated(self, phi: torch.Tensor) -> torch.Tensor:
        a = self.magnitude.to(phi.device)
        return torch.fft.irfft2(torch.polar(a.expand_as(phi), self.hermitian(phi)), s=self.size)

    def hermitian(self, phi: torch.Tensor) -> torch.Tensor:
        """φ with the columns the real FFT stores in full (f_x = 0 and, for even W, the Nyquist column)
        made odd, φ(−f_y) = −φ(f_y): their spectrum is then Hermitian, as a real image's is, so
        irfft2 keeps every magnitude A and rfft2 gives the phase back (the round trip holds)."""
        h, w = self.size
        cols = [0] + ([w // 2] if w % 2 == 0 else [])
        flip = (-torch.arange(h, device=phi.device)) % h
        out = phi.clone()
        for c in cols:
            col = phi[..., :, c]
            out[..., :, c] = 0.5 * (col - col[..., flip])
        return out

    def image(self, phi: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(_apply_color(self.decorrelated(phi), self.M))

    def params(self, image: torch.Tensor) -> torch.Tensor:
        s = _apply_color(_logit(image), torch.linalg.inv(self.M.double()).float())
        return self.hermitian(torch.angle(torch.fft.rfft2(s)))


def make_parametrisation(name: str, channels: int, size: tuple[int, int], spectrum: NaturalSpectrum | None = None):
    """The parametrisation called ``name`` (:data:`PARAMETRISATIONS`) for images of ``channels`` × ``size``."""
    if name == "pixels":
        return Pixels(channels, size)
    if name == "fourier":
        return Fourier(channels, size)
    if name == "maco":
        return Maco(channels, size, spectrum)
    from workbench.errors import UserError

    raise UserError(f"unknown parametrisation '{name}': use one of {', '.join(PARAMETRISATIONS)}")
