"""Rate-distortion rounding: the encoder's choice of latent symbols.

Plain rounding picks, for every latent, the nearest integer. That minimises the latent's
squared error but ignores its cost in bits: a latent at 0.55 from its predicted mean
under a narrow distribution costs several bits as symbol 1 and a fraction of a bit as
symbol 0, for a squared-error difference of only 0.1. :func:`rd_round` moves a symbol one
step toward the mean wherever the bits it saves outweigh the squared error it adds,
weighted per channel by what that error costs in the image.

Only the encoder changes: symbols are still symbols and any decoder reads them, and the
encoder reconstructs from the symbols it chose, so round trips stay exact. The choice is
greedy per latent against a fixed prior (the hyper-latents and thus means and scales
are decided first), which is why it is cheap: one table lookup per candidate.

The per-channel weight is ``kappa * lambda * 255**2 * energy[c]``, where ``energy[c]`` is
the squared pixel error (pixels in [0, 1], mean over colour channels, summed over
positions) that a unit error of a gain-scaled latent of channel ``c`` produces, measured
through the synthesis at export time
(:meth:`neurocodec.models.base.VariableRateCodec.measure_channel_energy`), and ``lambda``
is the quality's training trade-off; ``kappa`` = 1 would make the choice greedy-optimal
for the training loss if the synthesis were linear. ``kappa`` = :data:`RD_KAPPA` was
chosen with the session-5 default's hints on Kodak images 1-3 (BD-rate against plain rounding,
qualities 1, 2, 3, 4, 6 and 8, real files: -5.8 % at kappa 4.5, -7.0 % at 6, -7.6 % at
7.5, -8.1 % at 10, -8.3 % at 13, -8.2 % at 16; docs/models.md). The optimum is flat and
an order of magnitude above the linear estimate, an empirical fact this module does not
explain.
"""

from __future__ import annotations

import numpy as np

RD_KAPPA = 13.0


def rd_round(residual: np.ndarray, symbols: np.ndarray, indexes: np.ndarray, tables, weight: np.ndarray
             ) -> np.ndarray:
    """Symbols chosen for rate plus weighted squared error, one step from plain rounding.

    Each non-zero symbol ``s`` (the nearest integer to ``residual``) may move to
    ``s - sign(s)``, one step toward zero (the predicted mean). It moves when
    ``weight * ((r - s')**2 - (r - s)**2) < bits(s) - bits(s')`` under its table. Zeros
    never move, and no symbol moves away from zero, so the choice can only lower the
    rate of every latent.

    Args:
      residual: float64 (1, C, H, W), gain-scaled latent minus its (integer) mean.
      symbols: int32 (1, C, H, W), ``round(residual)`` (as coded without this step).
      indexes: int32 (1, C, H, W), the table of each symbol in ``tables``.
      tables: :class:`neurocodec.coding.IntTables` the symbols are coded with.
      weight: float64 broadcastable to (1, C, H, W) (typically (1, C, 1, 1)), bits per
        unit of squared latent error; 0 drops every non-zero symbol that saves bits,
        ``inf`` keeps plain rounding.
    Returns:
      int32 (1, C, H, W): the chosen symbols.
    """
    table_of = indexes.reshape(-1)

    def bits(positions: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return tables.symbol_bits(candidates, np.broadcast_to(table_of[positions], candidates.shape))

    return rd_round_by(residual, symbols, bits, weight)


def rd_round_by(residual: np.ndarray, symbols: np.ndarray, bits, weight: np.ndarray) -> np.ndarray:
    """:func:`rd_round` for any prior: ``bits(positions, candidates)`` gives the bits of int
    symbols ``candidates`` (2, n), two candidates for each of the flat (C order) ``positions``
    (n,), float64 (2, n) (a Gaussian's table lookup, a mixture's exact pmf, built once for
    both). Shapes and result as :func:`rd_round`."""
    chosen = symbols.copy()
    flat = chosen.reshape(-1)
    nonzero = np.flatnonzero(flat)  # zeros never move: only the (few) others are costed
    current = flat[nonzero]
    step_back = current - np.sign(current)
    current_bits, step_back_bits = bits(nonzero, np.stack([current, step_back]))
    bits_saved = current_bits - step_back_bits
    r = residual.reshape(-1)[nonzero]
    added_error = (r - step_back) ** 2 - (r - current) ** 2
    # index the broadcast view: no latent-sized copy of a per-channel weight
    w = np.broadcast_to(weight, symbols.shape)[np.unravel_index(nonzero, symbols.shape)]
    with np.errstate(invalid="ignore"):  # inf * 0 (a latent exactly half-way) is no move
        move = w * added_error < bits_saved
    flat[nonzero[move]] = step_back[move]
    return chosen
