"""A range coder decoded step by step: the entropy coder of wavefront (auto-regressive) decoding.

The batch coders of this layer (`cpu`, `lanes`) take every table index up front. An
auto-regressive prior knows the table indexes of a *step* (a wavefront of positions whose
causal neighbours are decoded) only once the earlier steps are decoded. This coder writes
one constriction range-coder stream in which the steps follow each other, so a decoder
asks for one step at a time:

```python
from neurocodec.coding.stepwise import encode_steps, StepwiseDecoder

data = encode_steps(symbols, table_indexes, bounds, tables)  # bounds int64 (S + 1,)
decoder = StepwiseDecoder(data, tables)
for s in range(S):
    out = decoder.decode(table_indexes[bounds[s]:bounds[s + 1]])   # int32 (n_s,)
decoder.finish()                                                  # FormatError if data is left
```

Byte layout (little-endian 32-bit words of one `constriction.stream.queue` range coder,
nothing else): for each step in order, (1) the step's symbols grouped by table in
increasing table order, each group in step order, as ``s - minima[t]`` or the escape
``n_t`` under ``Categorical(freqs_t / 2**precision, perfect=False)`` (exactly as the `cpu`
backend), then (2) the bypass code (`neurocodec.coding.cpu.encode_bypass`) of the step's
escaped values, in step order. An empty input is ``b""``.

Integer work only: the tables are `IntTables`, the probabilities handed to constriction
are exact dyadic numbers (which it re-quantises with exact integer arithmetic), so the
bytes depend on `(symbols, table_indexes, bounds, tables)` alone. Decoding arbitrary
bytes returns symbols or raises `FormatError`; its work is bounded by the number of
symbols asked for.
"""

from __future__ import annotations

from typing import Any

import constriction
import numpy as np

from ..errors import FormatError
from .corrupt import corrupt_data_is_format_error
from .cpu import decode_bypass, encode_bypass
from .tables import IntTables

__all__ = ["encode_steps", "StepwiseDecoder", "step_models"]

_queue = constriction.stream.queue
_model = constriction.stream.model


def step_models(tables: IntTables) -> list:
    """One constriction categorical model per table (list of length T), built once per
    `IntTables` object and kept on it (it is immutable, so the models never go stale)."""
    models = tables.__dict__.get("_stepwise_models")
    if models is None:
        models = []
        for t in range(tables.num_tables):
            lo, hi = int(tables.offsets[t]), int(tables.offsets[t + 1])
            probs = tables.freqs[lo:hi].astype(np.float64) / float(1 << tables.precision)  # exact
            models.append(_model.Categorical(probs, perfect=False))
        object.__setattr__(tables, "_stepwise_models", models)
    return models


def _groups(idx: np.ndarray):
    """Stable grouping of one step: (order, tables present, group starts)."""
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    cut = np.flatnonzero(sorted_idx[1:] != sorted_idx[:-1]) + 1
    starts = np.empty(cut.size + 2, dtype=np.int64)
    starts[0], starts[1:-1], starts[-1] = 0, cut, idx.size
    return order, sorted_idx[starts[:-1]], starts


