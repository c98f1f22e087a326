"""Zero-mean Gaussian scale tables for conditional coding of latents.

Symbols are ``round(y - mean)`` (DESIGN.md, decision 3), coded under a zero-mean
discretised Gaussian whose scale is chosen from a fixed, log-spaced table. The table
index, not the scale, is what the prior network outputs at coding time.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import ndtr

from .base import RATE_PROXIES, uniform_noise

def scale_table(num_scales: int = 96, log2_smallest: float = -3.25, log2_step: float = 0.125) -> np.ndarray:
    """Log-spaced scales ``2**(log2_smallest + i * log2_step)``, float64 (num_scales,):
    0.105 .. 394 by default, about 9 % apart."""
    return np.exp2(log2_smallest + log2_step * np.arange(num_scales))


SOFT_CAP_BITS = 40.0


def gaussian_bits(residual: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Information content (bits) of the unit interval around ``residual`` under a zero-mean Gaussian.

    Computed in log space (``log_ndtr``), so improbable values keep a finite cost and a
    useful gradient instead of hitting a likelihood floor whose gradient is zero.

    Args:
      residual: float (...), ``y - mean`` (noisy during training).
      scale: float, broadcastable to ``residual``, > 0.
    Returns:
      float (...), ``-log2 P`` >= 0. Above :data:`SOFT_CAP_BITS` the cost grows only
      logarithmically: such symbols are escape-coded at a few tens of bits, and a
      quadratic Gaussian tail would swamp the loss.
    """
    v = torch.abs(residual)
    upper = torch.special.log_ndtr((0.5 - v) / scale)
    lower = torch.special.log_ndtr((-0.5 - v) / scale)
    bits = -(upper + log1mexp(lower - upper)) / math.log(2.0)
    return torch.where(bits > SOFT_CAP_BITS, SOFT_CAP_BITS + torch.log1p(torch.relu(bits - SOFT_CAP_BITS)), bits)


def log1mexp(d: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(d))`` for ``d <= 0``, stable, with ``d`` capped just below 0."""
    return torch.log(-torch.expm1(torch.clamp(d, max=-1e-12)))


def gaussian_pmfs(scales: np.ndarray, tail_sigmas: float = 6.5, max_half_width: int = 4096
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """Discretised zero-mean Gaussians, one per scale, for table export.

    Returns:
      (pmfs, minima): float64 pmfs over ``[-R, R]`` with ``R = ceil(tail_sigmas * s) + 1``
      and int32 minima ``-R``.
    """
    pmfs, minima = [], []
    for s in scales:
        half = int(min(math.ceil(tail_sigmas * s) + 1, max_half_width))
        k = np.arange(-half, half + 1, dtype=np.float64)
        pmfs.append(ndtr((k + 0.5) / s) - ndtr((k - 0.5) / s))
        minima.append(-half)
    return pmfs, np.asarray(minima, dtype=np.int32)


def residual_bits(residual: torch.Tensor, scale: torch.Tensor, proxy: str = "noise",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Training-face rate (bits) of the residuals ``y - mean`` coded under scale ``scale``.

    Args:
      residual: float (...), ``y - mean`` before quantisation.
      scale: float, broadcastable to ``residual``, > 0.
      proxy: ``"noise"``: the information content of ``residual + u``, u ~ U(-0.5, 0.5)
        (Ballé et al.), a smooth relaxation that overcharges residuals coded under small
        scales: a symbol that is 0 with certainty still costs about ``1.4 * scale`` bits.
        ``"round"``: the information content of the symbol actually coded,
        ``round(residual)``, with a straight-through gradient: the coded rate itself.
      generator: source of the noise (default: torch's global generator).
    Returns:
      float (...), bits >= 0.
    """
    if proxy == "noise":
        return gaussian_bits(residual + uniform_noise(residual, generator), scale)
    if proxy == "round":
        return gaussian_bits(residual + (torch.round(residual) - residual).detach(), scale)
    raise ValueError(f"rate proxy must be one of {RATE_PROXIES}, got {proxy!r}")
