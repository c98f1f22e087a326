"""The quality head: an unscaled prediction plus a quality's gain -> coded mean and table index.

Every prior network of the hyperprior family (hyper-synthesis, context and mixture heads)
predicts the distribution of the *unscaled* latents: a mean on a ``2**-mean_bits`` grid
and a log2-scale on a ``2**-LOG_BITS`` grid. Latents are coded as ``y * g`` for the
quality's per-channel gain ``g``, so the coded distribution has mean ``round(g * mean)``
(an integer: reconstructions never depend on the prior) and log2-scale
``log2-scale + log2 g``, which picks one of the ``NUM_SCALES`` zero-mean scale tables.
Because the gain enters here instead of being learned by the networks, one prior serves
all qualities. The training face (:func:`scale_prior`) rounds straight-through; the coding
face (:func:`scale_prior_exact`) is integer arithmetic with the weight file's exp2 table,
so encoder and decoder agree on every mean and index.
"""

from __future__ import annotations

import math

import torch

from .fixedpoint import round_ste

# Scale table: log2(scale) = LOG2_SCALE_MIN + index * LOG2_SCALE_STEP; in the exact path
# log-scales are integers in units of 2**-LOG_BITS.
LOG_BITS = 8
LOG2_SCALE_MIN = -3.25
LOG2_SCALE_STEP = 0.125
NUM_SCALES = 96
GAIN_BITS = 16          # fractional bits of the fixed-point gain multiplying the means
# The scale-table step in units of 2**-LOG_BITS is 2**_STEP_BITS (a power of two, which the
# exact index computation relies on: it divides by shifting).
_STEP_BITS = LOG_BITS + int(math.log2(LOG2_SCALE_STEP))
assert 2.0**_STEP_BITS == LOG2_SCALE_STEP * 2**LOG_BITS, "LOG2_SCALE_STEP must be a power of two"
QUALITY_FRACTION_BITS = 16


def scale_prior(mean_u: torch.Tensor, log_scale_u: torch.Tensor, log2_gain: torch.Tensor,
                num_scales: int = NUM_SCALES) -> tuple[torch.Tensor, torch.Tensor]:
    """Training face of the quality head: unscaled prediction -> coded mean and table index.

    For latents coded as ``y * g`` the coded distribution has mean ``round(g * mean_u)`` (an
    integer, so reconstructions never depend on the prior) and log2-scale
    ``log_scale_u + log2 g``, which selects the table. Shared by every prior network
    (hyper-synthesis, context models), so one prior serves all qualities.

    Args:
      mean_u, log_scale_u: float32 (B, C, H, W) on their grids (see
        :meth:`FixedPointHyperSynthesis.unscaled`).
      log2_gain: float32 (B, C, 1, 1) (or broadcastable).
    Returns:
      (mean, index): float32 (B, C, H, W), integers, straight-through gradients.
    """
    mean = round_ste(mean_u * torch.exp2(log2_gain))
    position = (log_scale_u + log2_gain - LOG2_SCALE_MIN) / LOG2_SCALE_STEP
    index = torch.clamp(round_ste(position), 0, num_scales - 1)
    return mean, index


def scale_prior_exact(mean_u: torch.Tensor, log_scale_u: torch.Tensor, log2_gain: torch.Tensor,
                      exp2: torch.Tensor, mean_bits: int = 8, num_scales: int = NUM_SCALES
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Coding face of :func:`scale_prior`, integer arithmetic only.

    The table index is ``floor((log_scale_u + log2_gain - log2_scale_min + step/2) / step)``
    clamped to the tables; the mean is ``round(mean_u * gain)`` with ``gain`` from the
    integer exp2 table (:func:`fixed_point_gain`).

    Args:
      mean_u: int64 (1, C, H, W) in units of ``2**-mean_bits``.
      log_scale_u: int64 (1, C, H, W) in units of ``2**-LOG_BITS``.
      log2_gain: integer (C,) in units of ``2**-LOG_BITS`` (:func:`quality_log2_gain`).
      exp2: int64 (2**LOG_BITS,) from :func:`exp2_table` (stored in the weight file).
    Returns:
      (mean, index): int64 (1, C, H, W) each.
    """
    lg = log2_gain.to(torch.int64).view(1, -1, 1, 1)
    # Both divisors are powers of two, so floor division is an arithmetic right shift
    # (exact on int64, and several times faster than a division).
    offset = lg - int(LOG2_SCALE_MIN * 2**LOG_BITS) + (1 << (_STEP_BITS - 1))  # (1, C, 1, 1)
    index = torch.add(log_scale_u, offset).bitwise_right_shift_(_STEP_BITS).clamp_(0, num_scales - 1)
    gain = fixed_point_gain(lg, exp2)           # 2**-GAIN_BITS units
    shift = mean_bits + GAIN_BITS
    mean = torch.mul(mean_u, gain).add_(1 << (shift - 1)).bitwise_right_shift_(shift)
    return mean, index


def exp2_table() -> torch.Tensor:
    """int64 (2**LOG_BITS,): ``round(2**(f / 2**LOG_BITS) * 2**GAIN_BITS)``. Built at export
    and stored in the weight file, so decoders never evaluate exp2 themselves."""
    f = torch.arange(2**LOG_BITS, dtype=torch.float64) / 2**LOG_BITS
    return torch.round(torch.exp2(f) * 2**GAIN_BITS).to(torch.int64)


def fixed_point_gain(log2_gain: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Integer ``2**(log2_gain / 2**LOG_BITS) * 2**GAIN_BITS`` (int64), from the exp2 table."""
    whole = torch.div(log2_gain, 2**LOG_BITS, rounding_mode="floor")
    mantissa = table.to(torch.int64)[log2_gain - whole * 2**LOG_BITS]
    up = torch.clamp(whole, min=0)
    down = torch.clamp(-whole, min=0)
    return torch.div(mantissa * torch.pow(2, up), torch.pow(2, down), rounding_mode="floor")


def quality_log2_gain(table: torch.Tensor, quality: float) -> torch.Tensor:
    """Interpolate integer log2-gains (8, C) at a quality in [1, 8], exactly.

    The fraction ``t = round((q - k) * 2**16)`` is exact for the float32 qualities streams
    store, and the interpolation is integer arithmetic. Returns int64 (C,).
    """
    k = min(max(int(quality), 1), table.shape[0] - 1)
    t = int(round((float(quality) - k) * 2**QUALITY_FRACTION_BITS))
    low, high = table[k - 1].to(torch.int64), table[k].to(torch.int64)
    half = 1 << (QUALITY_FRACTION_BITS - 1)
    return low + torch.div((high - low) * t + half, 1 << QUALITY_FRACTION_BITS, rounding_mode="floor")
