"""Wavefront coding of a latent pyramid under the exact auto-regressive context model.

A pyramid is a list of integer latent levels, level ``l`` of shape ``(h_l, w_l)``. Its
positions are decoded in *steps*: step ``t`` holds, in every level at once, the positions
``(i, j)`` with ``j + SLOPE * i = t`` (levels are independent: the context model reads its own
level only). All their causal neighbours lie on earlier steps
(:data:`~neurocodec.entropy.arm.CONTEXT_OFFSETS`), so the decoder evaluates the exact ARM
once per step on the step's gathered contexts and makes one stepwise-coder call per step
(:mod:`neurocodec.coding.stepwise`): ``max_l (w_l + SLOPE * (h_l - 1))`` steps, no loop over
positions. The encoder knows every latent: it evaluates the ARM on all positions at once
(the same integers, :func:`~neurocodec.entropy.arm.arm_exact` being exact) and writes the
steps in the same order.

Symbol of a latent ``y`` with ARM output ``(q, i)``: ``y - floor(q / MEAN_FRACTIONS)``, under
table ``(q mod MEAN_FRACTIONS) * NUM_SCALES + i`` (:mod:`neurocodec.entropy.laplace`).

Order inside a step: by level, then by row (increasing), which fixes the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..coding.stepwise import StepwiseDecoder, encode_steps
from ..coding.tables import IntTables
from .arm import CONTEXT_OFFSETS, SLOPE, IntegerARM, arm_exact
from .laplace import MEAN_FRACTIONS, NUM_SCALES

_PAD_TOP, _PAD_SIDE = 2, 2
_DI = np.array([di for di, _ in CONTEXT_OFFSETS], dtype=np.int64)
_DJ = np.array([dj for _, dj in CONTEXT_OFFSETS], dtype=np.int64)
#: The encoder evaluates the ARM on at most this many positions at once (bounded memory).
CHUNK = 2**16


@dataclass(frozen=True)
class Schedule:
    """Where each position of a pyramid lives in one flat buffer, in decoding order.

    Attributes:
      shapes: (h_l, w_l) per level.
      buffer_size: length of the flat buffer holding every level with a zero border
        (2 rows above, 2 columns on each side).
      bases: int64 (L,), where each padded level starts in the buffer.
      positions: int64 (N,), buffer index of each position, in decoding order.
      strides: int64 (N,), the buffer row stride of each position's level (its context is
        at ``positions + di * stride + dj``, :meth:`neighbours`; 16 bytes per latent in all).
      bounds: int64 (S + 1,), step ``s`` is ``positions[bounds[s]:bounds[s + 1]]``.
    """

    shapes: tuple[tuple[int, int], ...]
    buffer_size: int
    bases: np.ndarray
    positions: np.ndarray
    strides: np.ndarray
    bounds: np.ndarray

    def neighbours(self, start: int, stop: int) -> np.ndarray:
        """Buffer indexes of the contexts of positions ``start:stop`` (in decoding order),
        int64 (stop - start, CONTEXT_SIZE); border entries are always zero."""
        return (self.positions[start:stop, None] + _DI[None] * self.strides[start:stop, None] + _DJ[None])

    def contexts(self, buffer: np.ndarray, start: int, stop: int) -> np.ndarray:
        """The context values of positions ``start:stop`` in ``buffer``, (stop - start, CONTEXT_SIZE)."""
        return buffer[self.neighbours(start, stop)]

    def levels_from_buffer(self, buffer: np.ndarray) -> list[np.ndarray]:
        """The levels (int64 (h_l, w_l) each) held in a buffer."""
        out = []
        for (h, w), base in zip(self.shapes, self.bases):
            padded = buffer[base:base + (h + _PAD_TOP) * (w + 2 * _PAD_SIDE)].reshape(h + _PAD_TOP, w + 2 * _PAD_SIDE)
            out.append(padded[_PAD_TOP:, _PAD_SIDE:_PAD_SIDE + w].copy())
        return out

    def buffer_from_levels(self, levels: list[np.ndarray]) -> np.ndarray:
        """A zero-bordered buffer (int64 (buffer_size,)) holding the levels."""
        buffer = np.zeros(self.buffer_size, dtype=np.int64)
        for (h, w), base, level in zip(self.shapes, self.bases, levels):
            padded = buffer[base:base + (h + _PAD_TOP) * (w + 2 * _PAD_SIDE)].reshape(h + _PAD_TOP, w + 2 * _PAD_SIDE)
            padded[_PAD_TOP:, _PAD_SIDE:_PAD_SIDE + w] = level
        return buffer


def make_schedule(shapes: list[tuple[int, int]]) -> Schedule:
    """The decoding schedule of a pyramid of level shapes [(h_l, w_l)] (each >= 1)."""
    bases, positions, strides = [], [], []
    base = 0
    for h, w in shapes:
        bases.append(base)
        stride = w + 2 * _PAD_SIDE
        i, j = (a.ravel() for a in np.meshgrid(np.arange(h, dtype=np.int64), np.arange(w, dtype=np.int64),
                                                 indexing="ij"))
        flat = base + (i + _PAD_TOP) * stride + (j + _PAD_SIDE)
        positions.append(flat)
        strides.append(np.full(h * w, stride, dtype=np.int64))
        base += (h + _PAD_TOP) * stride
    # decoding order: step, then level, then row
    step = np.concatenate([(np.arange(h * w) % w) + SLOPE * (np.arange(h * w) // w) for h, w in shapes])
    level_id = np.concatenate([np.full(h * w, n) for n, (h, w) in enumerate(shapes)])
    row = np.concatenate([np.arange(h * w) // w for h, w in shapes])
    order = np.lexsort((row, level_id, step))
    steps = step[order]
    counts = np.bincount(steps, minlength=int(steps.max()) + 1 if steps.size else 0)
    bounds = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    return Schedule(tuple(shapes), base, np.asarray(bases, dtype=np.int64), np.concatenate(positions)[order],
                    np.concatenate(strides)[order], bounds)


def symbols_and_tables(latents: np.ndarray, mean_q: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latents int64 (N,) and ARM outputs -> (symbols int64 (N,), table indexes int64 (N,))."""
    base = np.floor_divide(mean_q, MEAN_FRACTIONS)
    return latents - base, (mean_q - base * MEAN_FRACTIONS) * NUM_SCALES + index


