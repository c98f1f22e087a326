"""Mutation fuzzer for the neurocodec container parser.

Runs N mutated streams through `neurocodec.format.unpack` (and `read_header`)
and reports how each call ended, by exception type. The contract under test:
parsing bytes raises only `FormatError` subclasses, never anything else; each
call is fast; memory stays bounded whatever the header declares.

Mutations, composed 1-3 at a time on valid seed streams: bit flips, random
byte values, truncations, insertions, deletions, chunk duplication, splices of
two seeds, whole random inputs (with or without a valid-looking prefix), and
"field" tweaks that set a header field (lengths, sizes, version, coder, ...)
to an extreme or off-by-one value and then, usually, recompute the header CRC
so that the mutation reaches the checks behind it.

Usage:
    python benchmarks/fuzz_container.py [-n 100000] [--seed 0] [--no-tracemalloc]

Exit status 1 if any call raised something other than a FormatError.
"""

from __future__ import annotations

import argparse
import collections
import random
import struct
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

try:
    import neurocodec.format  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from neurocodec.errors import FormatError
from neurocodec.format import CODER_IDS, Header, Limits, pack, read_header, unpack

U32 = 2**32 - 1
GOLDEN_DIR = Path(__file__).resolve().parents[1] / "tests" / "golden"
ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-"

# (field, struct format) of the v1 header fields a "field" mutation may touch.
FIELDS = [
    ("version", "B"),
    ("flags", "B"),
    ("coder_id", "B"),
    ("model_id_len", "B"),
    ("quality", "f"),
    ("height", "I"),
    ("width", "I"),
    ("channels", "B"),
    ("tile_height", "I"),
    ("tile_width", "I"),
    ("extra_len", "H"),
    ("n_segments", "I"),
    ("segment_len", "I"),
]


def field_offsets(data: bytes) -> dict[str, int] | None:
    """Offsets of the header fields of a (possibly mutated) v1 stream, or None."""
    try:
        base = 8 + data[7]
        extra_len = int.from_bytes(data[base + 29 : base + 31], "little")
        p = base + 31 + extra_len
        if p + 4 > len(data):
            return None
        n = int.from_bytes(data[p : p + 4], "little")
    except IndexError:
        return None
    return {
        "version": 4,
        "flags": 5,
        "coder_id": 6,
        "model_id_len": 7,
        "quality": base + 8,
        "height": base + 12,
        "width": base + 16,
        "channels": base + 20,
        "tile_height": base + 21,
        "tile_width": base + 25,
        "extra_len": base + 29,
        "n_segments": p,
        "segment_len": p + 4,
        "header_crc": p + 4 + 4 * n,
    }


def fix_header_crc(data: bytes) -> bytes:
    off = field_offsets(data)
    if off is None or off["header_crc"] + 4 > len(data):
        return data
    c = off["header_crc"]
    return data[:c] + struct.pack("<I", zlib.crc32(data[:c])) + data[c + 4 :]


def random_stream(rng: random.Random) -> bytes:
    th = rng.choice([0, 0, 1, 16, 64, 256, U32])
    tw = 0 if th == 0 else rng.choice([1, 16, 64, 256, U32])
    header = Header(
        model_id="".join(rng.choice(ID_CHARS) for _ in range(rng.randint(1, 64))),
        weight_hash=rng.randbytes(8),
        coder=rng.choice(sorted(CODER_IDS)),
        quality=rng.uniform(-100, 100),
        height=rng.choice([1, 2, 17, 512, 16384]),
        width=rng.choice([1, 3, 24, 768, 16384]),
        tile_height=th,
        tile_width=tw,
        extra=rng.randbytes(rng.choice([0, 0, 1, 7, 300])),
    )
    segments = [rng.randbytes(rng.choice([0, 1, 2, 10, 100])) for _ in range(rng.choice([0, 1, 2, 2, 8, 40]))]
    return pack(header, segments)


def seeds(rng: random.Random) -> list[bytes]:
    corpus = [p.read_bytes() for p in sorted(GOLDEN_DIR.glob("*.ncdc"))]
    corpus += [random_stream(rng) for _ in range(40)]
    return corpus


def interesting(rng: random.Random, fmt: str, current: int | float) -> int | float:
    if fmt == "f":
        return rng.choice([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 3.4e38, 1e-45])
    top = {"B": 0xFF, "H": 0xFFFF, "I": U32}[fmt]
    cand = [0, 1, 2, 3, 63, 64, 65, 255, 256, 0x7FFF, 0xFFFF, 2**20, 2**20 + 1, 2**28, 2**31, U32]
    cand += [current - 1, current + 1, current * 2, rng.randint(0, top)]
    return min(max(rng.choice(cand), 0), top)


