"""Invertible 2-D wavelet packet transform (CDF 9/7) as fixed strided convolutions.

The CDF 9/7 biorthogonal wavelet (Cohen, Daubechies & Feauveau 1992; the irreversible
wavelet of JPEG 2000, ``bior4.4`` in PyWavelets) is built here from its definition
instead of a table of numbers: with ``y = sin^2(w/2)``, the Daubechies polynomial of
order 4, ``P(y) = 1 + 4y + 10y^2 + 20y^3``, is split into its real-root linear factor
``Q_s`` and complex-root quadratic factor ``Q_a``; the analysis lowpass is
``sqrt(2) cos^4(w/2) Q_a(y)`` (9 taps) and the synthesis lowpass
``sqrt(2) cos^4(w/2) Q_s(y)`` (7 taps). Their product satisfies the perfect-reconstruction
identity ``cos^8 P(sin^2) + sin^8 P(cos^2) = 1``. The highpass filters are the other
side's lowpass modulated by ``(-1)^(m+1)`` (sign convention of PyWavelets).

One level filters the rows and the columns, keeping every second sample: a lowpass
output centred on even samples and a highpass output centred on odd samples. A *packet*
decomposition splits every band again (not only the lowpass), so ``J`` levels turn each
channel into ``4**J`` equally sized bands at ``1 / 2**J`` of the resolution: a
time-frequency tiling like a block transform's, but with overlapping, smooth basis
functions (no block edges).

Boundaries: ``"symmetric"`` (default) extends signals by whole-sample reflection, the
non-expansive symmetric extension JPEG 2000 uses for odd-length symmetric filters: the
lowpass band is then whole-sample symmetric at its start and half-sample symmetric at its
end, the highpass band the reverse, so the synthesis can extend the bands the same way
and reconstruct exactly. ``"periodic"`` wraps around (PyWavelets' ``periodization``).
Either way ``inverse(forward(x)) == x`` up to float rounding when H and W are multiples of
``2**J``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

BOUNDARIES = ("symmetric", "periodic")
TAPS = 9  # every filter fits a 9-tap window (see _filter_bank)


def _laurent_power(base: np.ndarray, power: int) -> np.ndarray:
    """Coefficients of ``base(z)**power`` for a centred symmetric 3-tap ``base``."""
    out = np.array([1.0])
    for _ in range(power):
        out = np.convolve(out, base)
    return out


def _poly_in_y(coefficients: np.ndarray) -> np.ndarray:
    """A polynomial in ``y = sin^2(w/2)`` (ascending coefficients) as a centred
    symmetric filter; ``y`` itself is the filter ``(-1/4, 1/2, -1/4)``."""
    y = np.array([-0.25, 0.5, -0.25])
    degree = len(coefficients) - 1
    out = np.zeros(2 * degree + 1)
    for k, c in enumerate(coefficients):
        term = _laurent_power(y, k)
        pad = degree - k
        out[pad:pad + len(term)] += c * term
    return out


def cdf97_lowpass() -> tuple[np.ndarray, np.ndarray]:
    """CDF 9/7 lowpass filters, float64, centred (symmetric).

    Returns:
      (analysis, synthesis): 9 and 7 taps, each summing to sqrt(2).
    """
    daubechies = np.array([1.0, 4.0, 10.0, 20.0])   # P(y), ascending powers of y
    roots = np.roots(daubechies[::-1])
    real_root = float(np.real(roots[np.argmin(np.abs(np.imag(roots)))]))
    synthesis_q = np.array([1.0, -1.0 / real_root])  # Q_s(y) = 1 - y / r, Q_s(0) = 1
    # Q_a = P / Q_s (exact division: r is a root of P)
    analysis_q = np.polydiv(daubechies[::-1], synthesis_q[::-1])[0][::-1]
    cos4 = _laurent_power(np.array([0.25, 0.5, 0.25]), 2)  # cos^4(w/2)
    analysis = math.sqrt(2.0) * np.convolve(cos4, _poly_in_y(analysis_q))
    synthesis = math.sqrt(2.0) * np.convolve(cos4, _poly_in_y(synthesis_q))
    return analysis, synthesis


def cdf97_filters() -> dict[str, np.ndarray]:
    """The four CDF 9/7 filters, float64, centred: ``analysis_low`` (9 taps, centre on
    the even sample it produces), ``analysis_high`` (7, centre on the odd sample),
    ``synthesis_low`` (7), ``synthesis_high`` (9). Symmetric, so correlation and
    convolution agree."""
    low_a, low_s = cdf97_lowpass()

    def modulate(h: np.ndarray) -> np.ndarray:
        m = np.arange(len(h)) - len(h) // 2
        return np.where(m % 2 == 0, -1.0, 1.0) * h  # (-1)^(m+1)

    return {"analysis_low": low_a, "analysis_high": modulate(low_s),
            "synthesis_low": low_s, "synthesis_high": modulate(low_a)}


def _filter_bank() -> tuple[torch.Tensor, torch.Tensor]:
    """Analysis and synthesis kernels, float64.

    Analysis, (2, TAPS) (rows: low, high): correlation with the signal extended by 4
    samples each side, stride 2; output k of row 0 is centred on sample 2k (tap 4), of
    row 1 on sample 2k+1 (tap 5).

    Synthesis, (2, 2, 5) (output parity, band, tap), in polyphase form: sample 2j + p is
    the correlation of the bands, extended by 2 each side, with ``[p, :, :]`` at j. Band
    coefficient k reaches sample n through synthesis tap ``t = n - 2k + 3`` (the low filter
    on taps 0..6, the high one on 0..8); for ``n = 2j + p`` and ``k = j + u - 2`` that is
    ``t = p + 7 - 2u``. (A stride-2 transposed convolution computes the same sums, but
    runs several times slower on CPU.)
    """
    f = cdf97_filters()
    analysis = np.zeros((2, TAPS))
    analysis[0, 0:9] = f["analysis_low"]
    analysis[1, 2:9] = f["analysis_high"]
    taps = np.zeros((2, TAPS))
    taps[0, 0:7] = f["synthesis_low"]
    taps[1, 0:9] = f["synthesis_high"]
    synthesis = np.zeros((2, 2, 5))
    for p in range(2):
        for u in range(5):
            t = p + 7 - 2 * u
            if 0 <= t < TAPS:
                synthesis[p, :, u] = taps[:, t]
    return torch.from_numpy(analysis), torch.from_numpy(synthesis)


# Extension widths: the analysis window reaches 4 samples each side, the polyphase
# synthesis window 2 band coefficients each side.
SIGNAL_PAD = 4
BAND_PAD = 2


def _fold(index: np.ndarray, period: int, last: int, mirror: int) -> np.ndarray:
    """Positions ``index`` of an extended signal mapped to 0..last: the pattern repeats with
    ``period``; within it, positions past ``last`` mirror to ``mirror - r``."""
    r = np.mod(index, period)
    return np.where(r <= last, r, mirror - r)


def signal_extension(n: int, boundary: str) -> torch.Tensor:
    """int64 (n + 8,): source sample of every position of the extended signal (-4..n+3)."""
    i = np.arange(-SIGNAL_PAD, n + SIGNAL_PAD)
    if boundary == "periodic":
        return torch.from_numpy(np.mod(i, n))
    # whole-sample symmetric at both ends: period 2n - 2 (n >= 2)
    return torch.from_numpy(_fold(i, 2 * n - 2, n - 1, 2 * n - 2))


def band_extension(m: int, high: bool, boundary: str) -> torch.Tensor:
    """int64 (m + 4,): source coefficient of every position -2..m+1 of an extended band.

    With symmetric signal extension the lowpass band is whole-sample symmetric about 0 and
    half-sample symmetric about m - 1/2; the highpass band half-sample about -1/2 and
    whole-sample about m - 1; both repeat with period 2m - 1.
    """
    i = np.arange(-BAND_PAD, m + BAND_PAD)
    if boundary == "periodic":
        return torch.from_numpy(np.mod(i, m))
    return torch.from_numpy(_fold(i, 2 * m - 1, m - 1, 2 * m - 2 if high else 2 * m - 1))


class WaveletPacket(nn.Module):
    """J-level 2-D CDF 9/7 wavelet packet transform per channel, and its exact inverse.

    Args:
      channels: C, input channels (each transformed separately).
      levels: J >= 1.
      boundary: ``"symmetric"`` or ``"periodic"`` (see the module docstring).

    ``forward``: float (B, C, H, W), H and W multiples of ``2**J`` ->
    (B, C * 4**J, H / 2**J, W / 2**J). Channel ``c * 4**J + b`` holds band ``b`` of input
    channel c, with ``b = sum_l (2 * v_l + h_l) * 4**(J - 1 - l)`` where ``v_l`` / ``h_l``
    are 1 for the highpass branch along H / W at level ``l`` (0 = first split). The
    lowpass bands carry ``2**J`` times the local mean (each filter has DC gain sqrt(2)),
    and the transform is close to orthonormal, so coefficients are on the scale of an
    orthonormal 2**J x 2**J block transform. ``inverse`` undoes it (up to float rounding).
    Filters are non-persistent buffers (never stored in weight files, never rounded).
    """

    def __init__(self, channels: int = 3, levels: int = 3, boundary: str = "symmetric"):
        super().__init__()
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        if not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be a positive integer, got {levels!r}")
        self.channels = channels
        self.levels = levels
        self.boundary = boundary
        analysis, synthesis = _filter_bank()
        self.register_buffer("analysis_kernel", analysis, persistent=False)
        self.register_buffer("synthesis_kernel", synthesis, persistent=False)

    @property
    def bands(self) -> int:
        """Bands per input channel, ``4**J``."""
        return 4**self.levels

    @property
    def factor(self) -> int:
        """Downsampling factor ``2**J``."""
        return 2**self.levels

    def _check(self, x: torch.Tensor, channels: int, factor: int, what: str) -> None:
        if x.ndim != 4 or x.shape[1] != channels:
            raise ValueError(f"{what} expects (B, {channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"{what}: H and W must be multiples of {factor}, got {tuple(x.shape[2:])}")

    # -- one level along one axis --------------------------------------------------------
    def _analyse(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """(N, 1, H, W) -> (N, 2, ...) halved along ``dim`` (2 = H, 3 = W): low, high."""
        index = signal_extension(x.shape[dim], self.boundary).to(x.device)
        extended = x.index_select(dim, index)
        shape = (2, 1, TAPS, 1) if dim == 2 else (2, 1, 1, TAPS)
        stride = (2, 1) if dim == 2 else (1, 2)
        return F.conv2d(extended, self.analysis_kernel.to(x.dtype).view(shape), stride=stride)

    def _synthesise(self, bands: torch.Tensor, dim: int) -> torch.Tensor:
        """(N, 2, ...) low and high bands -> (N, 1, ...) doubled along ``dim``."""
        m = bands.shape[dim]
        low = bands[:, :1].index_select(dim, band_extension(m, False, self.boundary).to(bands.device))
        high = bands[:, 1:].index_select(dim, band_extension(m, True, self.boundary).to(bands.device))
        kernel = self.synthesis_kernel.to(bands.dtype)
        kernel = kernel.view(2, 2, 5, 1) if dim == 2 else kernel.view(2, 2, 1, 5)
        phases = F.conv2d(torch.cat([low, high], 1), kernel)  # (N, 2: even / odd samples, ...)
        n, _, h, w = phases.shape
        if dim == 2:
            return phases.transpose(1, 2).reshape(n, 1, 2 * h, w)
        return phases.permute(0, 2, 3, 1).reshape(n, 1, h, 2 * w)

    # -- full packet --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, self.channels, self.factor, "WaveletPacket")
        b, c, h, w = x.shape
        t = x.reshape(b * c, 1, h, w)
        for _ in range(self.levels):
            n, _, hh, ww = t.shape
            t = self._analyse(t, 3)                                   # (n, 2, hh, ww/2): W bands
            t = self._analyse(t.reshape(2 * n, 1, hh, ww // 2), 2)    # (2n, 2, hh/2, ww/2): H bands
            # (n, w-band, h-band, ...) -> (n, h-band, w-band, ...): band = 2 * v + h
            t = t.reshape(n, 2, 2, hh // 2, ww // 2).transpose(1, 2).reshape(4 * n, 1, hh // 2, ww // 2)
        return t.reshape(b, c * self.bands, h // self.factor, w // self.factor)

    def inverse(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(B, C * 4**J, h, w) -> (B, C, h * 2**J, w * 2**J)."""
        self._check(coefficients, self.channels * self.bands, 1, "WaveletPacket.inverse")
        b, _, h, w = coefficients.shape
        t = coefficients.reshape(-1, 4, h, w)
        for level in range(self.levels):
            n, _, hh, ww = t.shape
            t = t.reshape(n, 2, 2, hh, ww).transpose(1, 2).reshape(2 * n, 2, hh, ww)  # (n * w-band, h-band)
            t = self._synthesise(t, 2).reshape(n, 2, 2 * hh, ww)                       # (n, w-band)
            t = self._synthesise(t, 3)                                                 # (n, 1)
            if level < self.levels - 1:  # these are the bands of the level above
                t = t.reshape(n // 4, 4, 2 * hh, 2 * ww)
        return t.reshape(b, self.channels, h * self.factor, w * self.factor)


def sequency_order(levels: int) -> list[tuple[int, int]]:
    """Frequency position (along H, along W), each in ``0 .. 2**J - 1``, of the packet bands
    ``b = 0 .. 4**J - 1`` of :class:`WaveletPacket`.

    Splitting a highpass band reverses the frequency order of its children (the spectrum
    of a decimated highpass signal is mirrored), so a band's position along an axis is
    the Gray-code decoding of its branch bits along that axis.
    """
    out = []
    for b in range(4**levels):
        pos = [0, 0]
        for axis in (0, 1):
            value = 0
            for level in range(levels):
                digit = (b >> (2 * (levels - 1 - level))) & 3
                bit = (digit >> 1) & 1 if axis == 0 else digit & 1
                value = (value << 1) | (bit ^ (value & 1))
            pos[axis] = value
        out.append((pos[0], pos[1]))
    return out
