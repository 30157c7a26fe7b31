"""A first layer fixed to a wavelet frame, with hard or soft thresholding (the lecture, "Initial
layers can start as representations for the data class").

The lecture's two-layer net: h₂(x) = σ_τ(W⁽¹⁾x + b⁽¹⁾) with W⁽¹⁾ a fixed transform of x to the
wavelet domain and σ_τ a hard or soft threshold that keeps the largest entries; h₃ = σ(W⁽²⁾h₂ + b⁽²⁾)
with W⁽²⁾ the learned classifier on the sparse codes h₂.

W⁽¹⁾ here is the undecimated (stationary, "à trous") 2-D wavelet transform of an orthogonal
PyWavelets family to ``level`` J: 3J detail channels (LH, HL, HH at each scale j = 1..J) and the
approximation at scale J, every channel the size of the image (circular boundary). With the
filters scaled by 1/√2 the channel responses Φ_k(ω) satisfy Σ_k |Φ_k(ω)|² = 1 at every frequency
(|H|² + |G|² = 1 telescopes over the scales), so the layer is a Parseval frame: the adjoint
reconstructs x exactly from unthresholded codes (τ = 0), x = Σ_k Φ_k* ⋆ (Φ_k ⋆ x)
(:meth:`WaveletFrame.reconstruct`). Computed through the FFT, where the circular convolution is
exact; the spatial filters (:meth:`WaveletFrame.filters`) are the same responses transformed back.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from workbench.errors import UserError

#: The families the study uses (orthogonal, so the frame is Parseval): Haar, Daubechies 2 and 4,
#: symlet 4, coiflet 1.
FAMILIES = ("haar", "db2", "db4", "sym4", "coif1")
MAX_LEVEL = 6
THRESHOLDS = ("hard", "soft")


def threshold(x: torch.Tensor, tau: float, kind: str = "soft", odd: bool = False) -> torch.Tensor:
    """σ_hard / σ_soft of the lecture slide, as printed:

        σ_hard(x; τ) = x for x > τ, 0 for |x| ≤ τ, −x for x < −τ      (= |x|·1[|x| > τ])
        σ_soft(x; τ) = x − τ for x > τ, 0 for |x| ≤ τ, −x + τ for x < −τ  (= max(|x| − τ, 0))

    The printed branches for x < −τ return −x, so both keep the magnitude of the large entries (a
    rectifying non-linearity, like a CNN's). ``odd=True`` gives the textbook (Donoho–Johnstone)
    thresholds instead, x·1[|x| > τ] and sign(x)·max(|x| − τ, 0), which keep the sign and are the
    identity at τ = 0."""
    if kind not in THRESHOLDS:
        raise UserError(f"unknown threshold '{kind}': use hard or soft")
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau >= 0):
        raise UserError(f"the threshold τ must be a number ≥ 0 (got {tau!r})")
    keep = x.abs() > tau
    if kind == "hard":
        y = x * keep if odd else x.abs() * keep
    else:
        y = (x.abs() - tau).clamp_min(0.0)
        if odd:
            y = torch.sign(x) * y
    return y


def _check(wavelet: str, level: int):
    import pywt

    if not isinstance(wavelet, str) or wavelet not in pywt.wavelist(kind="discrete"):
        raise UserError(f"unknown wavelet {wavelet!r}: use a discrete PyWavelets name, e.g. {', '.join(FAMILIES)}")
    w = pywt.Wavelet(wavelet)
    if not w.orthogonal:
        raise UserError(f"wavelet {wavelet} is not orthogonal: the frame needs an orthogonal family "
                        f"(e.g. {', '.join(FAMILIES)}) to reconstruct with its adjoint")
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= MAX_LEVEL:
        raise UserError(f"the wavelet level must be a whole number from 1 to {MAX_LEVEL} (got {level!r})")
    return w


def _response(taps, n: int, scale: int) -> np.ndarray:
    """H(2^m ω) at the n DFT frequencies ω_k = 2πk/n of the filter ``taps`` / √2 (upsampled by ``scale``)."""
    k = (np.arange(n) * scale) % n
    t = np.arange(len(taps))
    return (np.asarray(taps, dtype=np.float64)[None, :] * np.exp(-2j * np.pi * k[:, None] * t[None, :] / n)).sum(1) \
        / math.sqrt(2.0)


def frame_responses(wavelet: str, level: int, height: int, width: int) -> tuple[np.ndarray, list[str]]:
    """Φ_k at the DFT frequencies, (3J + 1, H, W) complex, and the channel names (``LH1`` … ``LL3``)."""
    w = _check(wavelet, level)

    def axis(n):
        lo = [_response(w.dec_lo, n, 2 ** m) for m in range(level)]
        hi = [_response(w.dec_hi, n, 2 ** m) for m in range(level)]
        return lo, hi

    (ly, hy), (lx, hx) = axis(height), axis(width)
    channels, names = [], []
    ay, ax = np.ones(height, complex), np.ones(width, complex)  # approximation up to scale j - 1
    for j in range(level):
        for name, fy, fx in (("LH", ly[j], hx[j]), ("HL", hy[j], lx[j]), ("HH", hy[j], hx[j])):
            channels.append(np.outer(ay * fy, ax * fx))
            names.append(f"{name}{j + 1}")
        ay, ax = ay * ly[j], ax * lx[j]
    channels.append(np.outer(ay, ax))
    names.append(f"LL{level}")
    return np.stack(channels), names


class WaveletFrame(nn.Module):
    """W⁽¹⁾: the undecimated wavelet frame as a fixed first layer (no parameters; its responses are
    buffers built for the input size). Input (B, C, H, W) → codes (B, C·(3J + 1), H, W)."""

    def __init__(self, wavelet: str = "db2", level: int = 2, size: tuple[int, int] = (32, 32)) -> None:
        super().__init__()
        responses, self.channel_names = frame_responses(wavelet, level, *size)
        self.wavelet, self.level, self.size = wavelet, level, tuple(size)
        self.register_buffer("phi", torch.from_numpy(responses))  # complex128

    @property
    def channels(self) -> int:
        return len(self.channel_names)

    def _check_input(self, x: torch.Tensor) -> None:
        if tuple(x.shape[-2:]) != self.size:
            raise UserError(f"the wavelet layer was built for {self.size[0]}x{self.size[1]} images, "
                            f"not {x.shape[-2]}x{x.shape[-1]}")

    def _phi(self, dtype: torch.dtype) -> torch.Tensor:
        return self.phi if dtype == torch.float64 else self.phi.to(torch.complex64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        phi = self._phi(x.dtype)
        X = torch.fft.fft2(x)
        codes = torch.fft.ifft2(X[:, :, None] * phi[None, None]).real
        return codes.flatten(1, 2)

    def reconstruct(self, codes: torch.Tensor) -> torch.Tensor:
        """The adjoint W⁽¹⁾ᵀ: Σ_k Φ_k* ⋆ c_k; the exact inverse on unthresholded codes (Parseval frame)."""
        b = codes.shape[0]
        phi = self._phi(codes.dtype)
        c = codes.reshape(b, -1, self.channels, *codes.shape[-2:])
        return torch.fft.ifft2((torch.fft.fft2(c) * phi.conj()[None, None]).sum(2)).real

    def filters(self) -> np.ndarray:
        """The channels' spatial filters (3J + 1, H, W), centred (the impulse response of each channel)."""
        impulses = torch.fft.ifft2(self.phi).real.cpu().numpy()
        return np.fft.fftshift(impulses, axes=(-2, -1))


class Thresholded(nn.Module):
    """σ_τ applied to a layer's output (see :func:`threshold`)."""

    def __init__(self, tau: float, kind: str = "soft", odd: bool = False) -> None:
        super().__init__()
        threshold(torch.zeros(1), tau, kind, odd)  # checks the arguments
        self.tau, self.kind, self.odd = float(tau), kind, odd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return threshold(x, self.tau, self.kind, self.odd)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, kind={self.kind}, odd={self.odd}"
