"""Integer probability tables for the entropy coders.

A set of tables is built once, when a model's weights are exported
(`build_tables`), stored next to the weights (`IntTables.to_arrays`) and loaded
back bit-exactly (`IntTables.from_arrays`). Coders never recompute a table and
never look at a floating-point probability.

Table `t` describes the symbols `minima[t] .. minima[t] + n_t - 1` plus one
extra *escape* entry, which stands for every int32 value outside that range
(such values are then sent with a bypass code, see `neurocodec.coding.cpu`).
Its frequencies are the `n_t + 1` consecutive entries
`freqs[offsets[t]:offsets[t + 1]]`, the escape being the last one. Every
frequency is at least 1 and each table sums to exactly `2**precision`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["IntTables", "build_tables", "MAX_PRECISION", "ESCAPE_LENGTH_ALPHABET", "zigzag", "unzigzag",
           "bit_length"]

#: Largest supported `precision`. constriction's categorical models work with
#: 24-bit probabilities, so finer tables could not be represented faithfully.
MAX_PRECISION = 24

#: The bypass code sends the bit length (0..32) of a zigzagged escaped value
#: with a uniform model over this many values.
ESCAPE_LENGTH_ALPHABET = 33

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_ARRAY_KEYS = ("freqs", "offsets", "minima", "precision")


# ---------------------------------------------------------------------------
# Small integer helpers shared with the coders (no floats anywhere here).
# ---------------------------------------------------------------------------


def _as_integer_array(x: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """Converts `x` with `np.asarray` and casts it losslessly to `dtype`.

    Raises ValueError if `x` does not have an integer dtype (bool included) or
    holds a value that `dtype` cannot represent. Empty inputs are accepted
    whatever their dtype (`np.asarray([])` is float64).
    """
    a = np.asarray(x)
    dtype = np.dtype(dtype)
    if a.size == 0:
        return a.astype(dtype)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{name} must have an integer dtype, got {a.dtype}")
    if a.dtype != dtype:
        info = np.iinfo(dtype)
        lo, hi = int(a.min()), int(a.max())
        if lo < info.min or hi > info.max:
            raise ValueError(
                f"{name} holds values in [{lo}, {hi}], outside the range of {dtype} "
                f"[{info.min}, {info.max}]"
            )
        a = a.astype(dtype)
    return a


def _check_coding_inputs(symbols: Any, table_indexes: Any, num_tables: int):
    """Validates `(symbols, table_indexes)` for coding against `num_tables` tables.

    Returns:
      `(symbols, table_indexes)` as int32 arrays of the common shape (unflattened).
    """
    sym = _as_integer_array(symbols, "symbols", np.int32)
    idx = _as_indexes(table_indexes, num_tables)
    if sym.shape != idx.shape:
        raise ValueError(
            f"symbols and table_indexes must have the same shape, got {sym.shape} "
            f"and {idx.shape}"
        )
    return sym, idx


def _as_indexes(table_indexes: Any, num_tables: int) -> np.ndarray:
    """`table_indexes` as an int32 array, checked to lie in `[0, num_tables)`."""
    idx = _as_integer_array(table_indexes, "table_indexes", np.int32)
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= num_tables:
            raise ValueError(
                f"table_indexes must lie in [0, {num_tables}) (the number of tables), "
                f"got values in [{lo}, {hi}]"
            )
    return idx


def zigzag(values: np.ndarray) -> np.ndarray:
    """Maps int32 values to uint32 codes 0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 (as int64)."""
    v = values.astype(np.int64)
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def unzigzag(codes: np.ndarray) -> np.ndarray:
    """Inverse of `zigzag` for int64 codes in `[0, 2**32)`; returns int64 values."""
    return np.where(codes & 1 == 0, codes >> 1, -((codes + 1) >> 1))


def bit_length(codes: np.ndarray) -> np.ndarray:
    """Number of significant bits (0..32) of each int64 code in `[0, 2**32)`."""
    t = codes.astype(np.int64, copy=True)
    length = np.zeros(t.shape, dtype=np.int64)
    for shift in (16, 8, 4, 2, 1):
        high = (t >> shift) != 0
        length += high * shift
        t = np.where(high, t >> shift, t)
    length += t != 0
    return length


# ---------------------------------------------------------------------------
# IntTables
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class IntTables:
    """A set of integer probability tables, each ending with an escape symbol.

    Plain numpy, immutable (the arrays are private read-only copies), and
    serialisable to a dict of arrays for safetensors (`to_arrays`/`from_arrays`).

    Attributes:
      freqs: uint32 array of shape `(offsets[-1],)`: all tables' frequencies,
        concatenated. Table `t` is `freqs[offsets[t]:offsets[t + 1]]`; its last
        entry is the escape symbol. Every entry is >= 1 and each table sums to
        exactly `2**precision`.
      offsets: int64 array of shape `(T + 1,)`, `offsets[0] == 0`, each table
        having at least 2 entries (one in-range symbol plus the escape).
      minima: int32 array of shape `(T,)`: the symbol value of the first entry
        of each table. Table `t` covers `minima[t] .. minima[t] + n_t - 1`
        with `n_t = offsets[t + 1] - offsets[t] - 1`; that range must fit int32.
      precision: int in `[1, MAX_PRECISION]`, the number of bits of the
        probabilities (default 16).

    Raises:
      ValueError: on construction, if the arrays are inconsistent (wrong dtype
        kind or shape, a frequency of 0, a table that does not sum to
        `2**precision`, a range that overflows int32, ...).

    Two `IntTables` compare equal when their arrays and precision are equal.
    """

    freqs: np.ndarray
    offsets: np.ndarray
    minima: np.ndarray
    precision: int = 16

    def __post_init__(self):
        precision = self.precision
        if isinstance(precision, np.ndarray):
            if precision.size != 1:
                raise ValueError(f"precision must be a single integer, got shape {precision.shape}")
            precision = precision.reshape(())[()]
        if isinstance(precision, (bool, np.bool_)) or not isinstance(
            precision, (int, np.integer)
        ):
            raise ValueError(f"precision must be an integer, got {self.precision!r}")
        precision = int(precision)
        if not 1 <= precision <= MAX_PRECISION:
            raise ValueError(f"precision must lie in [1, {MAX_PRECISION}], got {precision}")

        freqs = _as_integer_array(self.freqs, "freqs", np.uint32)
        offsets = _as_integer_array(self.offsets, "offsets", np.int64)
        minima = _as_integer_array(self.minima, "minima", np.int32)
        for name, a in (("freqs", freqs), ("offsets", offsets), ("minima", minima)):
            if a.ndim != 1:
                raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
        num_tables = minima.shape[0]
        if offsets.shape != (num_tables + 1,):
            raise ValueError(
                f"offsets must have shape (T + 1,) = ({num_tables + 1},) for "
                f"T = {num_tables} minima, got {offsets.shape}"
            )
        if offsets[0] != 0 or offsets[-1] != freqs.shape[0]:
            raise ValueError(
                f"offsets must start at 0 and end at len(freqs) = {freqs.shape[0]}, got "
                f"{int(offsets[0])} .. {int(offsets[-1])}"
            )
        lengths = np.diff(offsets)
        if num_tables and int(lengths.min()) < 2:
            t = int(np.argmin(lengths))
            raise ValueError(
                f"table {t} has {int(lengths[t])} entries; every table needs at least 2 "
                f"(one in-range symbol and the escape)"
            )
        if num_tables and int(lengths.max()) > min(2**precision, 2**MAX_PRECISION - 2):
            raise ValueError(
                f"a table has {int(lengths.max())} entries, more than "
                f"min(2**precision, 2**{MAX_PRECISION} - 2) allows"
            )
        if freqs.size and int(freqs.min()) < 1:
            raise ValueError("every frequency must be >= 1 (found a 0)")
        if num_tables:
            sums = np.add.reduceat(freqs.astype(np.int64), offsets[:-1])
            bad = np.flatnonzero(sums != 2**precision)
            if bad.size:
                t = int(bad[0])
                raise ValueError(
                    f"table {t} sums to {int(sums[t])}, expected 2**{precision} = "
                    f"{2**precision}"
                )
            top = minima.astype(np.int64) + lengths - 2
            if int(top.max()) > _INT32_MAX:
                t = int(np.argmax(top))
                raise ValueError(
                    f"table {t} covers symbols up to {int(top[t])}, beyond the int32 range"
                )

        freqs, offsets, minima = (np.array(a, copy=True) for a in (freqs, offsets, minima))
        for a in (freqs, offsets, minima):
            a.flags.writeable = False
        object.__setattr__(self, "freqs", freqs)
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "minima", minima)
        object.__setattr__(self, "precision", precision)

    # -- properties ---------------------------------------------------------

    @property
    def num_tables(self) -> int:
        """The number of tables `T`."""
        return int(self.minima.shape[0])

    @property
    def sizes(self) -> np.ndarray:
        """int64 array `(T,)`: the number `n_t` of in-range symbols of each table."""
        return np.diff(self.offsets) - 1

    def __repr__(self) -> str:
        return (
            f"IntTables(num_tables={self.num_tables}, precision={self.precision}, "
            f"entries={self.freqs.shape[0]})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IntTables):
            return NotImplemented
        return (
            self.precision == other.precision
            and np.array_equal(self.freqs, other.freqs)
            and np.array_equal(self.offsets, other.offsets)
            and np.array_equal(self.minima, other.minima)
        )

    def __hash__(self) -> int:
        return hash(
            (
                self.precision,
                self.freqs.tobytes(),
                self.offsets.tobytes(),
                self.minima.tobytes(),
            )
        )

    # -- serialisation --------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Returns the tables as a dict of numpy arrays (e.g. for safetensors).

        Returns:
          `{"freqs": uint32 (N,), "offsets": int64 (T + 1,), "minima": int32 (T,),
          "precision": int32 (1,)}`. The arrays are fresh writable copies.
        """
        return {
            "freqs": self.freqs.copy(),
            "offsets": self.offsets.copy(),
            "minima": self.minima.copy(),
            "precision": np.array([self.precision], dtype=np.int32),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any]) -> "IntTables":
        """Rebuilds tables from the dict written by `to_arrays`.

        Args:
          arrays: mapping with exactly the keys `freqs`, `offsets`, `minima` and
            `precision` (shape `()` or `(1,)`). Any integer dtype is accepted if
            the values fit the dtype of the corresponding attribute.

        Returns:
          The `IntTables`, fully validated.

        Raises:
          ValueError: if a key is missing or unexpected, or the arrays are
            inconsistent (see the class docstring).
        """
        keys = set(arrays.keys())
        missing = [k for k in _ARRAY_KEYS if k not in keys]
        extra = sorted(str(k) for k in keys - set(_ARRAY_KEYS))
        if missing or extra:
            raise ValueError(
                f"table arrays must have exactly the keys {list(_ARRAY_KEYS)}; "
                f"missing {missing}, unexpected {extra}"
            )
        precision = np.asarray(arrays["precision"])
        if precision.size != 1 or precision.dtype.kind not in "iu":
            raise ValueError(
                f"precision must be one integer, got dtype {precision.dtype} shape "
                f"{precision.shape}"
            )
        return cls(
            freqs=arrays["freqs"],
            offsets=arrays["offsets"],
            minima=arrays["minima"],
            precision=int(precision.reshape(())[()]),
        )

    # -- information content ------------------------------------------------

    def ideal_bits(self, symbols: Any, table_indexes: Any) -> float:
        """Information content of `symbols` under these tables, in bits: the sum
        of `symbol_bits` (the ideal code length the coders approach; it does not
        include the coder's final flush, at most a few 32-bit words).

        Args:
          symbols: int32 array-like (converted with `np.asarray`), any shape.
          table_indexes: integer array-like of the same shape, in `[0, T)`.

        Returns:
          The total, as a Python float (floats are fine here: this is never used
          to code).

        Raises:
          ValueError: on a dtype, shape or index-range error.
        """
        return float(np.sum(self.symbol_bits(symbols, table_indexes)))

    def symbol_bits(self, symbols: Any, table_indexes: Any) -> np.ndarray:
        """Information content of each symbol, in bits: `precision - log2(freq)`,
        where an out-of-range symbol costs its escape entry plus its bypass code,
        `log2(33)` bits for the bit length `L` of its zigzagged value and
        `max(L - 1, 0)` bits for the value.

        Args:
          symbols: int32 array-like (converted with `np.asarray`), any shape.
          table_indexes: integer array-like of the same shape, in `[0, T)`.

        Returns:
          float64 array of the symbols' shape.

        Raises:
          ValueError: on a dtype, shape or index-range error.
        """
        sym, idx = _check_coding_inputs(symbols, table_indexes, self.num_tables)
        shape = sym.shape
        sym = sym.ravel().astype(np.int64)
        idx = idx.ravel()
        sizes = self.sizes
        local = sym - self.minima[idx]
        escaped = (local < 0) | (local >= sizes[idx])
        local = np.where(escaped, sizes[idx], local)
        bits = self.precision - np.log2(self.freqs[self.offsets[idx] + local].astype(np.float64))
        if escaped.any():
            lengths = bit_length(zigzag(sym[escaped]))
            bits[escaped] += math.log2(ESCAPE_LENGTH_ALPHABET) + np.maximum(lengths - 1, 0)
        return bits.reshape(shape)