def encode_steps(symbols: Any, table_indexes: Any, bounds: Any, tables: IntTables) -> bytes:
    """Encode symbols step by step.

    Args:
      symbols: int32 (N,), in decoding order (step 0's symbols first).
      table_indexes: int (N,), values in ``[0, T)``.
      bounds: int (S + 1,), non-decreasing, ``bounds[0] = 0``, ``bounds[-1] = N``: step
        ``s`` is ``symbols[bounds[s]:bounds[s + 1]]``.
      tables: the `IntTables`.
    Returns:
      bytes (a multiple of 4 long); ``b""`` for N = 0.
    Raises:
      ValueError: inconsistent shapes, indexes out of range, or bad bounds.
    """
    sym = np.ascontiguousarray(symbols, dtype=np.int64).ravel()
    idx = np.ascontiguousarray(table_indexes, dtype=np.int64).ravel()
    bounds = np.asarray(bounds, dtype=np.int64)
    if sym.shape != idx.shape:
        raise ValueError(f"symbols and table_indexes differ in shape: {sym.shape} vs {idx.shape}")
    if bounds.ndim != 1 or bounds.size < 1 or bounds[0] != 0 or bounds[-1] != sym.size or np.any(np.diff(bounds) < 0):
        raise ValueError("bounds must rise from 0 to the number of symbols")
    if sym.size == 0:
        return b""
    if idx.min() < 0 or idx.max() >= tables.num_tables:
        raise ValueError(f"table indexes must lie in [0, {tables.num_tables})")
    if sym.min() < -2**31 or sym.max() >= 2**31:
        raise ValueError("symbols must fit int32")
    models = step_models(tables)
    sizes = tables.sizes
    minima = tables.minima.astype(np.int64)
    local_all = sym - minima[idx]
    escaped_all = (local_all < 0) | (local_all >= sizes[idx])
    local_all = np.where(escaped_all, sizes[idx], local_all).astype(np.int32)
    encoder = _queue.RangeEncoder()
    for s in range(bounds.size - 1):
        a, b = int(bounds[s]), int(bounds[s + 1])
        if a == b:
            continue
        order, present, starts = _groups(idx[a:b])
        local = local_all[a:b][order]
        for g, t in enumerate(present):
            encoder.encode(local[starts[g]:starts[g + 1]], models[t])
        esc = escaped_all[a:b]
        if esc.any():
            encode_bypass(encoder, sym[a:b][esc])
    return encoder.get_compressed().astype("<u4", copy=False).tobytes()


class StepwiseDecoder:
    """Decodes a stream of :func:`encode_steps` one step at a time.

    Args:
      data: bytes-like, as written by :func:`encode_steps`.
      tables: the same `IntTables`.
    Raises:
      FormatError: a length that is not a whole number of 32-bit words.
    """

    def __init__(self, data: Any, tables: IntTables):
        raw = memoryview(data).cast("B")
        if raw.nbytes % 4:
            raise FormatError(f"coded data must be a whole number of 32-bit words, got {raw.nbytes} bytes")
        self._words = np.frombuffer(raw, dtype="<u4").astype(np.uint32)
        self._decoder = _queue.RangeDecoder(self._words) if self._words.size else None
        self._tables = tables
        self._models = step_models(tables)
        self._sizes = tables.sizes
        self._minima = tables.minima.astype(np.int64)

    def decode(self, table_indexes: Any) -> np.ndarray:
        """The next step's symbols: table_indexes int (n,) in ``[0, T)`` -> int64 (n,), values
        in int32 range.

        Raises:
          FormatError: the data ends early or is corrupt (what can be detected).
        """
        idx = np.asarray(table_indexes, dtype=np.int64).ravel()
        if idx.size == 0:
            return np.zeros(0, dtype=np.int32)
        if idx.min() < 0 or idx.max() >= self._tables.num_tables:
            raise ValueError(f"table indexes must lie in [0, {self._tables.num_tables})")
        if self._decoder is None:
            raise FormatError("coded data ends before the last symbol")
        with corrupt_data_is_format_error():
            return self._decode(idx)

    def _decode(self, idx: np.ndarray) -> np.ndarray:
        order, present, starts = _groups(idx)
        decode, models = self._decoder.decode, self._models
        parts = [decode(models[t], int(starts[g + 1] - starts[g])) for g, t in enumerate(present.tolist())]
        local = np.concatenate(parts) if len(parts) > 1 else np.asarray(parts[0])
        out = np.empty(idx.size, dtype=np.int64)
        out[order] = local
        esc = out == self._sizes[idx]
        out += self._minima[idx]
        if esc.any():
            values = decode_bypass(self._decoder, int(esc.sum()))
            t = idx[esc]
            low = self._minima[t]
            if np.any((values >= low) & (values < low + self._sizes[t])):
                raise FormatError("corrupt coded data: escaped value inside its table's range")
            out[esc] = values
        return out

    def finish(self) -> None:
        """Check that every word was used. Raises FormatError for data left over."""
        if self._decoder is not None and not self._decoder.maybe_exhausted():
            raise FormatError("corrupt coded data: data left over after the last symbol")
