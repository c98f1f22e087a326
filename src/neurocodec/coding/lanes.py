"""Lane-parallel interleaved rANS: the format of coder id 1 (`triton-rans`) and its
numpy reference encoder and decoder.

The normative byte layout is in docs/format.md, section 11; this docstring is a
summary. Symbols (flattened in C order) are dealt round-robin to `L` lanes:
symbol `i` goes to lane `i % L` as that lane's step `i // L`. Each lane is an
independent rANS coder with a 32-bit state `x` kept in `[2**16, 2**32)`,
renormalised 16 bits at a time, coding with the integer frequencies of
`IntTables` (precision `p <= 16`). The lanes are grouped into `G` blocks of
`B` lanes (`L = B * G`, `B` a power of two); each block has one stream of
16-bit words shared by its lanes, interleaved in a fixed order, so a GPU
program (one per block) decodes a block with no knowledge of the others.

One coding *operation* codes a value `v` of frequency `f` and cumulative
frequency `c` at precision `q` (all integers; `f >= 1`, `c + f <= 2**q`):

* encode: if `x >= f << (32 - q)`: emit the word `x & 0xFFFF`, `x >>= 16`;
  then `x = ((x // f) << q) + (x % f) + c`;
* decode: `slot = x & (2**q - 1)`; find `v` with `c_v <= slot < c_v + f_v`;
  `x = f_v * (x >> q) + slot - c_v`; if `x < 2**16`: `x = (x << 16) | word`.

Every symbol is one operation under its table (an out-of-range symbol is the
table's escape entry), followed, for an escape only, by the bypass code of the
cpu backend: the bit length `n` (0..32) of the zigzagged value under a fixed
33-entry table (`LENGTH_FREQS`, precision 16), then its `n - 1` bits below the
leading one, the low `min(16, n - 1)` bits as one operation with `f = 1` at
precision equal to their width, then the remaining `n - 17` high bits likewise.
Operations of width 0 are skipped.

Word order in a block stream (decoder order): by step, then by operation slot
(0 = symbol, 1 = length, 2 = low bits, 3 = high bits), then by lane. The
encoder starts every lane at `x = 2**16`; the decoder checks that every lane
ends there and that every word was consumed (so garbage is nearly always
detected: a corrupt lane ends at `2**16` with probability about `2**-16`).

Segment layout (little-endian): `u8 version = 1`, `u8 log2(B)`, `u16 G`,
`G x u32` block word counts, `L x u32` final lane states, then the block
streams (u16 words) in block order. An empty input is `b""`.

The number of lanes is the encoder's choice, written in the segment, so a
decoder accepts any. `plan_lanes` picks it from the number of symbols and an
exact integer estimate of the coded size (one lane per `BYTES_PER_LANE`
estimated bytes), so the per-lane cost (the 4-byte final state, of which about
3 bytes are overhead) stays a fixed small fraction of the segment.

This module is plain numpy and exact integer arithmetic; it is the reference
the Triton kernels (`neurocodec.coding.triton_backend`) must match byte for
byte.
"""

from __future__ import annotations

import bisect
import struct
from typing import Any

import numpy as np

from ..errors import FormatError
from .corrupt import corrupt_data_is_format_error
from .identity_cache import IdentityCache
from .tables import IntTables, _as_indexes, bit_length, _check_coding_inputs, unzigzag, zigzag

__all__ = [
    "LaneCoder",
    "LaneTables",
    "lane_tables",
    "plan_lanes",
    "lane_layout",
    "FORMAT_VERSION",
    "STATE_LOW",
    "LENGTH_FREQS",
    "BYTES_PER_LANE",
    "MIN_SYMBOLS_PER_LANE",
    "DEFAULT_BLOCK_LANES",
    "MAX_PRECISION",
]

