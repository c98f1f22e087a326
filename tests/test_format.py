"""Tests of the container format (neurocodec.format).

Golden streams in tests/golden/*.ncdc freeze the byte layout: `pack` must
reproduce them exactly, so the format can never drift silently. They were
written once by

    python tests/test_format.py --write-golden

which refuses to overwrite existing files. `--dump NAME` prints the annotated
hex dump used in docs/format.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from array import array
from pathlib import Path

try:
    import neurocodec.format
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import neurocodec.format

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurocodec.errors import (
    ChecksumError,
    FormatError,
    LimitExceededError,
    TruncatedStreamError,
    UnsupportedVersionError,
)
from neurocodec.format import (
    CODER_IDS,
    DEFAULT_LIMITS,
    FILE_EXTENSION,
    FORMAT_VERSION,
    MAGIC,
    MIN_STREAM_SIZE,
    Header,
    Limits,
    coder_id,
    coder_name,
    pack,
    read_header,
    unpack,
    weight_hash_of,
)

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "format.md"
U32 = 2**32 - 1
NO_LIMITS = Limits(max_pixels=2**64, max_segments=2**32, max_bytes=2**64)
SLOW_CALL = 0.5  # seconds; generous, the machine is shared. Typical calls take microseconds.

# --------------------------------------------------------------------------- #
# Golden streams. NEVER edit these cases: the files in tests/golden/ are frozen.
# --------------------------------------------------------------------------- #

GOLDEN_CASES = {
    # One tile, two segments (z, y): the stream dumped in docs/format.md.
    "minimal": (
        dict(
            model_id="demo-1",
            weight_hash=bytes.fromhex("0123456789abcdef"),
            coder="cpu-range",
            quality=0.5,
            height=16,
            width=24,
        ),
        [b"\x5a\x01\x02", b"\xa5\x10\x20\x30\x40"],
    ),
    # 2 x 2 tiles of 64 x 64 on a 100 x 70 image -> 8 segments in raster order
    # (z, y per tile), some empty; a quality that float32 rounds; extra bytes.
    "tiled": (
        dict(
            model_id="hyperprior-m96.v2",
            weight_hash=hashlib.sha256(b"neurocodec golden weights").digest()[:8],
            coder="triton-rans",
            quality=0.013,
            height=100,
            width=70,
            tile_height=64,
            tile_width=64,
            extra=b"\x00\x01\xfe\xff",
        ),
        [b"z0", b"y0-tile", b"", b"y1", b"z2" * 3, bytes(range(40)), b"z3", b""],
    ),
    # Edges: 1 x 1 image, negative quality, 64-character model id, 300 extra
    # bytes (extra_len > 255), no segments at all.
    "edge": (
        dict(
            model_id=("abcdefghijklmnopqrstuvwxyz0123456789._-" * 2)[:64],
            weight_hash=b"\xff" * 8,
            coder="cpu-range",
            quality=-1.5,
            height=1,
            width=1,
            extra=bytes(i % 251 for i in range(300)),
        ),
        [],
    ),
}

# SHA-256 of the frozen files, so regenerating them cannot pass unnoticed.
GOLDEN_SHA256 = {
    "minimal": "7dffc2336881999c63a462ee97c1ad433473746cf7ee2627d2d97808a7d6847a",
    "tiled": "ddcb30f73542893ace993642f282ad22fa677f5c1b399e9da5c68db6bd41587f",
    "edge": "6d31d8ea3e82a921cbda192b28ce2d52b93fc4972223b61a25acd49a5bbea79c",
}


def golden(name: str) -> tuple[Header, list[bytes]]:
    kwargs, segments = GOLDEN_CASES[name]
    return Header(**kwargs), list(segments)


def golden_bytes(name: str) -> bytes:
    return (GOLDEN_DIR / f"{name}{FILE_EXTENSION}").read_bytes()


# --------------------------------------------------------------------------- #
# An independent reading of the layout in docs/format.md (for mutations).
# --------------------------------------------------------------------------- #


def layout(data: bytes) -> dict[str, int]:
    """Offsets of every v1 field of a (possibly mutated) stream."""
    o = 8 + data[7]
    off = {
        "magic": 0,
        "version": 4,
        "flags": 5,
        "coder_id": 6,
        "model_id_len": 7,
        "model_id": 8,
        "weight_hash": o,
        "quality": o + 8,
        "height": o + 12,
        "width": o + 16,
        "channels": o + 20,
        "tile_height": o + 21,
        "tile_width": o + 25,
        "extra_len": o + 29,
        "extra": o + 31,
    }
    p = o + 31 + int.from_bytes(data[o + 29 : o + 31], "little")
    n = int.from_bytes(data[p : p + 4], "little")
    off.update(n_segments=p, segment_len=p + 4, header_crc=p + 4 + 4 * n, payload=p + 8 + 4 * n)
    return off


def recrc(data: bytes) -> bytes:
    """Recomputes the header CRC so that a header mutation passes the CRC check."""
    c = layout(data)["header_crc"]
    return data[:c] + struct.pack("<I", zlib.crc32(data[:c])) + data[c + 4 :]


def put(data: bytes, field: str, fmt: str, value, fix_crc: bool = True) -> bytes:
    off = layout(data)[field]
    raw = struct.pack("<" + fmt, value)
    out = data[:off] + raw + data[off + len(raw) :]
    return recrc(out) if fix_crc else out


def raises_exactly(exc_type, fn, *args, **kwargs) -> FormatError:
    with pytest.raises(FormatError) as info:
        fn(*args, **kwargs)
    assert type(info.value) is exc_type, f"{type(info.value).__name__}: {info.value}"
    return info.value


# --------------------------------------------------------------------------- #
# Golden streams
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_pack_is_frozen(name):
    header, segments = golden(name)
    data = golden_bytes(name)
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256[name]
    assert pack(header, segments) == data


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_unpack(name):
    header, segments = golden(name)
    data = golden_bytes(name)
    assert unpack(data) == (header, segments)
    assert read_header(data) == header
    assert json.loads(json.dumps(header.to_dict())) == header.to_dict()


def test_golden_minimal_fields():
    header, segments = unpack(golden_bytes("minimal"))
    assert header.to_dict() == {
        "model_id": "demo-1",
        "weight_hash": "0123456789abcdef",
        "coder": "cpu-range",
        "quality": 0.5,
        "height": 16,
        "width": 24,
        "channels": 3,
        "tile_height": 0,
        "tile_width": 0,
        "extra": "",
    }
    assert segments == [b"\x5a\x01\x02", b"\xa5\x10\x20\x30\x40"]
    assert header.tile_grid == (1, 1)


def test_golden_tiled_fields():
    header, segments = unpack(golden_bytes("tiled"))
    assert header.coder == "triton-rans" and header.coder_id == 1
    assert header.quality == struct.unpack("<f", struct.pack("<f", 0.013))[0]
    assert header.tile_grid == (2, 2)
    assert len(segments) == 2 * 2 * 2


def dump_lines(data: bytes) -> list[tuple[int, bytes, str]]:
    """(offset, bytes, annotation) per field of a stream, for the docs hex dump."""
    off = layout(data)
    n_seg = int.from_bytes(data[off["n_segments"] : off["n_segments"] + 4], "little")
    seg_lens = [
        int.from_bytes(data[off["segment_len"] + 4 * i : off["segment_len"] + 4 * i + 4], "little")
        for i in range(n_seg)
    ]
    h = read_header(data)
    rows = [
        ("magic", 4, f'magic = "{MAGIC.decode()}"'),
        ("version", 1, f"version = {data[4]}"),
        ("flags", 1, f"flags = {data[5]}"),
        ("coder_id", 1, f"coder_id = {data[6]} ({h.coder})"),
        ("model_id_len", 1, f"model_id_len = {data[7]}"),
        ("model_id", data[7], f'model_id = "{h.model_id}"'),
        ("weight_hash", 8, "weight_hash"),
        ("quality", 4, f"quality = {h.quality!r} (f32)"),
        ("height", 4, f"height = {h.height}"),
        ("width", 4, f"width = {h.width}"),
        ("channels", 1, f"channels = {h.channels}"),
        ("tile_height", 4, f"tile_height = {h.tile_height}"),
        ("tile_width", 4, f"tile_width = {h.tile_width}"),
        ("extra_len", 2, f"extra_len = {len(h.extra)}"),
        ("extra", len(h.extra), "extra"),
        ("n_segments", 4, f"n_segments = {n_seg}"),
    ]
    out = []
    for name, size, note in rows:
        if size:
            out.append((off[name], data[off[name] : off[name] + size], note))
    for i, n in enumerate(seg_lens):
        o = off["segment_len"] + 4 * i
        out.append((o, data[o : o + 4], f"segment_len[{i}] = {n}"))
    c = off["header_crc"]
    out.append((c, data[c : c + 4], f"header_crc = 0x{zlib.crc32(data[:c]):08x}"))
    p = off["payload"]
    for i, n in enumerate(seg_lens):
        if n:
            out.append((p, data[p : p + n], f"segment {i} ({n} bytes)"))
        p += n
    out.append((p, data[p : p + 4], f"payload_crc = 0x{int.from_bytes(data[p:p+4], 'little'):08x}"))
    assert p + 4 == len(data)
    return out


def format_dump(data: bytes) -> str:
    lines = []
    for offset, raw, note in dump_lines(data):
        for k in range(0, len(raw), 8):
            chunk = " ".join(f"{b:02x}" for b in raw[k : k + 8])
            lines.append(f"{offset + k:04x}  {chunk:<23}  {note if k == 0 else ''}".rstrip())
    return "\n".join(lines)


def test_docs_hex_dump_matches_golden():
    if not DOCS.exists():
        pytest.skip("docs/format.md not present (installed package)")
    text = DOCS.read_text(encoding="utf-8")
    m = re.search(r"<!-- golden: minimal\.ncdc -->\s*```text\n(.*?)```", text, re.S)
    assert m, "docs/format.md lacks the annotated hex dump of minimal.ncdc"
    data = bytearray()
    for line in m.group(1).splitlines():
        if not re.match(r"^[0-9a-f]{4}  ", line):
            continue
        parts = re.split(r"\s{2,}", line.strip())
        assert int(parts[0], 16) == len(data), line
        data += bytes.fromhex(parts[1])
    assert bytes(data) == golden_bytes("minimal")
    assert m.group(1).strip() == format_dump(golden_bytes("minimal")).strip()


# --------------------------------------------------------------------------- #
# Round trips
# --------------------------------------------------------------------------- #


@st.composite
def headers(draw):
    tiles = draw(st.one_of(st.just((0, 0)), st.tuples(st.integers(1, U32), st.integers(1, U32))))
    return Header(
        model_id=draw(st.from_regex(r"[a-z0-9._-]{1,64}", fullmatch=True)),
        weight_hash=draw(st.binary(min_size=8, max_size=8)),
        coder=draw(st.sampled_from(sorted(CODER_IDS))),
        quality=draw(st.floats(width=32, allow_nan=False, allow_infinity=False)),
        height=draw(st.integers(1, U32)),
        width=draw(st.integers(1, U32)),
        tile_height=tiles[0],
        tile_width=tiles[1],
        extra=draw(st.binary(max_size=600)),
    )


segment_lists = st.lists(st.binary(max_size=200), max_size=12)


@settings(max_examples=120, deadline=None)
@given(headers(), segment_lists)
def test_round_trip(header, segments):
    data = pack(header, segments)
    assert unpack(data, NO_LIMITS) == (header, segments)
    assert read_header(data, NO_LIMITS) == header
    assert read_header(data[: layout(data)["payload"]], NO_LIMITS) == header
    assert len(data) == layout(data)["payload"] + sum(map(len, segments)) + 4


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30))
def test_quality_is_rounded_to_float32(q):
    h = Header("m", bytes(8), "cpu-range", q, 1, 1)
    assert h.quality == struct.unpack("<f", struct.pack("<f", q))[0]
    assert unpack(pack(h, []))[0].quality == h.quality


def test_bytes_like_inputs():
    header, segments = golden("tiled")
    data = golden_bytes("tiled")
    assert unpack(bytearray(data)) == (header, segments)
    assert unpack(memoryview(data)) == (header, segments)
    big = b"junk" + data + b"more junk"
    assert unpack(memoryview(big)[4 : 4 + len(data)]) == (header, segments)
    assert unpack(memoryview(data).cast("B", shape=[1, len(data)])) == (header, segments)
    if len(data) % 2 == 0:  # a 16-bit view over the same bytes
        assert unpack(memoryview(array("H", data))) == (header, segments)
    strided = bytes(b for pair in zip(data, data) for b in pair)
    assert unpack(memoryview(strided)[::2]) == (header, segments)
    assert pack(header, [bytearray(s) for s in segments]) == data
    assert pack(header, tuple(memoryview(s) for s in segments)) == data


def test_types_are_checked():
    data = golden_bytes("minimal")
    with pytest.raises(TypeError):
        unpack(data.hex())
    with pytest.raises(TypeError):
        unpack(data, limits={"max_pixels": 1})
    with pytest.raises(TypeError):
        pack(golden("minimal")[0], b"abc")
    with pytest.raises(TypeError):
        pack(golden("minimal")[0], ["abc"])
    with pytest.raises(TypeError):
        pack(GOLDEN_CASES["minimal"][0], [])


# --------------------------------------------------------------------------- #
# Invalid headers given to pack / Header are programming errors: ValueError.
# --------------------------------------------------------------------------- #

GOOD = GOLDEN_CASES["minimal"][0]


@pytest.mark.parametrize(
    "change, exc",
    [
        (dict(model_id=""), ValueError),
        (dict(model_id="x" * 65), ValueError),
        (dict(model_id="Demo"), ValueError),
        (dict(model_id="a b"), ValueError),
        (dict(model_id="modèle"), ValueError),
        (dict(model_id="a\n"), ValueError),
        (dict(model_id=b"demo"), TypeError),
        (dict(weight_hash=bytes(7)), ValueError),
        (dict(weight_hash=bytes(32)), ValueError),
        (dict(weight_hash="0123456789abcdef"), TypeError),
        (dict(coder="gpu"), ValueError),
        (dict(quality=math.nan), ValueError),
        (dict(quality=math.inf), ValueError),
        (dict(quality=1e39), ValueError),
        (dict(quality="0.5"), TypeError),
        (dict(quality=True), TypeError),
        (dict(height=0), ValueError),
        (dict(width=-1), ValueError),
        (dict(width=2**32), ValueError),
        (dict(height=2.0), TypeError),
        (dict(channels=1), ValueError),
        (dict(channels=4), ValueError),
        (dict(tile_height=64), ValueError),
        (dict(tile_height=64, tile_width=0), ValueError),
        (dict(tile_height=2**32, tile_width=1), ValueError),
        (dict(extra=bytes(65536)), ValueError),
    ],
)
def test_invalid_header_is_a_value_error(change, exc):
    with pytest.raises(exc) as info:
        Header(**{**GOOD, **change})
    assert not isinstance(info.value, FormatError)


def test_pack_revalidates_and_checks_segments():
    h = Header(**GOOD)
    object.__setattr__(h, "height", 0)  # bypass the frozen dataclass
    with pytest.raises(ValueError):
        pack(h, [])
    with pytest.raises(TypeError):
        pack(Header(**GOOD), [b"ok", 42])


def test_header_helpers():
    h = Header(**{**GOOD, "height": 100, "width": 70, "tile_height": 64, "tile_width": 32})
    assert h.tile_grid == (2, 3)
    assert Header(**{**GOOD, "tile_height": 1000, "tile_width": 1000}).tile_grid == (1, 1)
    assert coder_id("cpu-range") == 0 and coder_id("triton-rans") == 1
    assert coder_name(0) == "cpu-range" and coder_name(1) == "triton-rans"
    with pytest.raises(ValueError):
        coder_id("nope")
    with pytest.raises(UnsupportedVersionError):
        coder_name(2)
    with pytest.raises(TypeError):
        CODER_IDS["new"] = 5  # read-only
    assert weight_hash_of(b"abc") == hashlib.sha256(b"abc").digest()[:8]
    assert MAGIC == b"NCDC" and FORMAT_VERSION == 1 and FILE_EXTENSION == ".ncdc"
    assert MIN_STREAM_SIZE == 52 == len(pack(Header("m", bytes(8), "cpu-range", 0, 1, 1), []))
    assert zlib.crc32(b"123456789") == 0xCBF43926  # the CRC32 of docs/format.md
    assert DEFAULT_LIMITS == Limits(2**28, 2**20, 2**32 - 1)
    with pytest.raises(ValueError):
        Limits(max_pixels=0)
    with pytest.raises(TypeError):
        Limits(max_segments=1.5)


def test_format_layer_imports_only_the_standard_library():
    import ast

    allowed = {"__future__", "hashlib", "math", "numbers", "operator", "re", "struct",
               "types", "zlib", "dataclasses", "typing"}
    pkg = Path(neurocodec.format.__file__).resolve().parent
    for path in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: only .container, ..errors and the coder table
                    assert node.module in ("container", "errors", "coding.backends"), (path.name, node.module)
                    continue
                names = [node.module.split(".")[0]]
            else:
                continue
            assert set(names) <= allowed, (path.name, names)
    code = (
        "import sys; sys.path.insert(0, %r); import neurocodec.format; "
        "heavy = [m for m in ('torch', 'numpy', 'constriction') if m in sys.modules]; "
        "assert not heavy, heavy"
        % str(Path(__file__).resolve().parents[1] / "src")
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- #
# Every error class, from a targeted mutation
# --------------------------------------------------------------------------- #


def test_empty_and_short_inputs_are_truncated():
    for data in (b"", b"N", b"NC", b"NCD", b"NCDC", b"NCDC\x01", golden_bytes("minimal")[:20]):
        raises_exactly(TruncatedStreamError, unpack, data)
        raises_exactly(TruncatedStreamError, read_header, data)
    assert "empty" in str(raises_exactly(TruncatedStreamError, unpack, b""))


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG\r\n\x1a\n" + bytes(60), b"GIF89a", b"x", b"NCDX" + bytes(60), b"ncdc\x01" + bytes(60)],
)
def test_wrong_magic(data):
    err = raises_exactly(FormatError, unpack, data)
    assert "not a neurocodec stream" in str(err)
    raises_exactly(FormatError, read_header, data)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version(version):
    data = bytearray(golden_bytes("minimal"))
    data[4] = version
    err = raises_exactly(UnsupportedVersionError, unpack, bytes(data))
    assert f"version {version}" in str(err) and "version 1" in str(err)
    raises_exactly(UnsupportedVersionError, read_header, bytes(data))


def test_unknown_coder_id():
    data = put(golden_bytes("minimal"), "coder_id", "B", 7)
    err = raises_exactly(UnsupportedVersionError, unpack, data)
    assert "7" in str(err) and "cpu-range" in str(err)
    raises_exactly(UnsupportedVersionError, read_header, data)
    assert unpack(put(golden_bytes("minimal"), "coder_id", "B", 1))[0].coder == "triton-rans"


def test_nonzero_flags():
    raises_exactly(FormatError, unpack, put(golden_bytes("minimal"), "flags", "B", 1))


@pytest.mark.parametrize("field", ["flags", "coder_id", "model_id", "height", "extra", "segment_len"])
def test_header_checksum(field):
    name = "tiled"
    data = bytearray(golden_bytes(name))
    data[layout(bytes(data))[field]] ^= 0x04
    raises_exactly(ChecksumError, unpack, bytes(data))
    raises_exactly(ChecksumError, read_header, bytes(data))
    crc_at = layout(golden_bytes(name))["header_crc"]
    data = bytearray(golden_bytes(name))
    data[crc_at + 3] ^= 0x80
    assert "header CRC32" in str(raises_exactly(ChecksumError, unpack, bytes(data)))


def test_payload_checksum():
    data = bytearray(golden_bytes("minimal"))
    data[layout(bytes(data))["payload"] + 1] ^= 0x01
    assert "payload CRC32" in str(raises_exactly(ChecksumError, unpack, bytes(data)))
    assert read_header(bytes(data)) == golden("minimal")[0]  # info on a damaged file
    data = bytearray(golden_bytes("minimal"))
    data[-1] ^= 0xFF
    raises_exactly(ChecksumError, unpack, bytes(data))


def test_pixel_limit():
    data = golden_bytes("tiled")  # 100 x 70
    err = raises_exactly(LimitExceededError, unpack, data, Limits(max_pixels=6999))
    assert "100 x 70 = 7000" in str(err) and "6999" in str(err)
    assert "Limits(max_pixels=7000)" in str(err)
    raises_exactly(LimitExceededError, read_header, data, Limits(max_pixels=6999))
    assert unpack(data, Limits(max_pixels=7000))[0].height == 100
    huge = put(put(data, "height", "I", U32), "width", "I", U32)
    raises_exactly(LimitExceededError, unpack, huge)


def test_segment_and_byte_limits():
    data = golden_bytes("tiled")  # 8 segments
    err = raises_exactly(LimitExceededError, unpack, data, Limits(max_segments=7))
    assert "8 segments" in str(err) and "max_segments" in str(err)
    assert len(unpack(data, Limits(max_segments=8))[1]) == 8
    err = raises_exactly(LimitExceededError, unpack, data, Limits(max_bytes=len(data) - 1))
    assert str(len(data)) in str(err) and "max_bytes" in str(err)
    assert unpack(data, Limits(max_bytes=len(data)))[1] == golden("tiled")[1]
    assert read_header(data, Limits(max_bytes=10)) == golden("tiled")[0]


def test_segment_lengths_beyond_data():
    data = golden_bytes("tiled")
    off = layout(data)["segment_len"]
    for value in (len(data), U32):
        bad = recrc(data[: off + 4] + struct.pack("<I", value) + data[off + 8 :])
        err = raises_exactly(TruncatedStreamError, unpack, bad)
        assert "payload" in str(err)
        assert read_header(bad) == golden("tiled")[0]


def test_segment_table_beyond_data():
    data = golden_bytes("minimal")
    for n in (7, 1000, 2**20, U32):
        raises_exactly(TruncatedStreamError, unpack, put(data, "n_segments", "I", n, fix_crc=False))


def test_trailing_bytes():
    for tail in (b"\x00", b"NCDC", golden_bytes("minimal")):
        err = raises_exactly(FormatError, unpack, golden_bytes("minimal") + tail)
        assert "trailing" in str(err) and str(len(tail)) in str(err)
    assert read_header(golden_bytes("minimal") + b"junk") == golden("minimal")[0]


@pytest.mark.parametrize(
    "field, fmt, value, exc",
    [
        ("quality", "f", math.nan, FormatError),
        ("quality", "f", math.inf, FormatError),
        ("quality", "f", -math.inf, FormatError),
        ("height", "I", 0, FormatError),
        ("width", "I", 0, FormatError),
        ("channels", "B", 4, FormatError),
        ("channels", "B", 0, FormatError),
        ("channels", "B", 1, UnsupportedVersionError),
        ("tile_height", "I", 64, FormatError),
        ("model_id", "B", ord("D"), FormatError),
        ("model_id", "B", ord(" "), FormatError),
        ("model_id", "B", 0xE9, FormatError),
        ("model_id", "B", 0, FormatError),
    ],
)
def test_invalid_fields(field, fmt, value, exc):
    data = put(golden_bytes("minimal"), field, fmt, value)
    raises_exactly(exc, unpack, data)
    raises_exactly(exc, read_header, data)


@pytest.mark.parametrize("length", [0, 65, 255])
def test_model_id_len_out_of_range(length):
    data = put(golden_bytes("minimal"), "model_id_len", "B", length, fix_crc=False)
    assert "model_id_len" in str(raises_exactly(FormatError, unpack, data))


# --------------------------------------------------------------------------- #
# Robustness: only FormatError, always fast, never a big allocation
# --------------------------------------------------------------------------- #


def _only_format_errors(fn, data, limits=None):
    t0 = time.perf_counter()
    try:
        fn(data, limits)
        ok = True
    except FormatError:
        ok = False
    elapsed = time.perf_counter() - t0
    assert elapsed < SLOW_CALL, f"{elapsed:.3f} s on {bytes(data[:64]).hex()}"
    return ok


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(data):
    _only_format_errors(unpack, data)
    _only_format_errors(read_header, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=3, max_size=200), st.sampled_from([0, 1, 2]))
def test_random_bytes_after_magic(tail, n_lead):
    # Start like a stream so that parsing gets past the magic and version.
    data = (MAGIC + b"\x01" + bytes([0, 0]))[: 5 + n_lead] + tail
    _only_format_errors(unpack, data)
    _only_format_errors(read_header, data)


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_every_truncation_is_detected(name):
    data = golden_bytes(name)
    header_end = layout(data)["payload"]
    for n in range(len(data)):
        raises_exactly(TruncatedStreamError, unpack, data[:n])
        if n < header_end:
            raises_exactly(TruncatedStreamError, read_header, data[:n])
        else:
            assert read_header(data[:n]) == golden(name)[0]


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_every_single_byte_change_is_detected(name):
    # CRC32 detects every error confined to 32 consecutive bits, so every
    # single-byte change must raise (not merely avoid non-FormatErrors).
    data = golden_bytes(name)
    worst = 0.0
    for i in range(len(data)):
        for xor in (0x01, 0x80, 0xFF, 0x5A):
            mutated = bytearray(data)
            mutated[i] ^= xor
            t0 = time.perf_counter()
            with pytest.raises(FormatError):
                unpack(bytes(mutated))
            worst = max(worst, time.perf_counter() - t0)
    assert worst < SLOW_CALL


@st.composite
def mutated_streams(draw):
    header, segments = draw(headers()), draw(segment_lists)
    data = bytearray(pack(header, segments))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "field"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[i:]
        elif op == "field" and len(data) > 8:
            # Overwrite a length / size field with an extreme value, keeping the CRC valid.
            try:
                off = layout(bytes(data))
                field, fmt = draw(
                    st.sampled_from(
                        [("n_segments", "I"), ("segment_len", "I"), ("extra_len", "H"),
                         ("height", "I"), ("width", "I"), ("model_id_len", "B")]
                    )
                )
                value = draw(st.sampled_from([0, 1, 255, 65535, 2**20, U32]))
                raw = struct.pack("<" + fmt, value & ((1 << (8 * struct.calcsize(fmt))) - 1))
                data[off[field] : off[field] + len(raw)] = raw
                data = bytearray(recrc(bytes(data)))
            except (IndexError, struct.error):
                pass
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_streams())
def test_mutated_streams(data):
    _only_format_errors(unpack, data)
    _only_format_errors(unpack, data, NO_LIMITS)
    _only_format_errors(read_header, data)


def _header_declaring(n_segments: int, first_len: int | None = None) -> bytes:
    """A valid header (correct header CRC) declaring n_segments, with little data after it."""
    h = Header(**GOOD)
    data = pack(h, [b""] * 2)
    off = layout(data)
    head = data[: off["n_segments"]] + struct.pack("<I", n_segments)
    if first_len is not None:
        head += struct.pack("<I", first_len)
    return head


def _peak_during(fn) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("limits", [None, NO_LIMITS])
@pytest.mark.parametrize("n_segments", [2**20, 2**31, U32])
def test_huge_segment_count_raises_before_allocating(n_segments, limits):
    data = _header_declaring(n_segments) + bytes(64)

    def run():
        with pytest.raises(TruncatedStreamError):
            unpack(data, limits)

    assert _peak_during(run) < 64 * 1024


@pytest.mark.parametrize("length", [2**20, 2**31, U32])
def test_huge_segment_length_raises_before_allocating(length):
    head = _header_declaring(1, length)
    data = head + struct.pack("<I", zlib.crc32(head)) + bytes(16)
    assert read_header(data).model_id == "demo-1"  # the header itself is valid

    def run():
        with pytest.raises(TruncatedStreamError):
            unpack(data)

    assert _peak_during(run) < 64 * 1024


def test_segment_limit_checked_before_reading_table():
    n = 5000
    head = _header_declaring(n) + bytes(4 * n)
    data = head + struct.pack("<I", zlib.crc32(head)) + struct.pack("<I", zlib.crc32(b""))
    assert len(unpack(data, Limits(max_segments=n))[1]) == n

    def run():
        with pytest.raises(LimitExceededError):
            unpack(data, Limits(max_segments=n - 1))

    assert _peak_during(run) < 16 * 1024


# --------------------------------------------------------------------------- #
# Golden generator (run by hand, once)
# --------------------------------------------------------------------------- #


def _write_golden() -> None:
    GOLDEN_DIR.mkdir(exist_ok=True)
    for name in GOLDEN_CASES:
        path = GOLDEN_DIR / f"{name}{FILE_EXTENSION}"
        data = pack(*golden(name))
        if path.exists():
            status = "unchanged" if path.read_bytes() == data else "DIFFERS (not overwritten)"
        else:
            path.write_bytes(data)
            status = "written"
        print(f"{path}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()} {status}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-golden"]:
        _write_golden()
    elif sys.argv[1:2] == ["--dump"] and len(sys.argv) == 3:
        print(format_dump(golden_bytes(sys.argv[2])))
    else:
        print(__doc__)
