"""Full-reference image quality: PSNR and MS-SSIM on 8-bit RGB images.

Both functions take two arrays of identical shape ``(H, W, C)`` (or ``(H, W)``),
normally ``uint8`` RGB as produced by a decoder, and return a Python ``float``.
All arithmetic is done in float64.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["psnr", "ms_ssim", "MS_SSIM_WEIGHTS"]

#: Per-scale exponents of Wang, Simoncelli & Bovik (2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

_WIN_SIZE = 11
_WIN_SIGMA = 1.5
_K1 = 0.01
_K2 = 0.03


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {a.shape}")
    if a.size == 0:
        raise ValueError("empty image")
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a, b, data_range: float = 255) -> float:
    """Peak signal-to-noise ratio in dB.

    Args:
        a, b: images of identical shape ``(H, W, 3)`` (any shape is accepted as long
            as both match), normally ``uint8``.
        data_range: peak value (255 for 8-bit images).

    Returns:
        ``10 * log10(data_range**2 / MSE)`` where the MSE is taken over all pixels and
        channels at once; ``inf`` when the images are identical.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("empty image")
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(float(data_range) ** 2 / mse)


def _gauss_1d(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian window (float64, sums to 1 within 1 ulp).

    pytorch-msssim builds the same window in float32; its taps then sum to 1 only
    within ~3e-8, which moves its MS-SSIM by a few 1e-6. With its window our result
    agrees with it to ~1e-15.
    """
    x = np.arange(size, dtype=np.float64) - (size // 2)
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _blur_valid(x: np.ndarray, win: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter over the first two axes, 'valid' region only."""
    r = win.size // 2
    out = ndimage.correlate1d(x, win, axis=0, mode="constant")
    out = ndimage.correlate1d(out, win, axis=1, mode="constant")
    return out[r:-r, r:-r]


def _ssim_cs(x: np.ndarray, y: np.ndarray, win: np.ndarray, data_range: float):
    """Per-channel mean SSIM and mean contrast-structure term. x, y: (H, W, C) float64."""
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    mu_x = _blur_valid(x, win)
    mu_y = _blur_valid(y, win)
    mu_xx = mu_x * mu_x
    mu_yy = mu_y * mu_y
    mu_xy = mu_x * mu_y
    s_xx = _blur_valid(x * x, win) - mu_xx
    s_yy = _blur_valid(y * y, win) - mu_yy
    s_xy = _blur_valid(x * y, win) - mu_xy
    cs_map = (2.0 * s_xy + c2) / (s_xx + s_yy + c2)
    ssim_map = ((2.0 * mu_xy + c1) / (mu_xx + mu_yy + c1)) * cs_map
    return ssim_map.mean(axis=(0, 1)), cs_map.mean(axis=(0, 1))


def ms_ssim(a, b, data_range: float = 255) -> float:
    """Multi-scale SSIM (Wang et al. 2003), 5 scales, as CompressAI reports it.

    Gaussian window of 11 taps, sigma 1.5, K1 = 0.01, K2 = 0.03, 'valid' filtering
    (no padding), scale weights :data:`MS_SSIM_WEIGHTS`, 2x2 average pooling between
    scales. Computed per colour channel, then averaged over channels.

    Args:
        a, b: images of identical shape ``(H, W, 3)`` or ``(H, W)``, normally ``uint8``.
        data_range: peak value (255 for 8-bit images, 1.0 for floats in [0, 1]).

    Returns:
        MS-SSIM in [0, 1] (1.0 for identical images) as a float. It equals
        pytorch-msssim's ``ms_ssim(X, Y, data_range=255)`` to within ~5e-6 (the
        difference comes from its float32 window, see :func:`_gauss_1d`).

    Raises:
        ValueError: shapes differ, or the smaller side is not larger than 160 pixels,
            which 5 scales of an 11-tap window need.
    """
    x, y = _pair(a, b)
    if x.ndim == 2:
        x = x[:, :, None]
        y = y[:, :, None]
    levels = len(MS_SSIM_WEIGHTS)
    min_side = (_WIN_SIZE - 1) * 2 ** (levels - 1)
    if min(x.shape[:2]) <= min_side:
        raise ValueError(
            f"image of {x.shape[0]}x{x.shape[1]} is too small for {levels}-scale MS-SSIM: "
            f"both sides must be larger than {min_side} pixels"
        )
    win = _gauss_1d(_WIN_SIZE, _WIN_SIGMA)
    weights = np.asarray(MS_SSIM_WEIGHTS, dtype=np.float64)
    terms = []
    for level in range(levels):
        ssim_c, cs_c = _ssim_cs(x, y, win, float(data_range))
        if level < levels - 1:
            terms.append(np.maximum(cs_c, 0.0))
            x = _avg_pool2_torch(x)
            y = _avg_pool2_torch(y)
        else:
            terms.append(np.maximum(ssim_c, 0.0))
    stacked = np.stack(terms)  # (levels, C)
    per_channel = np.prod(stacked ** weights[:, None], axis=0)
    return float(per_channel.mean())


def _avg_pool2_torch(x: np.ndarray) -> np.ndarray:
    """``avg_pool2d(kernel=2, stride=2, padding=s % 2)`` over axes 0, 1 (zeros count).

    With padding p on both sides, the output size is ``(s + 2p - 2) // 2 + 1`` and
    window k covers padded indexes ``2k, 2k+1``, i.e. original ``2k-p, 2k+1-p``.
    """
    for axis in (0, 1):
        s = x.shape[axis]
        p = s % 2
        if p:
            pad = [(0, 0)] * x.ndim
            pad[axis] = (1, 1)
            x = np.pad(x, pad)
        n = (s + 2 * p - 2) // 2 + 1
        even = np.take(x, np.arange(0, 2 * n, 2), axis=axis)
        odd = np.take(x, np.arange(1, 2 * n, 2), axis=axis)
        x = 0.5 * (even + odd)
    return x