#: First byte of every non-empty segment.
FORMAT_VERSION = 1
#: Lower end of the normalised state interval [2**16, 2**32); also every lane's
#: initial encoder state and the state the decoder must end in.
STATE_LOW = 1 << 16
WORD_BITS = 16
WORD_MASK = (1 << WORD_BITS) - 1
#: Largest table precision the lane format supports (16-bit renormalisation).
MAX_PRECISION = 16
#: Lanes per block when there are at least this many lanes (one GPU warp).
DEFAULT_BLOCK_LANES = 32
MAX_LOG2_BLOCK_LANES = 10
MAX_BLOCKS = 0xFFFF
#: Encoder planning: one lane per this many estimated payload bytes ...
BYTES_PER_LANE = 768
#: ... and at least this many symbols per lane.
MIN_SYMBOLS_PER_LANE = 64
#: Upper bound on the lanes the planner chooses (a decoder accepts up to B * G).
MAX_PLANNED_LANES = 1 << 16

#: Frequencies (precision 16) of the escape bit length 0..32: 31 x 1986 then 2 x 1985.
LENGTH_FREQS = np.array([1986] * 31 + [1985] * 2, dtype=np.uint32)
assert int(LENGTH_FREQS.sum()) == 1 << 16
LENGTH_PRECISION = 16
_BYPASS_CHUNK = 16

_LENGTH_LIST = LENGTH_FREQS.astype(np.int64).tolist()
_LENGTH_CUM = (np.cumsum(LENGTH_FREQS.astype(np.int64)) - LENGTH_FREQS).tolist()
# The reference decoder reads words lane by lane (scalar Python) when at most this many
# lanes of a step need one, else with one vectorised pass over all blocks.
_SCALAR_READS = 6

_HEADER = struct.Struct("<BBH")


# ---------------------------------------------------------------------------
# Integer helpers
# ---------------------------------------------------------------------------


def _log2_q16(values: np.ndarray) -> np.ndarray:
    """floor-ish(65536 * log2(v)) for int64 v in [1, 2**32), in exact integer arithmetic.

    The integer part is the bit length; 16 fractional bits come from repeated
    squaring of a Q16 mantissa (truncating), so the result is a deterministic
    function of `v` on every machine. Used only to plan the number of lanes.
    """
    v = np.asarray(values, dtype=np.int64)
    whole = bit_length(v) - 1
    m = np.where(whole <= 16, v << np.maximum(16 - whole, 0), v >> np.maximum(whole - 16, 0))
    frac = np.zeros_like(v)
    for _ in range(16):
        m = (m * m) >> 16
        bit = m >= (1 << 17)
        frac = (frac << 1) | bit
        m = np.where(bit, m >> 1, m)
    return (whole << 16) | frac


