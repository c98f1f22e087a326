"""Texture measures that need no pretrained network (issue 21): how much of an original's
fine detail a reconstruction has, and whether its edges are as sharp.

* :func:`band_energy_ratios`: the reconstruction's power-spectrum energy over the
  original's, per radial frequency band of the luma. An MSE decoder is below 1 in the high
  bands (blur); a realism decoder should bring them back towards 1 (above 1 is invented
  detail or noise).
* :func:`gradient_histogram_distance`: total-variation distance between the two images'
  histograms of luma gradient magnitude, in [0, 1] (0: the same distribution of edge
  strengths).

Images are uint8 (H, W, 3) arrays, or anything :func:`numpy.asarray` makes one.
"""

from __future__ import annotations

import numpy as np

#: Edges of the radial frequency bands, as fractions of the Nyquist frequency.
BAND_EDGES = (0.0, 0.125, 0.25, 0.5, 0.75, 1.0)
#: Gradient-magnitude histogram bins (luma levels per pixel); the last bin takes the rest.
GRADIENT_BINS = np.concatenate([np.arange(0, 64, 2), np.arange(64, 256, 16), [np.inf]])


def luma(image) -> np.ndarray:
    """BT.601 luma of a uint8 (H, W, 3) image, float64 (H, W) in [0, 255]."""
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {x.shape}")
    return x @ np.array([0.299, 0.587, 0.114])


def band_energies(image, edges=BAND_EDGES) -> np.ndarray:
    """Power-spectrum energy of the luma (mean removed, Hann-windowed so the image border
    adds no false high frequencies) in each radial band, float64 (len(edges) - 1,)."""
    y = luma(image)
    y = y - y.mean()
    window = np.outer(np.hanning(y.shape[0]), np.hanning(y.shape[1]))
    power = np.abs(np.fft.rfft2(y * window)) ** 2
    fy = np.abs(np.fft.fftfreq(y.shape[0]))[:, None] * 2  # fraction of Nyquist
    fx = np.fft.rfftfreq(y.shape[1])[None, :] * 2
    radius = np.sqrt(fy ** 2 + fx ** 2)
    out = np.empty(len(edges) - 1)
    for i, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        band = (radius >= low) & ((radius <= high) if last else (radius < high))
        if last:
            band |= radius > high  # the corners beyond Nyquist along both axes
        out[i] = power[band].sum()
    return out


def band_energy_ratios(reconstruction, original, edges=BAND_EDGES) -> np.ndarray:
    """The reconstruction's energy over the original's in each band, float64 (len(edges) - 1,)."""
    return band_energies(reconstruction, edges) / np.maximum(band_energies(original, edges), 1e-12)


def gradient_magnitude(image) -> np.ndarray:
    """Luma gradient magnitude (central differences), float64 (H - 2, W - 2)."""
    y = luma(image)
    gx = (y[1:-1, 2:] - y[1:-1, :-2]) / 2
    gy = (y[2:, 1:-1] - y[:-2, 1:-1]) / 2
    return np.hypot(gx, gy)


def gradient_histogram(image, bins=GRADIENT_BINS) -> np.ndarray:
    """Normalised histogram of :func:`gradient_magnitude`, float64 (len(bins) - 1,)."""
    counts, _ = np.histogram(gradient_magnitude(image), bins=bins)
    return counts / max(counts.sum(), 1)


def gradient_histogram_distance(reconstruction, original, bins=GRADIENT_BINS) -> float:
    """Total-variation distance (half the L1 distance) of the two gradient histograms, in [0, 1]."""
    return float(0.5 * np.abs(gradient_histogram(reconstruction, bins) - gradient_histogram(original, bins)).sum())


__all__ = ["BAND_EDGES", "GRADIENT_BINS", "band_energies", "band_energy_ratios", "gradient_histogram",
           "gradient_histogram_distance", "gradient_magnitude", "luma"]