def mutate(data: bytes, corpus: list[bytes], rng: random.Random) -> bytes:
    b = bytearray(data)
    op = rng.choice(
        ["flip", "flip", "set", "truncate", "insert", "delete", "dup", "splice", "random", "field", "field", "field"]
    )
    n = len(b)
    if op == "flip" and n:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif op == "set" and n:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(n)] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    elif op == "truncate":
        del b[rng.randint(0, n) :]
    elif op == "insert":
        i = rng.randint(0, n)
        b[i:i] = rng.randbytes(rng.choice([1, 1, 2, 4, 16, 100]))
    elif op == "delete" and n:
        i = rng.randrange(n)
        del b[i : i + rng.choice([1, 1, 2, 4, 16])]
    elif op == "dup" and n:
        i = rng.randrange(n)
        chunk = b[i : i + rng.randint(1, 32)]
        b[i:i] = chunk * rng.randint(1, 4)
    elif op == "splice":
        other = rng.choice(corpus)
        b = b[: rng.randint(0, n)] + other[rng.randint(0, len(other)) :]
    elif op == "random":
        tail = rng.randbytes(rng.choice([0, 1, 4, 8, 52, 100, 1000]))
        b = bytearray(rng.choice([b"", b"NCDC", b"NCDC\x01", b"NCDC\x01\x00\x00"]) + tail)
    elif op == "field":
        off = field_offsets(bytes(b))
        if off is not None:
            field, fmt = rng.choice(FIELDS)
            o = off[field]
            size = struct.calcsize("<" + fmt)
            if o + size <= len(b):
                (current,) = struct.unpack_from("<" + fmt, b, o)
                cur = 0 if fmt == "f" else current
                struct.pack_into("<" + fmt, b, o, interesting(rng, fmt, cur))
                if rng.random() < 0.8:
                    b = bytearray(fix_header_crc(bytes(b)))
    return bytes(b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--cases", type=int, default=100_000, help="number of cases (default 100000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--no-tracemalloc", action="store_true", help="do not measure memory (faster)")
    ap.add_argument("--show", type=int, default=10, help="non-FormatError inputs to print (default 10)")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    corpus = seeds(rng)
    limits = [None, None, None, Limits(max_pixels=2**64, max_segments=2**32, max_bytes=2**64)]
    outcomes = {"unpack": collections.Counter(), "read_header": collections.Counter()}
    bad: list[tuple[str, str, str, bytes]] = []
    worst_time, worst_input = 0.0, b""
    total_time = 0.0
    worst_mem, worst_mem_input = 0, b""
    max_len = 0

    if not args.no_tracemalloc:
        tracemalloc.start()
    t_start = time.perf_counter()
    for i in range(args.cases):
        data = rng.choice(corpus)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            data = mutate(data, corpus, rng)
        max_len = max(max_len, len(data))
        lim = rng.choice(limits)
        for name, fn in (("unpack", unpack), ("read_header", read_header)):
            if not args.no_tracemalloc:
                base = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
            t0 = time.perf_counter()
            try:
                fn(data, lim)
                outcome = "ok (valid stream)"
            except FormatError as exc:
                outcome = type(exc).__name__
            except Exception as exc:  # noqa: BLE001 - this is what we hunt for
                outcome = f"!! {type(exc).__name__}"
                bad.append((name, type(exc).__name__, str(exc), data))
            dt = time.perf_counter() - t0
            total_time += dt
            if dt > worst_time:
                worst_time, worst_input = dt, data
            if not args.no_tracemalloc:
                peak = tracemalloc.get_traced_memory()[1] - base
                if peak > worst_mem:
                    worst_mem, worst_mem_input = peak, data
            outcomes[name][outcome] += 1
    wall = time.perf_counter() - t_start
    if not args.no_tracemalloc:
        tracemalloc.stop()

    print(f"fuzz_container: {args.cases} cases, seed {args.seed}, {len(corpus)} seed streams, "
          f"inputs up to {max_len} bytes, {wall:.1f} s wall")
    for name, counter in outcomes.items():
        print(f"\n{name}:")
        for outcome, count in counter.most_common():
            print(f"  {outcome:<28} {count:>8}")
    calls = 2 * args.cases
    print(f"\ntime per call: mean {1e6 * total_time / max(calls, 1):.1f} us, "
          f"max {1e3 * worst_time:.2f} ms (input of {len(worst_input)} bytes)"
          + ("" if args.no_tracemalloc else "; timed under tracemalloc"))
    if not args.no_tracemalloc:
        print(f"peak tracemalloc per call: {worst_mem} bytes (input of {len(worst_mem_input)} bytes)")
    print(f"non-FormatError exceptions: {len(bad)}")
    for name, typ, msg, data in bad[: args.show]:
        print(f"  {name}: {typ}: {msg}\n    input ({len(data)} bytes): {data.hex()}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
