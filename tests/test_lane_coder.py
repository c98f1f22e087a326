"""Tests of the lane-parallel rANS format (container coder `triton-rans`): the numpy
reference (`neurocodec.coding.lanes`) and the Triton kernels
(`neurocodec.coding.triton_backend`), which run here under the Triton interpreter
(`TRITON_INTERPRET=1`, CPU tensors) and are compiled ahead of time for sm_80 / sm_90.

The Triton tests skip (with the reason) when triton is not installed; the Kodak test
skips when ../shared/data/kodak is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurocodec.coding import IntTables, build_tables, get_backend, lanes
from neurocodec.errors import FormatError

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
EXTREMES = [I32_MIN, I32_MIN + 1, -65537, -65536, -1, 0, 1, 65536, 1000000, I32_MAX]
KODAK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kodak"
SRC = str(Path(__file__).resolve().parents[1] / "src")
REF = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The interpreter runs a few dozen milliseconds per lane step: few examples, few steps.
INTERP = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def tiny_tables():
    """One table at precision 4: -1, 0, 1 and the escape, frequencies 4, 8, 3, 1."""
    return IntTables(freqs=np.array([4, 8, 3, 1], np.uint32), offsets=np.array([0, 4]),
                     minima=np.array([-1], np.int32), precision=4)


def gaussian_tables(num_tables=24, precision=16):
    scales = np.exp(np.linspace(np.log(0.15), np.log(40.0), num_tables))
    pmfs, minima = [], []
    for s in scales:
        k = int(np.ceil(6 * s)) + 1
        x = np.arange(-k, k + 1)
        pmfs.append(np.exp(-0.5 * (x / s) ** 2))
        minima.append(-k)
    return scales, build_tables(pmfs, np.array(minima, np.int32), precision=precision, escape_mass=1e-4)


@st.composite
def tables_st(draw, max_tables=3, max_size=10):
    num_tables = draw(st.integers(1, max_tables))
    precision = draw(st.sampled_from([4, 8, 12, 16]))
    pmfs, minima = [], []
    for _ in range(num_tables):
        n = draw(st.integers(1, min(max_size, 2**precision - 1)))
        pmfs.append(np.asarray(draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n)), np.float64) + 1e-3)
        minima.append(draw(st.one_of(st.integers(-20, 20), st.just(I32_MIN), st.just(I32_MAX - n + 1))))
    return build_tables(pmfs, np.array(minima, np.int32), precision=precision,
                        escape_mass=draw(st.sampled_from([None, 0.05, 0.3])))


@st.composite
def problem_st(draw, max_symbols=120):
    """(tables, symbols, indexes): in-range values, escapes and int32 extremes."""
    tables = draw(tables_st())
    n = draw(st.integers(0, max_symbols))
    idx = np.array(draw(st.lists(st.integers(0, tables.num_tables - 1), min_size=n, max_size=n)), np.int32)
    rel = np.array(draw(st.lists(st.integers(-2, 12), min_size=n, max_size=n)), np.int64)
    sym = np.clip(tables.minima[idx].astype(np.int64) + rel, I32_MIN, I32_MAX)
    wild = draw(st.lists(st.one_of(st.none(), st.none(), st.none(), st.integers(I32_MIN, I32_MAX),
                                   st.sampled_from(EXTREMES)), min_size=n, max_size=n))
    for i, w in enumerate(wild):
        if w is not None:
            sym[i] = w
    return tables, sym.astype(np.int32), idx


def lane_count(data: bytes, n: int) -> int:
    return lanes.Segment(data, n).lanes


# ---------------------------------------------------------------------------
# Format and reference coder
# ---------------------------------------------------------------------------


def test_golden_streams():
    """The two worked examples of docs/format.md, section 11 (checked by hand there)."""
    t = tiny_tables()
    data = lanes.encode(np.array([0, 1, 0, -1, 7], np.int32), np.zeros(5, np.int32), t, lanes=2)
    assert data.hex(" ") == "01 01 01 00 00 00 00 00 37 b0 c9 41 5d 55 15 00"
    data = lanes.encode(np.array([0, 1, 0, -1, 7, 1000000], np.int32), np.zeros(6, np.int32), t, lanes=2)
    assert data.hex(" ") == "01 01 01 00 02 00 00 00 37 b0 c9 41 8c d7 02 00 33 da 0e 00"
    assert lanes.decode(data, np.zeros(6, np.int32), t).tolist() == [0, 1, 0, -1, 7, 1000000]


def test_docs_hex_dump_matches_encoder():
    import re

    docs = Path(__file__).resolve().parents[1] / "docs" / "format.md"
    if not docs.is_file():
        pytest.skip("docs/format.md not present (installed package)")
    m = re.search(r"<!-- golden: lanes-example -->\s*```text\n(.*?)```", docs.read_text(), re.S)
    assert m, "docs/format.md lacks the annotated hex dump of the lane example"
    dumped = bytearray()
    for line in m.group(1).splitlines():
        offset, rest = line.split(None, 1)
        assert int(offset, 16) == len(dumped)
        dumped += bytes(int(b, 16) for b in re.match(r"((?:[0-9a-f]{2} )+)", rest + " ").group(1).split())
    sym = np.array([0, 1, 0, -1, 7, 1000000], np.int32)
    assert bytes(dumped) == lanes.encode(sym, np.zeros(6, np.int32), tiny_tables(), lanes=2)


def test_layout_fields():
    _, t = gaussian_tables()
    rng = np.random.default_rng(0)
    n = 5000
    idx = rng.integers(0, t.num_tables, n).astype(np.int32)
    sym = rng.integers(-3, 4, n).astype(np.int32)
    data = lanes.encode(sym, idx, t, lanes=100)  # 3 blocks of 32
    assert data[:4] == bytes([1, 5, 3, 0])
    seg = lanes.Segment(data, n)
    assert (seg.block_lanes, seg.blocks, seg.lanes, seg.steps) == (32, 3, 96, -(-n // 96))
    assert len(data) == 4 + 4 * 3 + 4 * 96 + 2 * int(seg.counts.sum())
    assert np.all((seg.final >= 2**16) & (seg.final < 2**32))


@REF
@given(problem_st(), st.one_of(st.none(), st.integers(1, 200)))
def test_reference_round_trip(problem, lane_request):
    tables, sym, idx = problem
    data = lanes.encode(sym, idx, tables, lanes=lane_request)
    assert data == lanes.encode(sym, idx, tables, lanes=lane_request)  # deterministic
    if sym.size == 0:
        assert data == b""
    out = lanes.decode(data, idx, tables)
    assert out.dtype == np.int32 and out.shape == sym.shape
    np.testing.assert_array_equal(out, sym)


def test_shapes_and_backend_object():
    _, t = gaussian_tables()
    rng = np.random.default_rng(1)
    idx = rng.integers(0, t.num_tables, (2, 3, 40)).astype(np.int32)
    sym = rng.integers(-5, 6, idx.shape).astype(np.int32)
    coder = get_backend("lanes")
    assert coder is get_backend("lanes") and coder.name == "lanes"
    out = coder.decode(coder.encode(sym, idx, t), idx, t)
    assert out.shape == (2, 3, 40)
    np.testing.assert_array_equal(out, sym)


def test_empty_and_wrong_inputs():
    t = tiny_tables()
    empty = np.zeros(0, np.int32)
    assert lanes.encode(empty, empty, t) == b""
    assert lanes.decode(b"", empty, t).shape == (0,)
    with pytest.raises(FormatError):
        lanes.decode(b"\x01", empty, t)
    with pytest.raises(ValueError, match="precision"):
        lanes.encode([0], [0], build_tables([np.ones(3)], [0], precision=20))
    with pytest.raises(ValueError):
        lanes.encode([0, 1], [0], t)
    with pytest.raises(ValueError):
        lanes.encode([0], [1], t)
    with pytest.raises(TypeError):
        lanes.decode("text", [0], t)
    with pytest.raises(TypeError):
        lanes.encode([0], [0], "tables")


def test_lane_plan():
    assert lanes.lane_layout(1) == (0, 1)
    assert lanes.lane_layout(31) == (4, 1)
    assert lanes.lane_layout(32) == (5, 1)
    assert lanes.lane_layout(100) == (5, 3)
    assert lanes.lane_layout(10**9) == (5, 0xFFFF)
    per_lane = lanes.BYTES_PER_LANE
    assert lanes.plan_lanes(10, 10**12) == 1  # few symbols: never more than n / 64 lanes
    assert lanes.plan_lanes(10**6, (100 * per_lane) << 19) == 100
    assert lanes.plan_lanes(10**6, 0) == 1


def test_integer_log2_is_close():
    f = np.arange(1, 2**16 + 1, dtype=np.int64)
    approx = lanes._log2_q16(f) / 65536.0
    assert np.all(np.abs(approx - np.log2(f)) < 2**-13)


def test_size_estimate_matches_information_content():
    scales, t = gaussian_tables()
    rng = np.random.default_rng(2)
    n = 50000
    idx = rng.integers(0, t.num_tables, n).astype(np.int32)
    sym = np.rint(rng.standard_normal(n) * scales[idx]).astype(np.int32)
    sym[:10] = 10**6  # escapes
    lt = lanes.lane_tables(t)
    entry, esc = lt.entries(sym, idx)
    est = lt.total_cost(entry, sym[esc]) / 65536.0
    assert abs(est - t.ideal_bits(sym, idx)) < 1e-3 * t.ideal_bits(sym, idx) + 8


def test_overhead_against_cpu_coder_on_synthetic_latents():
    """Planned lanes keep the lane format within 1 % of the cpu coder (Kodak: see below)."""
    scales, t = gaussian_tables()
    rng = np.random.default_rng(3)
    n = 300_000
    idx = rng.integers(0, t.num_tables, n).astype(np.int32)
    sym = np.rint(rng.standard_normal(n) * scales[idx]).astype(np.int32)
    cpu = get_backend("cpu").encode(sym, idx, t)
    data = lanes.encode(sym, idx, t)
    assert lane_count(data, n) >= 32
    assert len(data) <= 1.01 * len(cpu), (len(data), len(cpu))
    np.testing.assert_array_equal(lanes.decode(data, idx, t), sym)


def test_garbage_raises_format_error_quickly():
    scales, t = gaussian_tables()
    rng = np.random.default_rng(4)
    n = 4000
    idx = rng.integers(0, t.num_tables, n).astype(np.int32)
    sym = np.rint(rng.standard_normal(n) * scales[idx]).astype(np.int32)
    sym[::97] = rng.integers(I32_MIN, I32_MAX, sym[::97].size)
    data = lanes.encode(sym, idx, t, lanes=64)
    structural = [data[:-2], data + b"\0\0", data[:3], bytes([2]) + data[1:], data[:1] + bytes([11]) + data[2:],
                  data[:2] + b"\0\0" + data[4:], data[:2] + b"\xff\xff" + data[4:],
                  data[:4] + b"\0\0\0\0" + data[8:]]
    for junk in structural:
        with pytest.raises(FormatError):
            lanes.decode(junk, idx, t)
    # Flipped bits: an error or wrong symbols (bypass bits of escapes carry no redundancy),
    # never another exception, always fast.
    for pos in rng.integers(4, len(data), 40):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        start = time.perf_counter()
        try:
            out = lanes.decode(bytes(flipped), idx, t)
            assert out.shape == (n,)
        except FormatError:
            pass
        assert time.perf_counter() - start < 5


def test_corruption_is_detected_without_escapes():
    """Every lane must end in its initial state: a corrupt word is nearly always caught."""
    scales, t = gaussian_tables()
    rng = np.random.default_rng(9)
    n = 4000
    idx = rng.integers(0, t.num_tables, n).astype(np.int32)
    sym = np.rint(rng.standard_normal(n) * scales[idx]).astype(np.int32)
    data = lanes.encode(sym, idx, t, lanes=64)
    caught = 0
    for pos in rng.integers(4, len(data), 50):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            lanes.decode(bytes(flipped), idx, t)
        except FormatError:
            caught += 1
    assert caught >= 48


@REF
@given(st.binary(max_size=300), st.integers(1, 200))
def test_random_bytes_never_escape_as_other_errors(junk, n):
    t = tiny_tables()
    idx = np.zeros(n, np.int32)
    try:
        out = lanes.decode(junk, idx, t)
    except FormatError:
        return
    assert out.shape == (n,) and out.dtype == np.int32


def test_triton_rans_stream_never_needs_triton():
    code = (
        "import sys, numpy as np\n"
        "import neurocodec, neurocodec.coding as c\n"
        "t = c.build_tables([np.ones(5)], [-2])\n"
        "d = c.get_backend('lanes').encode(np.arange(-3, 4), np.zeros(7, np.int32), t)\n"
        "assert c.get_backend('lanes').decode(d, np.zeros(7, np.int32), t).tolist() == list(range(-3, 4))\n"
        "bad = [m for m in ('triton', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


# ---------------------------------------------------------------------------
# Real latents: the overhead criterion of issue 7
# ---------------------------------------------------------------------------


@pytest.mark.skipif(not KODAK.is_dir(), reason=f"Kodak images not found at {KODAK}")
def test_overhead_on_kodak_latents_of_the_shipped_model():
    import inspect

    import torch
    from PIL import Image

    from neurocodec.codec import Codec

    codec = Codec()
    em = codec.model.entropy_model
    cpu, ref = get_backend("cpu"), get_backend("lanes")
    array = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))
    x, _ = codec._to_tensor(array)
    total_cpu = total_lanes = 0
    with torch.inference_mode():
        y = codec.model.analysis(x)
        for q in (1.0, 8.0):
            scaled = y * codec.model.gains(torch.tensor([q]))[0]
            s = em.quantise(scaled, q) if len(inspect.signature(em.quantise).parameters) >= 2 else em.quantise(scaled)
            assert s.y_symbols.size > 10**6  # a Kodak-size latent
            for sym, idx, t in ((s.y_symbols, s.y_indexes, em.y_tables),
                                (s.z_symbols, em._z_indexes(s.z_symbols.shape), em.z_tables)):
                c, d = cpu.encode(sym, idx, t), ref.encode(sym, idx, t)
                assert len(d) <= 1.01 * len(c), (q, len(d), len(c))
                total_cpu += len(c)
                total_lanes += len(d)
            np.testing.assert_array_equal(ref.decode(d, idx, t), sym)  # the z segment (y: elsewhere)
    assert total_lanes <= 1.01 * total_cpu


# ---------------------------------------------------------------------------
# Triton kernels (interpreter on CPU; ahead-of-time compilation for sm_80 / sm_90)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def triton_coder():
    """The triton backend with TRITON_INTERPRET=1: the kernels under the interpreter on CPU
    tensors (compiled on a GPU if this machine has one)."""
    pytest.importorskip("triton", reason="triton is not installed (pip install 'neurocodec[triton]')")
    pytest.importorskip("torch", reason="the triton backend needs torch")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "1")
        mp.setenv("TRITON_DEFAULT_FP_FUSION", os.environ.get("TRITON_DEFAULT_FP_FUSION", "1"))  # quiet 3.9 notice
        import torch

        from neurocodec.coding.triton_backend import TritonLaneCoder

        coder = TritonLaneCoder()
        assert coder.executor == ("cuda" if torch.cuda.is_available() else "interpreter")
        yield coder


def few_steps(n: int, steps: int) -> int:
    return max(1, -(-n // steps))


@INTERP
@given(problem_st(max_symbols=150), st.integers(1, 4), st.booleans())
def test_triton_bytes_equal_reference_and_cross_decode(triton_coder, problem, steps, wide):
    tables, sym, idx = problem
    request = few_steps(sym.size, steps) if not wide else max(32, few_steps(sym.size, steps))
    reference = lanes.encode(sym, idx, tables, lanes=request)
    kernel = triton_coder.encode(sym, idx, tables, lanes=request)
    assert kernel == reference
    np.testing.assert_array_equal(triton_coder.decode(reference, idx, tables), sym)  # reference -> kernel
    np.testing.assert_array_equal(lanes.decode(kernel, idx, tables), sym)  # kernel -> reference


@INTERP
@given(st.integers(1, 160), st.integers(0, 2**31 - 1), st.integers(1, 3))
def test_fused_quantisation_matches_reference(triton_coder, n, seed, steps):
    import torch

    scales, t = gaussian_tables(num_tables=6)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, t.num_tables, n).astype(np.int32)
    mean = rng.integers(-300, 300, n)
    y = mean + rng.standard_normal(n) * scales[idx] * rng.choice([1.0, 50.0], n, p=[0.9, 0.1])
    y[: n // 4] = np.round(y[: n // 4]) + 0.5  # exact ties: round half to even
    y = torch.tensor(y, dtype=torch.float32)
    symbols = torch.clamp(torch.round(y.double()) - torch.tensor(mean).double(), I32_MIN, I32_MAX)
    symbols = symbols.to(torch.int32).numpy()
    request = few_steps(n, steps)
    data = triton_coder.encode_latents(y, torch.tensor(mean), torch.tensor(idx), t, lanes=request)
    assert data == lanes.encode(symbols, idx, t, lanes=request)
    np.testing.assert_array_equal(lanes.decode(data, idx, t), symbols)


def test_triton_planning_pass_equals_reference(triton_coder):
    import torch

    scales, t = gaussian_tables()
    rng = np.random.default_rng(5)
    n = 3000
    idx = rng.integers(0, t.num_tables, n).astype(np.int32)
    sym = np.rint(rng.standard_normal(n) * scales[idx] * 3).astype(np.int32)
    sym[::50] = rng.integers(I32_MIN, I32_MAX, sym[::50].size)
    lt, dev = triton_coder._tables(t)
    entry, esc = lt.entries(sym, idx)
    dummy = torch.zeros(1)
    cost, n_esc = triton_coder._cost(dummy, dummy.long(), torch.from_numpy(sym), torch.from_numpy(idx), dev, False)
    assert cost == lt.total_cost(entry, sym[esc]) and n_esc == int(esc.sum())
    # End to end with the planned lane count (tiny input: one lane, a few steps).
    small_sym, small_idx = sym[:9], idx[:9]
    assert triton_coder.encode(small_sym, small_idx, t) == lanes.encode(small_sym, small_idx, t)


def test_triton_decoder_rejects_garbage(triton_coder):
    t = tiny_tables()
    rng = np.random.default_rng(6)
    n = 96
    sym = rng.integers(-2, 3, n).astype(np.int32)
    sym[::11] = 123456
    idx = np.zeros(n, np.int32)
    data = lanes.encode(sym, idx, t, lanes=32)
    seg = lanes.Segment(data, n)
    words_at = 4 + 4 * seg.blocks + 4 * seg.lanes
    assert len(data) > words_at
    for junk in (data[:-2], data[:words_at] + bytes([data[words_at] ^ 0x10]) + data[words_at + 1:],
                 data[:8] + bytes([data[8] ^ 1]) + data[9:]):
        with pytest.raises(FormatError):
            triton_coder.decode(junk, idx, t)


def test_get_backend_triton_api(monkeypatch):
    pytest.importorskip("triton", reason="triton is not installed (pip install 'neurocodec[triton]')")
    import torch

    from neurocodec import coding

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(coding, "_instances", {})  # a fresh instance, chosen without the interpreter
    backend = get_backend("triton")
    assert backend.name == "triton"
    assert backend.executor == ("cuda" if torch.cuda.is_available() else "reference")
    for method in ("encode", "decode", "encode_latents"):
        assert callable(getattr(backend, method))
    scales, t = gaussian_tables()
    rng = np.random.default_rng(7)
    idx = rng.integers(0, t.num_tables, (3, 500)).astype(np.int32)
    sym = np.rint(rng.standard_normal(idx.shape) * scales[idx]).astype(np.int32)
    data = backend.encode(sym, idx, t)
    assert data == lanes.encode(sym, idx, t)
    np.testing.assert_array_equal(backend.decode(data, idx, t), sym)
    y = torch.tensor(sym + 0.25, dtype=torch.float32)
    assert backend.encode_latents(y, torch.zeros(idx.shape, dtype=torch.int64), torch.tensor(idx), t) == data


@pytest.mark.parametrize("arch", [80, 90])
def test_kernels_compile_ahead_of_time(arch):
    pytest.importorskip("triton", reason="triton is not installed (pip install 'neurocodec[triton]')")
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    from neurocodec.coding.triton_backend import KERNEL_NAMES, compile_for

    compiled = compile_for(arch)
    assert set(compiled) == set(KERNEL_NAMES) == {"_lane_encode", "_lane_cost", "_lane_decode"}
    target = {80: ".target sm_80", 90: ".target sm_90a"}[arch]
    for name, asm in compiled.items():
        assert target in asm["ptx"].splitlines(), name
        assert f".entry {name}" in asm["ptx"], name
        # Triton's wheels ship ptxas, so the PTX is also assembled to a CUDA binary (ELF).
        assert asm["cubin"][:4] == b"\x7fELF", name


# ---------------------------------------------------------------------------
# Codec: coder="triton" writes triton-rans; any machine decodes it
# ---------------------------------------------------------------------------


def test_codec_triton_coder_round_trip(monkeypatch):
    pytest.importorskip("triton", reason="triton is not installed (pip install 'neurocodec[triton]')")
    import neurocodec
    from neurocodec import coding
    from neurocodec.codec import Codec, decoding_backend
    from neurocodec.format import read_header

    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(coding, "_instances", {})
    rng = np.random.default_rng(8)
    image = np.clip(rng.normal(128, 40, (48, 64, 3)).cumsum(axis=1) / 8, 0, 255).astype(np.uint8)
    stream = Codec(coder="triton").compress(image, 3.0)
    assert read_header(stream).coder == "triton-rans"
    decoded = neurocodec.decompress(stream)
    reference = neurocodec.decompress(Codec(coder="cpu").compress(image, 3.0))
    np.testing.assert_array_equal(decoded, reference)  # same symbols, same reconstruction
    import torch

    assert decoding_backend("triton-rans") == ("triton" if torch.cuda.is_available() else "lanes")