def lane_layout(lanes: int) -> tuple[int, int]:
    """`(log2(B), G)` for a requested number of lanes (`L = B * G <= lanes`).

    At least `DEFAULT_BLOCK_LANES` lanes: blocks of 32 (one warp each), `G =
    lanes // 32` (at most 65535). Fewer: one block of the largest power of two.
    """
    lanes = int(lanes)
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    if lanes >= DEFAULT_BLOCK_LANES:
        log2_block = DEFAULT_BLOCK_LANES.bit_length() - 1
        return log2_block, min(lanes // DEFAULT_BLOCK_LANES, MAX_BLOCKS)
    return lanes.bit_length() - 1, 1


def plan_lanes(num_symbols: int, cost_q16: int) -> int:
    """The encoder's default number of lanes (before `lane_layout` rounding).

    Args:
      num_symbols: `n`.
      cost_q16: the integer size estimate in 1/65536 bits (`LaneTables.cost`).

    Returns:
      `max(1, min(estimated bytes // BYTES_PER_LANE, n // MIN_SYMBOLS_PER_LANE,
      MAX_PLANNED_LANES))`.
    """
    est_bytes = int(cost_q16) >> 19  # / 65536 bits / 8
    return max(1, min(est_bytes // BYTES_PER_LANE, int(num_symbols) // MIN_SYMBOLS_PER_LANE,
                      MAX_PLANNED_LANES))


# ---------------------------------------------------------------------------
# Prepared tables
# ---------------------------------------------------------------------------


class LaneTables:
    """`IntTables` rearranged for the lane coder (built once per tables object).

    The tables' entries are followed by the 33-entry length table (table index
    `T`), so one set of arrays serves every operation:

    Attributes:
      freq, cum: uint32 `(E + 33,)`: frequency and table-local cumulative
        frequency of every entry.
      offsets: int64 `(T + 2,)`: table `t` is entries `offsets[t]:offsets[t + 1]`;
        `t = T` is the length table.
      minima: int32 `(T,)`; sizes: int64 `(T,)` (in-range symbols per table).
      precision: `p` of the tables (<= 16).
      search_key: int64 `(E + 33,)`, `t << 16 | cum`: strictly increasing, so
        `searchsorted(search_key, t << 16 | slot, "right") - 1` is the entry
        of `slot` in table `t`.
      cost: int64 `(E,)`, `65536 * (p - log2 f)` in exact integer arithmetic
        (the size estimate that plans the lanes).
      max_entries: the longest table's entry count (bounds the binary search).
    """

    def __init__(self, tables: IntTables):
        if not isinstance(tables, IntTables):
            raise TypeError(f"tables must be an IntTables, got {type(tables).__name__}")
        p = tables.precision
        if p > MAX_PRECISION:
            raise ValueError(f"the lane coder supports table precision <= {MAX_PRECISION}, got {p}")
        self.precision = p
        self.num_tables = tables.num_tables
        self.minima = tables.minima
        self.sizes = tables.sizes.astype(np.int64)
        freq = np.concatenate([tables.freqs, LENGTH_FREQS]).astype(np.uint32)
        offsets = np.append(tables.offsets, tables.offsets[-1] + LENGTH_FREQS.size).astype(np.int64)
        lengths = np.diff(offsets)
        table_of = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
        f64 = freq.astype(np.int64)
        csum = np.cumsum(f64) - f64
        cum = csum - csum[offsets[:-1]][table_of]
        self.freq = freq
        self.cum = cum.astype(np.uint32)
        self.offsets = offsets
        self.search_key = (table_of << 16) | cum
        self.max_entries = int(lengths.max())
        e = tables.freqs.size
        self.cost = (np.int64(p) << 16) - _log2_q16(f64[:e])
        self.length_cost = (np.int64(LENGTH_PRECISION) << 16) - _log2_q16(LENGTH_FREQS.astype(np.int64))
        self.escape_entry = offsets[1:-1] - 1  # int64 (T,)
        for a in (self.freq, self.cum, self.offsets, self.search_key, self.cost, self.escape_entry):
            a.flags.writeable = False

    # -- encoder-side helpers -------------------------------------------------

    def entries(self, flat_sym: np.ndarray, flat_idx: np.ndarray):
        """Entry of every symbol and the escape mask. int32 symbols, int32 indexes."""
        local = flat_sym.astype(np.int64) - self.minima[flat_idx]
        size = self.sizes[flat_idx]
        esc = (local < 0) | (local >= size)
        local = np.where(esc, size, local)
        return self.offsets[flat_idx] + local, esc

    def total_cost(self, entry: np.ndarray, escaped_values: np.ndarray) -> int:
        """Exact integer size estimate (1/65536 bits) of symbols with these entries."""
        cost = int(self.cost[entry].sum(dtype=np.int64))
        if escaped_values.size:
            n = bit_length(zigzag(escaped_values))
            cost += int(self.length_cost[n].sum(dtype=np.int64))
            cost += int(np.maximum(n - 1, 0).sum(dtype=np.int64)) << 16
        return cost


_lane_tables_cache: IdentityCache[LaneTables] = IdentityCache()


def lane_tables(tables: IntTables) -> LaneTables:
    """The cached `LaneTables` of `tables` (dropped when `tables` is freed)."""
    if not isinstance(tables, IntTables):
        raise TypeError(f"tables must be an IntTables, got {type(tables).__name__}")
    return _lane_tables_cache.get(tables, LaneTables)


def _escape_fields(values: np.ndarray):
    """Bypass fields of escaped int32 values: (length, low, low width, high, high width), int64."""
    z = zigzag(values)
    n = bit_length(z)
    mantissa = z - np.where(n > 0, np.int64(1) << np.maximum(n - 1, 0), 0)
    wl = np.minimum(np.maximum(n - 1, 0), _BYPASS_CHUNK)
    wh = np.maximum(n - 1 - _BYPASS_CHUNK, 0)
    low = mantissa & ((np.int64(1) << wl) - 1)
    high = mantissa >> _BYPASS_CHUNK
    return n, low, wl, high, wh


# ---------------------------------------------------------------------------
# Segment packing (shared with the Triton backend)
# ---------------------------------------------------------------------------


def pack_segment(log2_block: int, final_states: np.ndarray, block_words: list[np.ndarray]) -> bytes:
    """Assemble a segment: header, block word counts, final states, block streams."""
    counts = np.array([w.size for w in block_words], dtype="<u4")
    parts = [_HEADER.pack(FORMAT_VERSION, log2_block, len(block_words)), counts.tobytes(),
             np.asarray(final_states, dtype=np.int64).astype("<u4").tobytes()]
    parts += [np.asarray(w).astype("<u2", copy=False).tobytes() for w in block_words]
    return b"".join(parts)


class Segment:
    """A parsed segment header (all lengths checked against the data).

    Attributes: log2_block, block_lanes (B), blocks (G), lanes (L), steps (S),
    counts int64 (G,) block word counts, starts int64 (G,) first word of each
    block in `words`, final int64 (L,) final states, words uint16 (sum counts,).
    """

    def __init__(self, data: Any, num_symbols: int):
        raw = memoryview(data).cast("B")
        size = raw.nbytes
        if size < _HEADER.size:
            raise FormatError(f"lane segment of {size} bytes is shorter than its {_HEADER.size}-byte header")
        version, log2_block, blocks = _HEADER.unpack_from(raw, 0)
        if version != FORMAT_VERSION:
            raise FormatError(f"lane segment version {version}, expected {FORMAT_VERSION}")
        if log2_block > MAX_LOG2_BLOCK_LANES:
            raise FormatError(f"lane segment declares 2**{log2_block} lanes per block, "
                              f"more than 2**{MAX_LOG2_BLOCK_LANES}")
        if blocks < 1:
            raise FormatError("lane segment declares 0 blocks")
        lanes = blocks << log2_block
        if lanes > num_symbols:
            raise FormatError(f"lane segment declares {lanes} lanes for {num_symbols} symbols")
        fixed = _HEADER.size + 4 * blocks + 4 * lanes
        if size < fixed:
            raise FormatError(f"lane segment of {size} bytes is shorter than its {fixed}-byte lane tables")
        counts = np.frombuffer(raw, dtype="<u4", count=blocks, offset=_HEADER.size).astype(np.int64)
        final = np.frombuffer(raw, dtype="<u4", count=lanes, offset=_HEADER.size + 4 * blocks).astype(np.int64)
        total = int(counts.sum())
        if size != fixed + 2 * total:
            raise FormatError(f"lane segment is {size} bytes; its header declares {fixed + 2 * total}")
        if int(final.min()) < STATE_LOW:
            raise FormatError("lane segment has a final state below 2**16")
        self.log2_block = log2_block
        self.block_lanes = 1 << log2_block
        self.blocks = blocks
        self.lanes = lanes
        self.steps = -(-num_symbols // lanes)
        self.counts = counts
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.final = final
        self.words = np.frombuffer(raw, dtype="<u2", count=total, offset=fixed)


# ---------------------------------------------------------------------------
# Reference encoder
# ---------------------------------------------------------------------------


def _check_tables(tables: Any) -> None:
    if not isinstance(tables, IntTables):
        raise TypeError(f"tables must be an IntTables, got {type(tables).__name__}")


def encode(symbols: Any, table_indexes: Any, tables: IntTables, lanes: int | None = None) -> bytes:
    """Reference encoder (see `LaneCoder.encode`)."""
    _check_tables(tables)
    lt = lane_tables(tables)
    sym, idx = _check_coding_inputs(symbols, table_indexes, tables.num_tables)
    flat_sym = sym.ravel()
    flat_idx = idx.ravel()
    n = flat_sym.size
    if n == 0:
        return b""
    entry, esc = lt.entries(flat_sym, flat_idx)
    esc_pos = np.flatnonzero(esc)
    if lanes is None:
        lanes = plan_lanes(n, lt.total_cost(entry, flat_sym[esc_pos]))
    log2_block, blocks = lane_layout(min(int(lanes), n))
    final, words = _encode_steps(lt, entry, esc_pos, flat_sym[esc_pos], log2_block, blocks)
    return pack_segment(log2_block, final, words)


def _encode_steps(lt: LaneTables, entry: np.ndarray, esc_pos: np.ndarray, esc_values: np.ndarray,
                  log2_block: int, blocks: int):
    """Runs the lanes; returns (final states int64 (L,), list of G uint16 word arrays)."""
    n = entry.size
    B = 1 << log2_block
    L = B * blocks
    S = -(-n // L)
    p = lt.precision
    pad = S * L - n
    freq = lt.freq.astype(np.int64)
    cum = lt.cum.astype(np.int64)
    f0 = np.concatenate([freq[entry], np.ones(pad, np.int64)]).reshape(S, L)
    c0 = np.concatenate([cum[entry], np.zeros(pad, np.int64)]).reshape(S, L)
    thr0 = f0 << (32 - p)

    n_ops = 4 if esc_pos.size else 1
    emitted = np.zeros((S, n_ops, L), dtype=bool)
    word = np.zeros((S, n_ops, L), dtype=np.uint16)

    # Escapes by step: {k: (lanes, [(high, wh, low, wl, length), ...])} as Python ints.
    esc_steps: dict[int, tuple] = {}
    if esc_pos.size:
        length, low, wl, high, wh = (a.tolist() for a in _escape_fields(esc_values))
        step_of = (esc_pos // L).tolist()
        lane_of = (esc_pos % L).tolist()
        for j, k in enumerate(step_of):
            entry_k = esc_steps.setdefault(k, ([], []))
            entry_k[0].append(lane_of[j])
            entry_k[1].append((high[j], wh[j], low[j], wl[j], length[j]))

    x = np.full(L, STATE_LOW, dtype=np.int64)
    for k in range(S - 1, -1, -1):
        esc_k = esc_steps.get(k)
        if esc_k is not None:
            # Operations 3, 2, 1 of each escaping lane (scalar Python: escapes are rare).
            lanes_k, fields = esc_k
            xs = x[lanes_k].tolist()
            for j, lane in enumerate(lanes_k):
                v = xs[j]
                high_j, wh_j, low_j, wl_j, n_j = fields[j]
                for op, value, width in ((3, high_j, wh_j), (2, low_j, wl_j)):
                    if width:
                        if v >> (32 - width):
                            emitted[k, op, lane] = True
                            word[k, op, lane] = v & WORD_MASK
                            v >>= WORD_BITS
                        v = (v << width) | value
                f = _LENGTH_LIST[n_j]
                if v >= f << WORD_BITS:
                    emitted[k, 1, lane] = True
                    word[k, 1, lane] = v & WORD_MASK
                    v >>= WORD_BITS
                v = ((v // f) << LENGTH_PRECISION) + v % f + _LENGTH_CUM[n_j]
                xs[j] = v
            x[lanes_k] = xs
        if k == S - 1 and pad:
            m = L - pad
            xs = x[:m]
            emit = xs >= thr0[k, :m]
            emitted[k, 0, :m] = emit
            word[k, 0, :m] = xs
            xs = np.where(emit, xs >> WORD_BITS, xs)
            quot, rem = np.divmod(xs, f0[k, :m])
            x[:m] = (quot << p) + rem + c0[k, :m]
        else:
            emit = x >= thr0[k]
            emitted[k, 0] = emit
            word[k, 0] = x
            x = np.where(emit, x >> WORD_BITS, x)
            quot, rem = np.divmod(x, f0[k])
            x = (quot << p) + rem + c0[k]

    # Block streams in decoder order: (step, op, lane).
    em = emitted.reshape(S, n_ops, blocks, B).transpose(2, 0, 1, 3).reshape(blocks, -1)
    wd = word.reshape(S, n_ops, blocks, B).transpose(2, 0, 1, 3).reshape(blocks, -1)
    return x, [wd[g][em[g]] for g in range(blocks)]


# ---------------------------------------------------------------------------
# Reference decoder
# ---------------------------------------------------------------------------


class _Reader:
    """Word reads of all blocks at once: in each block, needing lanes read in lane order."""

    def __init__(self, seg: Segment):
        self.words = seg.words.astype(np.int64)
        self.word_list = seg.words.tolist()
        self.log2_block = seg.log2_block
        self.shape = (seg.blocks, seg.block_lanes)
        self.next = seg.starts.copy()  # absolute position of each block's next word
        self.end = seg.starts + seg.counts

    def read(self, x: np.ndarray, need: np.ndarray) -> None:
        """x[need] = x[need] << 16 | next word of that lane's block (need: bool (L,))."""
        nb = need.reshape(self.shape)
        rank = nb.cumsum(axis=1)
        rank += (self.next - 1)[:, None]
        self.next = rank[:, -1] + 1
        if np.any(self.next > self.end):
            raise FormatError("corrupt coded data: a lane block reads past its words")
        x[need] = (x[need] << WORD_BITS) | self.words[rank[nb]]

    def word(self, lane: int) -> int:
        """The next word of `lane`'s block (scalar path, for a few lanes at a time)."""
        block = lane >> self.log2_block
        pos = int(self.next[block])
        if pos >= self.end[block]:
            raise FormatError("corrupt coded data: a lane block reads past its words")
        self.next[block] = pos + 1
        return self.word_list[pos]


def decode(data: Any, table_indexes: Any, tables: IntTables) -> np.ndarray:
    """Reference decoder (see `LaneCoder.decode`)."""
    _check_tables(tables)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    lt = lane_tables(tables)
    idx = _as_indexes(table_indexes, tables.num_tables)
    flat_idx = idx.ravel()
    n = flat_idx.size
    if n == 0:
        if memoryview(data).nbytes:
            raise FormatError(f"{memoryview(data).nbytes} bytes of data for 0 symbols")
        return np.zeros(idx.shape, dtype=np.int32)
    with corrupt_data_is_format_error():
        seg = Segment(data, n)
        out = _decode_steps(lt, seg, flat_idx)
    return out.reshape(idx.shape)


def _decode_steps(lt: LaneTables, seg: Segment, flat_idx: np.ndarray) -> np.ndarray:
    n = flat_idx.size
    L, S = seg.lanes, seg.steps
    pad = S * L - n
    p = lt.precision
    pmask = (1 << p) - 1
    idx_pad = np.concatenate([flat_idx.astype(np.int64), np.zeros(pad, np.int64)]).reshape(S, L)
    key_base = idx_pad << 16
    search_key = lt.search_key

    def find(keys):  # entry + 1 of each (table << 16 | slot)
        return np.searchsorted(search_key, keys, side="right")

    # Index-shifted copies of the entry arrays (find returns entry + 1).
    esc_next = lt.escape_entry[idx_pad] + 1
    freq = np.concatenate([[0], lt.freq]).astype(np.int64)
    cum = np.concatenate([[0], lt.cum]).astype(np.int64)

    entries = np.empty((S, L), dtype=np.int64)
    escapes: list[tuple[int, np.ndarray, np.ndarray]] = []
    reader = _Reader(seg)
    x = seg.final.copy()
    for k in range(S):
        if k == S - 1 and pad:
            need = np.zeros(L, dtype=bool)
            m = L - pad
            xs = x[:m]
            slot = xs & pmask
            e = find(key_base[k, :m] | slot)
            x[:m] = freq[e] * (xs >> p) + slot - cum[e]
            entries[k, :m] = e
            need[:m] = x[:m] < STATE_LOW
            is_esc = e == esc_next[k, :m]
        else:
            slot = x & pmask
            e = find(key_base[k] | slot)
            x = freq[e] * (x >> p) + slot - cum[e]
            entries[k] = e
            need = x < STATE_LOW
            is_esc = e == esc_next[k]
            if not (need | is_esc).any():
                continue
        count = np.count_nonzero(need)
        if count > _SCALAR_READS:
            reader.read(x, need)
        elif count:
            for lane in np.flatnonzero(need).tolist():
                x[lane] = (int(x[lane]) << WORD_BITS) | reader.word(lane)
        if is_esc.any():
            ln = np.flatnonzero(is_esc)
            escapes.append((k, ln, _decode_escapes(x, ln, reader)))
    if np.any(x != STATE_LOW):
        raise FormatError("corrupt coded data: a lane does not end in the initial state")
    if np.any(reader.next != reader.end):
        raise FormatError("corrupt coded data: words left over after the last symbol")
    flat_entries = entries.ravel()[:n] - 1
    out = flat_entries - lt.offsets[flat_idx] + lt.minima[flat_idx]
    if escapes:
        pos = np.concatenate([k * L + ln for k, ln, _ in escapes])
        values = np.concatenate([v for _, _, v in escapes])
        t = flat_idx[pos]
        lo = lt.minima[t].astype(np.int64)
        if np.any((values >= lo) & (values < lo + lt.sizes[t])):
            raise FormatError("corrupt coded data: escaped value inside its table's range")
        out[pos] = values
    return out.astype(np.int32)


def _decode_escapes(x: np.ndarray, ln: np.ndarray, reader: _Reader) -> np.ndarray:
    """Decodes the bypass fields of the escaping lanes `ln` (ascending); returns int64 values.

    Escapes are rare, so this is scalar Python: operation 1 (the bit length) for every
    escaping lane in lane order, then operation 2 (low bits), then operation 3 (high bits).
    """
    lanes = ln.tolist()
    xs = x[ln].tolist()
    lengths = []
    for j, lane in enumerate(lanes):
        v = xs[j]
        slot = v & WORD_MASK
        n = bisect.bisect_right(_LENGTH_CUM, slot) - 1
        v = _LENGTH_LIST[n] * (v >> WORD_BITS) + slot - _LENGTH_CUM[n]
        if v < STATE_LOW:
            v = (v << WORD_BITS) | reader.word(lane)
        xs[j] = v
        lengths.append(n)
    fields = [[0] * len(lanes), [0] * len(lanes)]
    for part in (0, 1):
        for j, lane in enumerate(lanes):
            n = lengths[j]
            width = min(max(n - 1, 0), _BYPASS_CHUNK) if part == 0 else max(n - 1 - _BYPASS_CHUNK, 0)
            if width:
                v = xs[j]
                fields[part][j] = v & ((1 << width) - 1)
                v >>= width
                if v < STATE_LOW:
                    v = (v << WORD_BITS) | reader.word(lane)
                xs[j] = v
    x[ln] = xs
    values = []
    for j, n in enumerate(lengths):
        z = ((1 << (n - 1)) if n else 0) | fields[0][j] | (fields[1][j] << _BYPASS_CHUNK)
        values.append(z >> 1 if z & 1 == 0 else -((z + 1) >> 1))
    return np.array(values, dtype=np.int64)


# ---------------------------------------------------------------------------
# Backend object
# ---------------------------------------------------------------------------


class LaneCoder:
    """The `lanes` backend: numpy reference of the lane-parallel rANS format.

    Use `neurocodec.coding.get_backend("lanes")`. Same API and guarantees as
    the cpu backend (exact round trip for every int32, deterministic bytes,
    `decode` raises only `FormatError` on bad data and its work is bounded by
    the number of symbols), for tables of precision <= 16. Its streams are
    the container's coder id 1, `triton-rans`; the `triton` backend writes the
    same bytes.
    """

    name = "lanes"

    def encode(self, symbols: Any, table_indexes: Any, tables: IntTables, lanes: int | None = None) -> bytes:
        """Encodes symbols, each under the table its index selects.

        Args:
          symbols: int32 array (any shape; other integer dtypes if every value fits int32).
          table_indexes: integer array of the same shape, values in `[0, T)`.
          tables: the `IntTables` (precision <= 16).
          lanes: number of lanes; None (default) plans it with `plan_lanes`.
            Rounded down by `lane_layout` and to at most the number of symbols.

        Returns:
          The segment bytes (`b""` for no symbols).

        Raises:
          TypeError: if `tables` is not an `IntTables`.
          ValueError: on a dtype, shape or index-range error, or precision > 16.
        """
        return encode(symbols, table_indexes, tables, lanes)

    def decode(self, data: Any, table_indexes: Any, tables: IntTables) -> np.ndarray:
        """Decodes a segment written by `encode` (or the Triton encoder).

        Returns:
          int32 array of shape `table_indexes.shape`.

        Raises:
          FormatError: if `data` is not a valid segment for these indexes and
            tables (checked lengths, every word consumed, every lane ending in
            its initial state, canonical escapes).
          TypeError / ValueError: on wrong argument types or indexes.
        """
        return decode(data, table_indexes, tables)