# ---------------------------------------------------------------------------
# build_tables
# ---------------------------------------------------------------------------


def _quantize(probs: np.ndarray, total: int) -> np.ndarray:
    """Integer frequencies >= 1 summing to `total`, close to `probs * total`.

    Greedy on the expected code length: start from `max(1, floor(probs * total))`,
    then hand the missing units to the entries whose code length drops most
    (`x * log(1 + 1/q)`, `x = probs * total`), or take the excess units from the
    entries (with `q > 1`) where it grows least. Ties go to the lower index, so
    the result is a deterministic function of `probs`.
    """
    x = probs * total
    q = np.maximum(np.floor(x), 1.0).astype(np.int64)
    deficit = total - int(q.sum())
    if deficit > 0:
        # sum(floor(x)) > total - len(x), so deficit < len(x): one unit each suffices.
        gain = x * np.log1p(1.0 / q)
        pick = np.argsort(-gain, kind="stable")[:deficit]
        q[pick] += 1
    while deficit < 0:
        eligible = q > 1
        safe_q = np.where(eligible, q, 2)
        loss = np.where(eligible, -x * np.log1p(-1.0 / safe_q), np.inf)
        take = min(-deficit, int(eligible.sum()))
        pick = np.argsort(loss, kind="stable")[:take]
        q[pick] -= 1
        deficit += take
    return q


