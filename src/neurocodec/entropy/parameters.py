"""Coding the per-image network parameters of an overfitted codec.

The stream of an overfitted image carries its own networks: integer tensors (parameters
divided by their module's quantisation step ``2**-k``) and the step exponents ``k``. They are
coded in one stepwise range-coder stream (:mod:`neurocodec.coding.stepwise`), two steps:

1. side information under the uniform table (:data:`~neurocodec.entropy.laplace.UNIFORM_TABLE`):
   the step exponent of each module, then one scale index per tensor;
2. every tensor in order, flattened in C order, under the zero-mean Laplace table of its
   scale index (the encoder picks the index that codes the tensor in the fewest bits).

The decoder knows the shapes (from the architecture's config) and the number of modules;
it checks every side-information value and raises ``FormatError`` for one out of range.
"""

from __future__ import annotations

import numpy as np

from ..coding.stepwise import StepwiseDecoder, encode_steps
from ..coding.tables import IntTables
from ..errors import FormatError
from .laplace import NUM_SCALES, UNIFORM_TABLE

#: Step exponents lie in [0, MAX_STEP_BITS].
MAX_STEP_BITS = 15
#: Integer parameters are clamped to [-PARAMETER_LIMIT, PARAMETER_LIMIT) by the encoder and
#: checked by the decoder.
PARAMETER_LIMIT = 2**20


def best_scale(values: np.ndarray, tables: IntTables) -> int:
    """The zero-mean table (scale index in [0, NUM_SCALES)) coding ``values`` in fewest bits."""
    flat = np.asarray(values, dtype=np.int32).ravel()
    if flat.size == 0:
        return 0
    costs = [tables.ideal_bits(flat, np.full(flat.shape, i, dtype=np.int32)) for i in range(NUM_SCALES)]
    return int(np.argmin(costs))


def encode_parameters(step_bits: list[int], tensors: list[np.ndarray], tables: IntTables) -> bytes:
    """Encode step exponents (ints in [0, MAX_STEP_BITS]) and integer tensors (any shapes,
    values in [-PARAMETER_LIMIT, PARAMETER_LIMIT)) -> bytes."""
    if any(not 0 <= k <= MAX_STEP_BITS for k in step_bits):
        raise ValueError(f"step exponents must lie in [0, {MAX_STEP_BITS}], got {step_bits}")
    flats = [np.asarray(t, dtype=np.int64).ravel() for t in tensors]
    if any(f.size and (f.min() < -PARAMETER_LIMIT or f.max() >= PARAMETER_LIMIT) for f in flats):
        raise ValueError("integer parameters out of range")
    scales = [best_scale(f, tables) for f in flats]
    side = np.array(list(step_bits) + scales, dtype=np.int64)
    body = np.concatenate(flats) if flats else np.zeros(0, dtype=np.int64)
    body_tables = np.concatenate([np.full(f.size, s, dtype=np.int64) for f, s in zip(flats, scales)]) \
        if flats else np.zeros(0, dtype=np.int64)
    symbols = np.concatenate([side, body])
    indexes = np.concatenate([np.full(side.size, UNIFORM_TABLE, dtype=np.int64), body_tables])
    return encode_steps(symbols, indexes, [0, side.size, symbols.size], tables)


def decode_parameters(data: bytes, shapes: list[tuple[int, ...]], modules: int, tables: IntTables
                      ) -> tuple[list[int], list[np.ndarray]]:
    """Decode what :func:`encode_parameters` wrote.

    Args:
      shapes: the shape of every tensor, in order.
      modules: how many step exponents precede the scale indexes.
    Returns:
      (step exponents, int64 tensors of the given shapes).
    Raises:
      FormatError: corrupt data or a side-information value out of range.
    """
    decoder = StepwiseDecoder(data, tables)
    side = decoder.decode(np.full(modules + len(shapes), UNIFORM_TABLE, dtype=np.int64)).astype(np.int64)
    steps, scales = side[:modules], side[modules:]
    if np.any(steps > MAX_STEP_BITS) or np.any(scales >= NUM_SCALES) or np.any(side < 0):
        raise FormatError("corrupt parameter segment: a step exponent or scale index out of range")
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    body = decoder.decode(np.repeat(scales, sizes)).astype(np.int64)
    decoder.finish()
    if body.size and (body.min() < -PARAMETER_LIMIT or body.max() >= PARAMETER_LIMIT):
        raise FormatError("corrupt parameter segment: a parameter out of range")
    tensors, start = [], 0
    for shape, size in zip(shapes, sizes):
        tensors.append(body[start:start + size].reshape(shape))
        start += size
    return [int(k) for k in steps], tensors
