"""The `cpu` backend: a range coder on top of constriction.

Symbols are grouped by table: for each table present (increasing index), all
its symbols are coded in their original order as one array under one
constriction model, which is what makes constriction fast (one call per table
instead of one model per symbol). Values outside a table's range are coded as
its escape symbol and sent afterwards with a bypass code in the same stream.

Byte layout of `encode`'s output (the concatenation of constriction's
compressed 32-bit words, each little-endian; nothing else, no header, the
container stores the length):

1. for each table `t` that occurs in `table_indexes`, in increasing order:
   the symbols with index `t`, in C order, each as `s - minima[t]`, or `n_t`
   (the escape) if `s` is out of range, under
   `constriction.stream.model.Categorical(freqs_t / 2**precision, perfect=False)`
   (constriction re-quantises these exact dyadic probabilities to its 24-bit
   precision with exact integer arithmetic: entry `i` starts at
   `floor(C_i * (2**24 - n_t - 1) / 2**precision) + i`, `C_i` the cumulative
   frequency);
2. for each escaped symbol, in C order: the bit length `L` (0..32) of its
   zigzagged value `z` (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) under
   `Uniform(33)`;
3. for each escaped symbol, in C order: the `L - 1` bits of `z` below its
   leading one, the low `min(16, L - 1)` bits first under `Uniform(2**w)`,
   then, if `L > 17`, the remaining `L - 17` high bits likewise.

An empty input encodes to `b""`.
"""

from __future__ import annotations

from typing import Any

import constriction
import numpy as np

from ..errors import FormatError
from .corrupt import corrupt_data_is_format_error
from .identity_cache import IdentityCache
from .tables import (
    ESCAPE_LENGTH_ALPHABET,
    IntTables,
    _as_indexes,
    bit_length,
    _check_coding_inputs,
    unzigzag,
    zigzag,
)

__all__ = ["CpuRangeCoder", "encode_bypass", "decode_bypass"]

_queue = constriction.stream.queue
_model = constriction.stream.model

# Chunk width of the bypass code (constriction's uniform models take < 2**24 values).
_CHUNK_BITS = 16



def _sort_key(table_indexes: np.ndarray, num_tables: int) -> np.ndarray:
    """The narrowest unsigned dtype holding the indexes (numpy radix-sorts <= 16 bits)."""
    if num_tables <= 2**8:
        return table_indexes.astype(np.uint8)
    if num_tables <= 2**16:
        return table_indexes.astype(np.uint16)
    return table_indexes


