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

LIKELIHOOD_FLOOR = 1e-9


def scale_table(num_scales: int = 64, smallest: float = 0.11, largest: float = 256.0) -> np.ndarray:
    """Log-spaced scales, float64 (num_scales,)."""
    return np.exp(np.linspace(math.log(smallest), math.log(largest), num_scales))


def gaussian_likelihood(residual: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mass of the unit interval around ``residual`` under a zero-mean Gaussian.

    Args:
      residual: float (...), ``y - mean`` (noisy during training).
      scale: float, broadcastable to ``residual``, > 0.
    Returns:
      float (...), floored at 1e-9.
    """
    v = torch.abs(residual)
    inv = 1.0 / (scale * math.sqrt(2.0))
    upper = 0.5 * torch.erfc((v - 0.5) * inv)
    lower = 0.5 * torch.erfc((v + 0.5) * inv)
    return torch.clamp(upper - lower, min=LIKELIHOOD_FLOOR)


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
