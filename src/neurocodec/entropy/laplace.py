"""Discretised Laplace distributions on a grid of scales and mean fractions, and their tables.

The overfitted codec (:mod:`neurocodec.models.overfit`) codes integer latents ``y`` under a
Laplace of mean ``mu`` and scale ``b`` predicted by its context model. Both are quantised
so that a finite set of integer tables, built once at export, covers every case:

* ``mu`` on a grid of ``1 / MEAN_FRACTIONS``: ``mu = q / MEAN_FRACTIONS`` for an integer ``q``;
  the symbol is ``y - floor(mu)`` and the table is that of the fraction ``q mod MEAN_FRACTIONS``
  (a Laplace centred at ``f / MEAN_FRACTIONS`` in ``[0, 1)``), so reconstructions never depend
  on the prior and no information is lost by rounding the mean to an integer;
* ``log2 b = LOG2_SCALE_MIN + i * LOG2_SCALE_STEP`` for a scale index ``i`` in ``[0, NUM_SCALES)``.

Table ``fraction * NUM_SCALES + i`` holds the pmf; one more table (``UNIFORM_TABLE``) is
uniform over ``[0, UNIFORM_SIZE)``, for small side information (steps, scale choices).
"""

from __future__ import annotations

import math

import numpy as np
import torch

LOG2_SCALE_MIN = -4.0
LOG2_SCALE_STEP = 0.25
NUM_SCALES = 41           # log2 b from -4 to 6
MEAN_FRACTIONS = 4        # the mean's grid: quarters
MEAN_LIMIT = 2**14        # |mean| <= MEAN_LIMIT / MEAN_FRACTIONS
UNIFORM_SIZE = 64
UNIFORM_TABLE = NUM_SCALES * MEAN_FRACTIONS
NUM_TABLES = UNIFORM_TABLE + 1
TAIL_SCALES = 12.0        # a table spans about +-12 b (the rest is escaped)
PRECISION = 16


def inverse_scale_of_index(index: torch.Tensor) -> torch.Tensor:
    """Scale index (any shape) -> ``1 / b`` float32, same shape."""
    return torch.exp2(-LOG2_SCALE_MIN - LOG2_SCALE_STEP * index.float())


_LN2 = math.log(2.0)


def laplace_bits(residual: torch.Tensor, inverse_scale: torch.Tensor) -> torch.Tensor:
    """Information content (bits) of the unit interval around ``residual`` under a
    zero-mean Laplace of scale ``b = 1 / inverse_scale``: ``-log2(F(r + 1/2) - F(r - 1/2))``.

    Closed form, cheap (no ``erf``, no division), finite with finite gradients everywhere:
    with ``a = |r|``, ``u = (a - 1/2) / b``, ``v = (a + 1/2) / b``, the probability is
    ``(e^-u - e^-v) / 2`` outside the central interval, where the cost is taken in log space
    (``u + log 2 - log(1 - e^-(v - u))``, exact for any distance), and
    ``1 - (e^u + e^-v) / 2`` inside.

    Args:
      residual: float (...), ``y - mean``.
      inverse_scale: float broadcastable to ``residual``, > 0.
    Returns:
      float (...), bits >= 0.
    """
    a = torch.abs(residual)
    u = (a - 0.5) * inverse_scale
    e_v = torch.exp(-(a + 0.5) * inverse_scale)
    outside = torch.clamp(u, min=0.0) + _LN2 - torch.log(-torch.expm1(-inverse_scale))
    inside = -torch.log(torch.clamp(1.0 - 0.5 * (torch.exp(torch.clamp(u, max=0.0)) + e_v), min=1e-12))
    return torch.where(u >= 0, outside, inside) * (1.0 / _LN2)


def laplace_pmfs() -> tuple[list[np.ndarray], np.ndarray]:
    """The pmfs and minima of every table (export time only).

    Returns:
      (pmfs, minima): ``NUM_TABLES`` float64 pmfs; table ``f * NUM_SCALES + i`` is the
      Laplace of scale index ``i`` centred at ``f / MEAN_FRACTIONS``, over the integers
      ``[-R, R + 1]`` with ``R = ceil(TAIL_SCALES * b) + 1``; the last is uniform over
      ``[0, UNIFORM_SIZE)``. minima int32 (NUM_TABLES,).
    """
    pmfs, minima = [], []

    def cdf(x: np.ndarray, b: float) -> np.ndarray:
        return np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0) / b), 1.0 - 0.5 * np.exp(-np.maximum(x, 0) / b))

    for f in range(MEAN_FRACTIONS):
        centre = f / MEAN_FRACTIONS
        for i in range(NUM_SCALES):
            b = 2.0 ** (LOG2_SCALE_MIN + LOG2_SCALE_STEP * i)
            half = int(math.ceil(TAIL_SCALES * b)) + 1
            k = np.arange(-half, half + 2, dtype=np.float64)
            pmfs.append(np.maximum(cdf(k + 0.5 - centre, b) - cdf(k - 0.5 - centre, b), 0.0))
            minima.append(-half)
    pmfs.append(np.ones(UNIFORM_SIZE))
    minima.append(0)
    return pmfs, np.asarray(minima, dtype=np.int32)