def pyramid_symbols(levels: list[np.ndarray], schedule: Schedule, arm: list[np.ndarray], step_bits: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Symbols and table indexes (int64 (N,) each, in decoding order) of integer levels: the
    exact ARM on every position, in chunks of :data:`CHUNK`."""
    buffer = schedule.buffer_from_levels(levels)
    n = schedule.positions.size
    symbols, table = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    exact = IntegerARM(arm, step_bits)
    for a in range(0, n, CHUNK):
        b = min(a + CHUNK, n)
        mean_q, index = exact(schedule.contexts(buffer, a, b))
        symbols[a:b], table[a:b] = symbols_and_tables(buffer[schedule.positions[a:b]], mean_q, index)
    return symbols, table


def encode_pyramid(levels: list[np.ndarray], schedule: Schedule, arm: list[np.ndarray], step_bits: int,
                   tables: IntTables) -> bytes:
    """Encode integer levels (int64 (h_l, w_l) each, values in int32) in wavefront order."""
    symbols, table = pyramid_symbols(levels, schedule, arm, step_bits)
    return encode_steps(symbols, table, schedule.bounds, tables)


def decode_pyramid(data: bytes, schedule: Schedule, arm: list[np.ndarray], step_bits: int,
                   tables: IntTables) -> list[np.ndarray]:
    """Decode the levels written by :func:`encode_pyramid`, one ARM evaluation and one coder
    call per step. Returns int64 (h_l, w_l) per level. Raises FormatError for bad data."""
    buffer = np.zeros(schedule.buffer_size, dtype=np.float64)  # integers, exact below 2**53
    decoder = StepwiseDecoder(data, tables)
    exact = IntegerARM(arm, step_bits)
    bounds, positions, strides = schedule.bounds, schedule.positions, schedule.strides
    for s in range(bounds.size - 1):
        a, b = int(bounds[s]), int(bounds[s + 1])
        pos = positions[a:b]
        mean_q, index = exact(buffer[pos[:, None] + _DI[None] * strides[a:b, None] + _DJ[None]])
        base = mean_q >> 2 if MEAN_FRACTIONS == 4 else np.floor_divide(mean_q, MEAN_FRACTIONS)
        table = (mean_q - base * MEAN_FRACTIONS) * NUM_SCALES + index
        buffer[pos] = decoder.decode(table) + base
    decoder.finish()
    return [level.astype(np.int64) for level in schedule.levels_from_buffer(buffer)]


def decode_pyramid_sequential(data: bytes, schedule: Schedule, arm: list[np.ndarray], step_bits: int,
                              tables: IntTables) -> list[np.ndarray]:
    """Reference decoder: one position at a time (a Python loop; for tests on small pyramids).
    Same stream, same result as :func:`decode_pyramid`."""
    buffer = np.zeros(schedule.buffer_size, dtype=np.int64)
    decoder = StepwiseDecoder(data, tables)
    bounds = schedule.bounds
    for s in range(bounds.size - 1):
        a, b = int(bounds[s]), int(bounds[s + 1])
        mean_q, index = [], []
        for n in range(a, b):  # the ARM of each position alone
            m, i = arm_exact(schedule.contexts(buffer, n, n + 1), arm, step_bits)
            mean_q.append(int(m[0]))
            index.append(int(i[0]))
        mean_q, index = np.array(mean_q, dtype=np.int64), np.array(index, dtype=np.int64)
        base = np.floor_divide(mean_q, MEAN_FRACTIONS)
        values = decoder.decode((mean_q - base * MEAN_FRACTIONS) * NUM_SCALES + index) + base
        for n, v in zip(range(a, b), values):
            buffer[schedule.positions[n]] = v
    decoder.finish()
    return schedule.levels_from_buffer(buffer)
