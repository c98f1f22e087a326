"""Tests of neurocodec.coding: integer tables and the cpu (constriction) range coder."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
try:
    import neurocodec.coding  # noqa: F401
except ImportError:  # source checkout without an install
    sys.path.insert(0, _SRC)

from neurocodec.coding import IntTables, build_tables, get_backend  # noqa: E402
from neurocodec.coding.cpu import CpuRangeCoder  # noqa: E402
from neurocodec.errors import FormatError  # noqa: E402

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
EXTREMES = [I32_MIN, I32_MIN + 1, -65537, -65536, -32769, -1, 0, 1, 32768, 65536, I32_MAX - 1, I32_MAX]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def coder():
    return get_backend("cpu")


def gaussian_tables(num_tables=64, lo=0.11, hi=64.0, tail=1e-9, precision=16):
    from scipy.stats import norm

    scales = np.exp(np.linspace(np.log(lo), np.log(hi), num_tables))
    pmfs, minima = [], []
    for s in scales:
        k = int(np.ceil(norm.isf(tail / 2) * s))
        x = np.arange(-k, k + 1)
        pmfs.append(norm.cdf((x + 0.5) / s) - norm.cdf((x - 0.5) / s))
        minima.append(-k)
    return scales, build_tables(pmfs, np.array(minima, np.int32), precision=precision)


def small_tables():
    """Three hand-written tables (precision 8), two of them at the int32 edges."""
    return IntTables(
        freqs=np.array([200, 40, 10, 6, 2, 250, 4, 100, 100, 50, 5, 1], np.uint32),
        offsets=np.array([0, 4, 7, 12]),
        minima=np.array([-1, I32_MAX - 1, I32_MIN], np.int32),
        precision=8,
    )


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------


@st.composite
def tables_st(draw, max_tables=4, max_size=12):
    num_tables = draw(st.integers(1, max_tables))
    precision = draw(st.sampled_from([6, 8, 12, 16, 24]))
    pmfs, minima = [], []
    for _ in range(num_tables):
        n = draw(st.integers(1, min(max_size, 2**precision - 1)))
        weights = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n))
        pmf = np.asarray(weights, np.float64) + draw(st.sampled_from([0.0, 1e-3]))
        if pmf.sum() == 0:
            pmf[0] = 1.0
        minima.append(
            draw(
                st.one_of(
                    st.integers(-50, 50),
                    st.integers(I32_MIN, I32_MAX - n + 1),
                    st.just(I32_MIN),
                    st.just(I32_MAX - n + 1),
                )
            )
        )
        pmfs.append(pmf)
    escape = draw(st.one_of(st.none(), st.floats(0.0, 0.5)))
    return build_tables(pmfs, np.array(minima, np.int32), precision=precision, escape_mass=escape)


@st.composite
def problem_st(draw, max_symbols=80):
    """(tables, symbols, table_indexes) with a mix of in-range, escaped and extreme values."""
    tables = draw(tables_st())
    n = draw(st.integers(0, max_symbols))
    idx = np.array(draw(st.lists(st.integers(0, tables.num_tables - 1), min_size=n, max_size=n)),
                   dtype=np.int32)
    rel = np.array(draw(st.lists(st.integers(-3, 14), min_size=n, max_size=n)), dtype=np.int64)
    sym = np.clip(tables.minima[idx].astype(np.int64) + rel, I32_MIN, I32_MAX)
    wild = draw(
        st.lists(
            st.one_of(st.none(), st.none(), st.integers(I32_MIN, I32_MAX), st.sampled_from(EXTREMES)),
            min_size=n,
            max_size=n,
        )
    )
    for i, w in enumerate(wild):
        if w is not None:
            sym[i] = w
    shape = draw(st.sampled_from(["flat", "2d", "3d"]))
    if shape == "2d" and n % 2 == 0:
        sym, idx = sym.reshape(2, -1), idx.reshape(2, -1)
    elif shape == "3d":
        sym, idx = sym.reshape(1, n, 1), idx.reshape(1, n, 1)
    return tables, sym.astype(np.int32), idx


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------


def check_invariants(tables: IntTables):
    assert tables.freqs.dtype == np.uint32
    assert tables.offsets.dtype == np.int64
    assert tables.minima.dtype == np.int32
    assert tables.offsets.shape == (tables.num_tables + 1,)
    assert tables.freqs.min() >= 1
    sums = np.add.reduceat(tables.freqs.astype(np.int64), tables.offsets[:-1])
    assert np.all(sums == 2**tables.precision)


def test_build_tables_golden():
    # 256 * [.1, .2, .4, .2, .05 | escape .05]: the remainders go where they save most bits.
    t = build_tables([np.array([0.1, 0.2, 0.4, 0.2, 0.05])], [-2], precision=8)
    assert t.freqs.tolist() == [26, 51, 102, 51, 13, 13]
    assert t.offsets.tolist() == [0, 6] and t.minima.tolist() == [-2]
    assert t.sizes.tolist() == [5]
    # Clamping tiny probabilities to 1 overshoots; the excess is taken where it costs least.
    t = build_tables([np.array([1e-6, 0.5, 0.5 - 1e-6])], [0], precision=4)
    assert t.freqs.tolist() == [1, 7, 7, 1]


@FAST
@given(tables_st(max_tables=6, max_size=40))
def test_build_tables_invariants(tables):
    check_invariants(tables)


def test_build_tables_escape_mass():
    pmf = np.array([0.25, 0.5, 0.25])
    default = build_tables([pmf], [0])  # sums to 1: escape gets the minimum, 1
    assert default.freqs[-1] == 1
    tail = build_tables([pmf * 0.9], [0])  # missing 10 % is the escape's
    assert abs(int(tail.freqs[-1]) - 0.1 * 2**16) <= 1
    explicit = build_tables([pmf, pmf], [0, 5], escape_mass=[0.5, 0.0])
    assert explicit.freqs[3] == 2**15 and explicit.freqs[-1] == 1
    counts = build_tables([np.array([3.0, 1.0])], [0])  # unnormalised weights are normalised
    assert counts.freqs.tolist()[:2] == [49151, 16384]
    check_invariants(counts)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(pmfs=[np.array([0.5, -0.1])], minima=[0]),
        dict(pmfs=[np.array([0.5, np.nan])], minima=[0]),
        dict(pmfs=[np.array([])], minima=[0]),
        dict(pmfs=[np.zeros(3)], minima=[0]),
        dict(pmfs=[np.ones((2, 2))], minima=[0]),
        dict(pmfs=[np.ones(3)], minima=[0, 1]),
        dict(pmfs=[np.ones(3)], minima=[0.5]),
        dict(pmfs=[np.ones(16)], minima=[0], precision=4),
        dict(pmfs=[np.ones(3)], minima=[0], precision=25),
        dict(pmfs=[np.ones(3)], minima=[0], escape_mass=1.0),
        dict(pmfs=[np.ones(3)], minima=[0], escape_mass=[0.1, 0.1]),
        dict(pmfs=[np.ones(3)], minima=[I32_MAX - 1]),
    ],
)
def test_build_tables_rejects(kwargs):
    with pytest.raises(ValueError):
        build_tables(**kwargs)


def test_tables_arrays_round_trip_and_immutability():
    _, tables = gaussian_tables(num_tables=8)
    arrays = tables.to_arrays()
    assert set(arrays) == {"freqs", "offsets", "minima", "precision"}
    again = IntTables.from_arrays(arrays)
    assert again == tables and hash(again) == hash(tables)
    arrays["freqs"][0] += 1  # to_arrays hands out copies
    assert again == tables
    for a in (tables.freqs, tables.offsets, tables.minima):
        with pytest.raises(ValueError):
            a[0] = 1
    assert "num_tables=8" in repr(tables)


def test_tables_safetensors_round_trip(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    tables = small_tables()
    path = str(tmp_path / "tables.safetensors")
    st_numpy.save_file(tables.to_arrays(), path)
    assert IntTables.from_arrays(st_numpy.load_file(path)) == tables


def _broken(**changes):
    arrays = small_tables().to_arrays()
    arrays.update(changes)
    return arrays


@pytest.mark.parametrize(
    "arrays",
    [
        _broken(freqs=np.array([200, 40, 10, 6, 2, 250, 4, 100, 100, 50, 4, 2], np.uint32)[:-1]),
        _broken(freqs=np.array([200, 40, 10, 6, 2, 250, 4, 100, 100, 50, 6, 0], np.uint32)),
        _broken(freqs=np.array([200, 40, 10, 7, 2, 250, 4, 100, 100, 50, 5, 1], np.uint32)),
        _broken(freqs=np.array([200, 40, 10, 6, 2, 250, 4, 100, 100, 50, 5, 1], np.float32)),
        _broken(offsets=np.array([0, 4, 12])),
        _broken(offsets=np.array([0, 4, 7, 11])),
        _broken(offsets=np.array([[0, 4, 7, 12]])),
        _broken(minima=np.array([-1, I32_MAX, I32_MIN], np.int32)),  # range overflows int32
        _broken(minima=np.array([-1, 5], np.int32)),
        _broken(precision=np.array([9], np.int32)),
        _broken(precision=np.array([0.5])),
        {k: v for k, v in small_tables().to_arrays().items() if k != "minima"},
        _broken(extra=np.zeros(1)),
    ],
)
def test_from_arrays_rejects(arrays):
    with pytest.raises(ValueError):
        IntTables.from_arrays(arrays)


def test_tables_reject_one_entry_tables():
    with pytest.raises(ValueError, match="at least 2"):
        IntTables(freqs=np.array([256], np.uint32), offsets=np.array([0, 1]),
                  minima=np.array([0], np.int32), precision=8)


def test_ideal_bits_counts_escapes():
    t = small_tables()
    # Table 0: symbol 0 (freq 40), then 100 escapes with zigzag 200 (L = 8: 7 payload bits).
    bits = t.ideal_bits(np.array([0, 100], np.int32), np.array([0, 0], np.int32))
    assert bits == pytest.approx((8 - math.log2(40)) + (8 - math.log2(6)) + math.log2(33) + 7)
    # An escaped 0 (outside table 1's range) has an empty payload.
    assert t.ideal_bits(np.array([0]), np.array([1])) == pytest.approx(8 - math.log2(4) + math.log2(33))
    assert t.ideal_bits(np.zeros(0, np.int32), np.zeros(0, np.int32)) == 0.0


# ---------------------------------------------------------------------------
# Coder: round trips
# ---------------------------------------------------------------------------


@FAST
@given(problem_st())
def test_round_trip(problem):
    tables, sym, idx = problem
    coder = get_backend("cpu")
    data = coder.encode(sym, idx, tables)
    assert isinstance(data, bytes) and len(data) % 4 == 0
    out = coder.decode(data, idx, tables)
    assert out.dtype == np.int32 and out.shape == sym.shape
    np.testing.assert_array_equal(out, sym)


def test_round_trip_extremes(coder):
    tables = small_tables()
    values = np.array(EXTREMES + [2**15 - 1, -(2**15), 2**16 - 1, 2**17, -(2**17) - 1], np.int32)
    for t in range(tables.num_tables):
        idx = np.full(values.shape, t, np.int32)
        data = coder.encode(values, idx, tables)
        np.testing.assert_array_equal(coder.decode(data, idx, tables), values)
    # All of table 1's range, the top of int32, and every escape around it.
    sym = np.array([I32_MAX - 1, I32_MAX, I32_MAX - 2, I32_MIN, 0], np.int32)
    idx = np.ones(5, np.int32)
    np.testing.assert_array_equal(coder.decode(coder.encode(sym, idx, tables), idx, tables), sym)


def test_large_round_trip_many_tables(coder):
    rng = np.random.default_rng(1)
    pmfs = [rng.random(int(rng.integers(1, 300))) for _ in range(300)]  # > 256 tables: uint16 keys
    tables = build_tables(pmfs, rng.integers(-200, 200, 300).astype(np.int32), precision=16)
    idx = rng.integers(0, 300, (64, 500)).astype(np.int32)
    sym = (rng.integers(-5, 300, idx.shape) + tables.minima[idx]).astype(np.int32)
    sym[rng.random(idx.shape) < 0.01] = rng.integers(I32_MIN, I32_MAX, 1)[0]
    data = coder.encode(sym, idx, tables)
    np.testing.assert_array_equal(coder.decode(data, idx, tables), sym)


@FAST
@given(num_tables=st.sampled_from([1, 2, 3, 66, 2**8, 2**8 + 1, 2**16, 2**16 + 1]), n=st.integers(1, 3000),
       seed=st.integers(0, 2**32 - 1))
def test_grouping_by_table_is_the_stable_argsort(num_tables, n, seed):
    """The coder's grouping (sort keys of 8, 16 or 32 bits by the number of tables) lists
    each table's positions in increasing order, tables in increasing order: the byte
    layout depends on it."""
    from neurocodec.coding.cpu import _group

    idx = np.random.default_rng(seed).integers(0, num_tables, n).astype(np.int32)
    order, starts = _group(idx, num_tables)
    np.testing.assert_array_equal(order, np.argsort(idx, kind="stable"))
    np.testing.assert_array_equal(starts, np.concatenate([[0], np.cumsum(np.bincount(idx, minlength=num_tables))]))


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 2, 5)])
def test_empty(coder, shape):
    tables = small_tables()
    sym = np.zeros(shape, np.int32)
    assert coder.encode(sym, sym, tables) == b""
    out = coder.decode(b"", sym, tables)
    assert out.shape == shape and out.dtype == np.int32
    with pytest.raises(FormatError):
        coder.decode(b"\0\0\0\0", sym, tables)


def test_accepts_array_likes_and_other_int_dtypes(coder):
    tables = small_tables()
    data = coder.encode([0, 1, -1, 9], [0, 0, 0, 2], tables)
    assert data == coder.encode(np.array([0, 1, -1, 9], np.int64), np.array([0, 0, 0, 2], np.uint8), tables)
    np.testing.assert_array_equal(coder.decode(data, [0, 0, 0, 2], tables), [0, 1, -1, 9])
    # Non-contiguous views code like their C-order copies.
    sym = np.arange(40, dtype=np.int32).reshape(5, 8)
    idx = (np.arange(40, dtype=np.int32).reshape(5, 8) % 3)
    assert coder.encode(sym.T, idx.T, tables) == coder.encode(sym.T.copy(), idx.T.copy(), tables)
    assert coder.encode(sym.T, idx.T, tables) != coder.encode(sym, idx, tables)


# ---------------------------------------------------------------------------
# Coder: input validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sym, idx",
    [
        (np.zeros(4, np.int32), np.zeros(5, np.int32)),  # shape mismatch
        (np.zeros((2, 3), np.int32), np.zeros((3, 2), np.int32)),  # same size, other shape
        (np.zeros(4, np.int32), np.array([0, 1, 2, 3], np.int32)),  # index == T
        (np.zeros(4, np.int32), np.array([0, -1, 0, 0], np.int32)),  # negative index
        (np.zeros(4, np.float32), np.zeros(4, np.int32)),  # float symbols
        (np.zeros(4, bool), np.zeros(4, np.int32)),  # bool symbols
        (np.zeros(4, np.int32), np.zeros(4, np.float64)),  # float indexes
        (np.array([2**31], np.int64), np.zeros(1, np.int32)),  # does not fit int32
    ],
)
def test_encode_rejects(coder, sym, idx):
    with pytest.raises(ValueError) as info:
        coder.encode(sym, idx, small_tables())
    assert not isinstance(info.value, FormatError)


def test_type_errors(coder):
    with pytest.raises(TypeError):
        coder.encode(np.zeros(2, np.int32), np.zeros(2, np.int32), small_tables().to_arrays())
    with pytest.raises(TypeError):
        coder.decode("abcd", np.zeros(2, np.int32), small_tables())
    with pytest.raises(ValueError):
        coder.decode(b"", np.array([0, 3]), small_tables())


# ---------------------------------------------------------------------------
# Coder: garbage in, FormatError (or garbage) out
# ---------------------------------------------------------------------------


def _decode_or_format_error(coder, data, idx, tables):
    try:
        out = coder.decode(data, idx, tables)
    except FormatError:
        return None
    assert out.dtype == np.int32 and out.shape == np.shape(idx)
    return out


@FAST
@given(tables_st(), st.binary(max_size=256), st.integers(0, 300), st.randoms(use_true_random=False))
def test_garbage_bytes_only_raise_format_error(tables, data, n, rnd):
    idx = np.array([rnd.randrange(tables.num_tables) for _ in range(n)], np.int32)
    _decode_or_format_error(get_backend("cpu"), data, idx, tables)


@FAST
@given(problem_st(max_symbols=120), st.data())
def test_truncated_and_corrupted_streams(problem, data):
    tables, sym, idx = problem
    coder = get_backend("cpu")
    stream = coder.encode(sym, idx, tables)
    cut = data.draw(st.integers(0, max(len(stream) - 1, 0)))
    _decode_or_format_error(coder, stream[:cut], idx, tables)
    if stream:
        pos = data.draw(st.integers(0, len(stream) - 1))
        flipped = bytearray(stream)
        flipped[pos] ^= data.draw(st.integers(1, 255))
        _decode_or_format_error(coder, bytes(flipped), idx, tables)


def test_odd_lengths_and_left_over_data(coder):
    tables = small_tables()
    idx = np.zeros(50, np.int32)
    stream = coder.encode(np.zeros(50, np.int32), idx, tables)
    for k in (1, 2, 3, 5):
        with pytest.raises(FormatError, match="32-bit words"):
            coder.decode(stream[:-k], idx, tables)
    with pytest.raises(FormatError):
        coder.decode(stream + b"\xff" * 16, idx, tables)


def test_decode_work_is_bounded_by_indexes(coder):
    # A huge stream for few symbols is rejected (left-over data), not decoded.
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    with pytest.raises(FormatError):
        coder.decode(data, np.zeros(3, np.int32), small_tables())


# ---------------------------------------------------------------------------
# Determinism, format and size
# ---------------------------------------------------------------------------

GOLDEN_SYMBOLS = np.array(
    [
        [0, -1, 1, I32_MAX, 7, -5],
        [I32_MIN, I32_MIN + 3, I32_MAX - 1, 0, 1, 65536],
        [I32_MIN + 1, 3, 0, -1, 2, I32_MAX],
    ],
    np.int32,
)
GOLDEN_INDEXES = np.array([[0, 0, 0, 1, 0, 0], [2, 2, 1, 2, 0, 1], [2, 2, 1, 0, 0, 0]], np.int32)
GOLDEN_HEX = "c67b84e68bb91ddceb40f31dbe1a0b182f5b1ea9401f9f8f"


def test_golden_stream(coder):
    data = coder.encode(GOLDEN_SYMBOLS, GOLDEN_INDEXES, small_tables())
    assert data.hex() == GOLDEN_HEX, "the coder's byte format changed"
    np.testing.assert_array_equal(
        coder.decode(bytes.fromhex(GOLDEN_HEX), GOLDEN_INDEXES, small_tables()), GOLDEN_SYMBOLS
    )


def test_determinism(coder):
    _, tables = gaussian_tables(num_tables=16)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 16, 5000).astype(np.int32)
    sym = rng.integers(-40, 40, 5000).astype(np.int32)
    first = coder.encode(sym, idx, tables)
    assert coder.encode(sym, idx, tables) == first
    assert CpuRangeCoder().encode(sym, idx, tables) == first  # fresh cache
    copy = IntTables.from_arrays(tables.to_arrays())  # equal tables, other object
    assert coder.encode(sym, idx, copy) == first
    np.testing.assert_array_equal(coder.decode(first, idx, copy), sym)


def test_model_cache_follows_table_lifetime():
    coder = CpuRangeCoder()
    rng = np.random.default_rng(11)
    for _ in range(30):  # freed tables' ids get reused: a stale cache would break this
        n = int(rng.integers(1, 6))
        tables = build_tables([rng.random(n)], [0], precision=8)
        sym = rng.integers(0, n, 200).astype(np.int32)
        idx = np.zeros(200, np.int32)
        data = coder.encode(sym, idx, tables)
        np.testing.assert_array_equal(coder.decode(data, idx, tables), sym)
        del tables
    assert len(coder._cache) <= 1


def test_size_close_to_ideal(coder):
    scales, tables = gaussian_tables(num_tables=64)
    rng = np.random.default_rng(0)
    n = 200_000
    idx = rng.integers(0, 64, n).astype(np.int32)
    sym = np.rint(rng.standard_normal(n) * scales[idx]).astype(np.int32)
    sym[:20] = rng.integers(I32_MIN, I32_MAX, 20)  # a few escapes too
    data = coder.encode(sym, idx, tables)
    ideal = tables.ideal_bits(sym, idx)
    bits = 8 * len(data)
    assert ideal <= bits <= 1.005 * ideal, (bits, ideal)
    np.testing.assert_array_equal(coder.decode(data, idx, tables), sym)


def test_get_backend():
    assert get_backend("cpu") is get_backend("cpu")
    assert isinstance(get_backend("cpu"), CpuRangeCoder)
    with pytest.raises(ValueError, match="cpu"):
        get_backend("gpu")
    from neurocodec.coding import available_backends

    # "triton" (and its numpy reference "lanes") are tested in tests/test_lane_coder.py.
    assert {"cpu", "lanes", "triton"} <= set(available_backends())


def test_coding_layer_does_not_import_torch():
    code = (
        "import sys, numpy as np\n"
        "import neurocodec.coding as c\n"
        "t = c.build_tables([np.ones(3)], [0])\n"
        "c.get_backend('cpu').decode(c.get_backend('cpu').encode([1], [0], t), [0], t)\n"
        "assert 'torch' not in sys.modules, 'coding imported torch'\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)