def build_tables(
    pmfs: Sequence[np.ndarray],
    minima: Any,
    precision: int = 16,
    escape_mass: Optional[Union[float, Sequence[float], np.ndarray]] = None,
) -> IntTables:
    """Quantises probability mass functions into `IntTables` (export time only).

    Each pmf gets one extra entry, the escape symbol, and is quantised to
    integers >= 1 summing to `2**precision` so as to minimise the expected code
    length (a deterministic greedy rounding, see `_quantize`). This uses floats
    and is meant to run once, when weights are exported; the resulting integer
    tables are what gets stored and used for coding.

    Args:
      pmfs: sequence of T 1-D float arrays (converted to float64), the
        probabilities of the in-range symbols `minima[t], minima[t] + 1, ...`
        of each table. Non-negative and finite, with a positive sum.
      minima: int32 array-like of shape `(T,)`, the first symbol of each table.
      precision: bits of the integer probabilities, in `[1, 24]` (default 16).
        Each table needs `len(pmf) + 1 <= 2**precision`.
      escape_mass: probability given to the escape symbol. `None` (default)
        uses each pmf's missing mass, `max(0, 1 - sum(pmf))`: pmfs are read as
        probabilities of the in-range symbols and the tails they leave out are
        the escape's (a pmf summing to 1 or more is normalised and its escape
        gets the minimum frequency, 1). A float in `[0, 1)`, or one per table,
        sets it explicitly; the pmf is then normalised to `1 - escape_mass`.
        Whatever is asked, the escape frequency is at least 1.

    Returns:
      The `IntTables`.

    Raises:
      ValueError: on empty, negative, non-finite or zero-sum pmfs, mismatched
        lengths, an invalid `escape_mass`, or a table too long for `precision`.
    """
    if isinstance(pmfs, np.ndarray) and pmfs.ndim == 2:
        pmfs = list(pmfs)
    pmfs = list(pmfs)
    num_tables = len(pmfs)
    minima_arr = _as_integer_array(minima, "minima", np.int32)
    if minima_arr.shape != (num_tables,):
        raise ValueError(
            f"minima must have shape ({num_tables},) (one per pmf), got {minima_arr.shape}"
        )
    if isinstance(precision, bool) or not isinstance(precision, (int, np.integer)):
        raise ValueError(f"precision must be an integer, got {precision!r}")
    precision = int(precision)
    if not 1 <= precision <= MAX_PRECISION:
        raise ValueError(f"precision must lie in [1, {MAX_PRECISION}], got {precision}")
    total = 2**precision

    if escape_mass is None:
        escapes = [None] * num_tables
    else:
        esc = np.asarray(escape_mass, dtype=np.float64)
        if esc.ndim == 0:
            esc = np.full(num_tables, float(esc))
        if esc.shape != (num_tables,):
            raise ValueError(
                f"escape_mass must be a float or have shape ({num_tables},), got {esc.shape}"
            )
        if not np.all((esc >= 0) & (esc < 1)):
            raise ValueError("escape_mass must lie in [0, 1)")
        escapes = [float(e) for e in esc]

    freqs = []
    offsets = [0]
    for t, (pmf, esc_t) in enumerate(zip(pmfs, escapes)):
        p = np.asarray(pmf, dtype=np.float64)
        if p.ndim != 1 or p.shape[0] == 0:
            raise ValueError(f"pmf {t} must be a non-empty 1-D array, got shape {p.shape}")
        if not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError(f"pmf {t} must be finite and non-negative")
        mass = float(p.sum())
        if not mass > 0:
            raise ValueError(f"pmf {t} sums to 0")
        if p.shape[0] + 1 > min(total, 2**MAX_PRECISION - 2):
            raise ValueError(
                f"pmf {t} has {p.shape[0]} entries; with its escape that needs more than "
                f"2**precision = {total} frequencies >= 1"
            )
        if esc_t is None:
            esc_t = max(0.0, 1.0 - mass)
            scale = 1.0 if mass <= 1.0 else 1.0 / mass
        else:
            scale = (1.0 - esc_t) / mass
        probs = np.append(p * scale, esc_t)
        freqs.append(_quantize(probs / probs.sum(), total))
        offsets.append(offsets[-1] + p.shape[0] + 1)

    return IntTables(
        freqs=(np.concatenate(freqs) if freqs else np.zeros(0, np.int64)).astype(np.uint32),
        offsets=np.asarray(offsets, dtype=np.int64),
        minima=minima_arr,
        precision=precision,
    )