def _group(flat_indexes: np.ndarray, num_tables: int):
    """Stable grouping of positions by table.

    Returns:
      `(order, starts)`: `order` int64 `(N,)` lists the positions of table 0,
      then table 1, ... each in increasing position order; the positions of
      table `t` are `order[starts[t]:starts[t + 1]]` (`starts` int64 `(T + 1,)`).
    """
    order = np.argsort(_sort_key(flat_indexes, num_tables), kind="stable")
    counts = np.bincount(flat_indexes, minlength=num_tables)
    starts = np.zeros(num_tables + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    return order, starts


def _bypass_chunks(lengths: np.ndarray):
    """Chunk widths of the bypass payload for int64 bit lengths `(K,)`.

    Returns:
      `(widths, present)`: int64 `(K, 2)` widths (low chunk, high chunk) and
      the boolean mask of chunks that are actually coded (width > 0).
    """
    mantissa = np.maximum(lengths - 1, 0)
    widths = np.stack(
        [np.minimum(mantissa, _CHUNK_BITS), np.maximum(mantissa - _CHUNK_BITS, 0)], axis=1
    )
    return widths, widths > 0


class CpuRangeCoder:
    """Range coder backend (constriction's `stream.queue`), single-threaded.

    Use `neurocodec.coding.get_backend("cpu")` rather than instantiating it.
    The instance caches one constriction model per table, built on first use,
    for every live `IntTables` it has seen (dropped when the tables are freed).
    It is safe to share between threads.

    Guarantees: `decode(encode(s, i, tables), i, tables)` returns `s` exactly
    (as int32, same shape) for any int32 `s`; the bytes are a deterministic
    function of `(s, i, tables)`; time and memory are O(N) in the number of
    symbols (plus O(table sizes) once per tables object); `decode` of arbitrary
    bytes either returns an array or raises `FormatError`, and its work is
    bounded by `len(table_indexes)`.
    """

    name = "cpu"

    def __init__(self):
        self._cache: IdentityCache[list] = IdentityCache()

    # -- model cache ----------------------------------------------------------

    def _models(self, tables: IntTables) -> list:
        """The per-table model list for `tables` (entries None until built)."""
        return self._cache.get(tables, lambda t: [None] * t.num_tables)

    @staticmethod
    def _model_for(models: list, tables: IntTables, t: int):
        model = models[t]
        if model is None:
            lo, hi = int(tables.offsets[t]), int(tables.offsets[t + 1])
            # Exact: integers below 2**24 divided by a power of two.
            probs = tables.freqs[lo:hi].astype(np.float64) / float(1 << tables.precision)
            model = _model.Categorical(probs, perfect=False)
            models[t] = model
        return model

    # -- coding ---------------------------------------------------------------

    def encode(self, symbols: Any, table_indexes: Any, tables: IntTables) -> bytes:
        """Encodes symbols, each under the table its index selects.

        Args:
          symbols: array of int32 values, any shape (array-likes such as lists
            are converted with `np.asarray`; other integer dtypes are accepted
            if every value fits int32). Every int32 value is codable: values
            outside the table's range go through the escape symbol.
          table_indexes: integer array of the same shape, values in `[0, T)`.
          tables: the `IntTables`.

        Returns:
          The compressed bytes (a multiple of 4 long; see the module docstring
          for the layout). `b""` when there are no symbols.

        Raises:
          TypeError: if `tables` is not an `IntTables`.
          ValueError: on a dtype, shape or index-range error.
        """
        _check_tables(tables)
        sym, idx = _check_coding_inputs(symbols, table_indexes, tables.num_tables)
        flat_sym = sym.ravel()
        if flat_sym.size == 0:
            return b""
        order, starts = _group(idx.ravel(), tables.num_tables)
        sorted_sym = flat_sym[order]
        models = self._models(tables)
        sizes = tables.sizes
        encoder = _queue.RangeEncoder()
        escaped_parts = []
        for t in np.flatnonzero(np.diff(starts)):
            a, b = starts[t], starts[t + 1]
            n_t = np.uint32(sizes[t])
            # seg - minimum, wrapping in int32: read as uint32 it is < n_t exactly
            # for the in-range symbols (minimum + n_t - 1 <= 2**31 - 1).
            local = np.subtract(sorted_sym[a:b], tables.minima[t]).view(np.uint32)
            if local.max() >= n_t:
                escaped = local >= n_t
                escaped_parts.append(order[a:b][escaped])
                np.minimum(local, n_t, out=local)
            encoder.encode(local.view(np.int32), self._model_for(models, tables, t))
        if escaped_parts:
            positions = np.sort(np.concatenate(escaped_parts))
            encode_bypass(encoder, flat_sym[positions])
        return encoder.get_compressed().astype("<u4", copy=False).tobytes()

    def decode(self, data: bytes, table_indexes: Any, tables: IntTables) -> np.ndarray:
        """Decodes symbols coded by `encode` with the same indexes and tables.

        Args:
          data: bytes-like (`bytes`, `bytearray`, `memoryview`), as returned by
            `encode`.
          table_indexes: integer array, the same values and shape the encoder
            was given (array-likes are converted with `np.asarray`).
          tables: the same `IntTables` the encoder used.

        Returns:
          int32 array of shape `table_indexes.shape`.

        Raises:
          FormatError: if `data` is not a valid stream for these indexes and
            tables (length not a multiple of 4, data left over after the last
            symbol, a non-canonical escape, or anything constriction rejects).
            Not every corruption is detectable (a range coder has no
            redundancy; constriction may not notice one or two extra words):
            garbage may also decode to garbage symbols. Integrity is the
            container's job (CRC32).
          TypeError: if `data` is not bytes-like or `tables` not an `IntTables`.
          ValueError: on a dtype or index-range error in `table_indexes`.
        """
        _check_tables(tables)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
        idx = _as_indexes(table_indexes, tables.num_tables)
        raw = memoryview(data).cast("B")
        if raw.nbytes % 4:
            raise FormatError(
                f"coded data must be a whole number of 32-bit words, got {raw.nbytes} bytes"
            )
        words = np.frombuffer(raw, dtype="<u4").astype(np.uint32)
        flat_idx = idx.ravel()
        n = flat_idx.size
        if n == 0:
            if words.size:
                raise FormatError(f"{words.size * 4} bytes of data for 0 symbols")
            return np.zeros(idx.shape, dtype=np.int32)
        with corrupt_data_is_format_error():
            out = self._decode(words, flat_idx, tables)
        return out.reshape(idx.shape)

    def _decode(self, words: np.ndarray, flat_idx: np.ndarray, tables: IntTables):
        order, starts = _group(flat_idx, tables.num_tables)
        models = self._models(tables)
        sizes = tables.sizes
        decoder = _queue.RangeDecoder(words)
        sorted_out = np.empty(flat_idx.size, dtype=np.int32)
        escaped_parts = []
        for t in np.flatnonzero(np.diff(starts)):
            a, b = starts[t], starts[t + 1]
            local = decoder.decode(self._model_for(models, tables, t), int(b - a))
            local = np.asarray(local, dtype=np.int32)
            if local.max() >= sizes[t]:  # the escape, n_t (the largest value decodable)
                escaped_parts.append(order[a:b][local == sizes[t]])
            # Wraps in int32 only for escapes, which are overwritten below.
            np.add(local, tables.minima[t], out=sorted_out[a:b])
        out = np.empty_like(sorted_out)
        out[order] = sorted_out
        if escaped_parts:
            positions = np.sort(np.concatenate(escaped_parts))
            values = decode_bypass(decoder, positions.size)
            t = flat_idx[positions]
            low = tables.minima[t].astype(np.int64)
            if np.any((values >= low) & (values < low + sizes[t])):
                raise FormatError("corrupt coded data: escaped value inside its table's range")
            out[positions] = values
        if not decoder.maybe_exhausted():
            raise FormatError("corrupt coded data: data left over after the last symbol")
        return out


def _check_tables(tables: Any) -> None:
    if not isinstance(tables, IntTables):
        raise TypeError(f"tables must be an IntTables, got {type(tables).__name__}")


_LENGTH_MODEL = _model.Uniform(ESCAPE_LENGTH_ALPHABET)
_UNIFORM_FAMILY = _model.Uniform()


def encode_bypass(encoder, values: np.ndarray) -> None:
    """Appends the bypass code of int32 `values` (K,) to `encoder` (layout parts 2-3).

    The escape payload of this backend, public for entropy models that code their own
    symbols with constriction (the mixture model): `encoder` is a constriction
    `stream.queue.RangeEncoder`; any int32 value is codable, in
    `log2(33)` bits of length plus the `floor(log2(2|v|))` bits below the leading one
    (about `log2|v| + 6` bits); :func:`decode_bypass` on the matching decoder returns the
    values exactly.
    """
    codes = zigzag(values)
    lengths = bit_length(codes)
    encoder.encode(lengths.astype(np.int32), _LENGTH_MODEL)
    widths, present = _bypass_chunks(lengths)
    if not present.any():
        return
    mantissa = codes - np.where(lengths > 0, np.int64(1) << np.maximum(lengths - 1, 0), 0)
    chunks = np.stack(
        [mantissa & ((np.int64(1) << widths[:, 0]) - 1), mantissa >> _CHUNK_BITS], axis=1
    )
    encoder.encode(
        chunks[present].astype(np.int32),
        _UNIFORM_FAMILY,
        (np.int64(1) << widths[present]).astype(np.int32),
    )


def decode_bypass(decoder, count: int) -> np.ndarray:
    """Reads `count` values written by :func:`encode_bypass` from a constriction
    `stream.queue.RangeDecoder`; returns them as int64 `(count,)` in int32 range.
    Raises `FormatError` on an invalid length field (corrupt data)."""
    lengths = np.asarray(decoder.decode(_LENGTH_MODEL, count), dtype=np.int64)
    if lengths.shape != (count,) or lengths.min() < 0 or lengths.max() > 32:
        raise FormatError("corrupt coded data: invalid escape length")
    widths, present = _bypass_chunks(lengths)
    chunks = np.zeros(widths.shape, dtype=np.int64)
    if present.any():
        sizes = (np.int64(1) << widths[present]).astype(np.int32)
        chunks[present] = np.asarray(decoder.decode(_UNIFORM_FAMILY, sizes), dtype=np.int64)
    lead = np.where(lengths > 0, np.int64(1) << np.maximum(lengths - 1, 0), 0)
    codes = lead | chunks[:, 0] | (chunks[:, 1] << _CHUNK_BITS)
    return unzigzag(codes)
