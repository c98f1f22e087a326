"""Mutation fuzzer for the whole neurocodec decoder (issue 4, must-show 4).

Unlike ``benchmarks/fuzz_container.py`` (the parser alone), every case here goes through
``neurocodec.decompress``: container, model lookup, tiling, entropy decoder, fixed-point
prior and synthesis. Most mutations re-pack the stream or recompute both CRC32s, so the
damage reaches the entropy decoder and the networks instead of stopping at a checksum.

The contract under test: ``neurocodec.decompress(data, limits)`` returns a uint8 image of
the declared size or raises a ``FormatError`` (subclass); nothing else; no case takes
more than 2 s; memory stays bounded by what ``limits`` admits.

Seeds are real streams of small synthetic images (several sizes and qualities, one of
them tiled). Mutations, 1-3 per case: byte flips (then, usually, both CRCs recomputed),
truncation, extension, splices of two seeds, random bytes behind a valid prefix, segment
edits (flip, cut, extend, replace, empty, swap, duplicate, drop), and header field edits
to extreme or off-by-one values (geometry, tiles, quality incl. NaN/inf, coder, model id,
weight hash, segment lengths, version, flags, channels) with valid CRCs.

Usage::

    nice -n 10 python benchmarks/fuzz_decoder.py                 # 100000 cases, shipped model
    nice -n 10 python benchmarks/fuzz_decoder.py --n 2000        # a short run
    python benchmarks/fuzz_decoder.py --n 20000 --start 20000    # resume: cases 20000..39999
    python benchmarks/fuzz_decoder.py --case 1234                # replay one case, show the error
    python benchmarks/fuzz_decoder.py --tiny                     # a small random model (faster)

Case ``i`` is a pure function of ``(--seed, i)``, so runs can be split and resumed with
``--start``. Failing inputs are written to ``--crash-dir``. Exit status 1 on any exception
other than FormatError, any case over ``--slow`` seconds, or a peak RSS over ``--max-rss-mb``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import re
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TINY_NAME = "fuzz-tiny"
U32 = 2**32 - 1

# Values header-field edits choose from (besides the original +- 1 and random ones).
SIDES = [1, 2, 7, 31, 32, 33, 63, 64, 65, 255, 1023, 1024, 1025, 2047, 2048, 2049, 4096, 60000, 2**16, 2**31, U32]
TILES = [0, 1, 16, 31, 32, 64, 100, 1024, 2048, 2049, 60000, U32]
QUALITIES = [1.0, 8.0, 0.999, 8.001, 0.0, -1.0, 4.5, 1e30, -1e30, 1e-30, 3.4e38]
RAW_QUALITIES = [float("nan"), float("inf"), float("-inf")]


def _import_neurocodec():
    try:
        import neurocodec  # noqa: F401
    except ImportError:  # running from a checkout without `pip install -e .`
        sys.path.insert(0, str(ROOT / "src"))


# --------------------------------------------------------------------------- #
# Streams and models
# --------------------------------------------------------------------------- #


def seed_image(height: int, width: int, seed: int) -> np.ndarray:
    """A small deterministic photo-like uint8 (H, W, 3) image."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    a, b = rng.uniform(0.2, 1.0, (2, 1, 1, 3))
    img = 255 * (0.6 * a * y + 0.4 * b * x) + 50.0 * ((x - 0.4) * (y - 0.6) > 0) + rng.normal(0, 10, (height, width, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# (height, width, quality): tiny, odd-sized, a few blocks, and one tiled stream (a side
# above 2048 gives 1024x1024 tiles; narrow, so it is cheap).
SEED_SPECS = [(1, 1, 4.0), (17, 33, 1.0), (32, 32, 8.0), (40, 56, 2.5), (70, 20, 6.0), (2049, 24, 3.0)]


def seed_streams(model_name: str | None = None, specs=SEED_SPECS) -> list[bytes]:
    """Real streams of small synthetic images, encoded with ``model_name``."""
    from neurocodec.codec import Codec

    codec = Codec(model_name)
    return [codec.compress(seed_image(h, w, i), q) for i, (h, w, q) in enumerate(specs)]


def export_tiny_model(directory: str | Path, name: str = TINY_NAME) -> Path:
    """Export a small randomly initialised block-hyperprior to ``directory/name.safetensors``.

    Same architecture and code paths as the shipped model, but far fewer channels, so
    decoding a small stream takes milliseconds. Deterministic (seeded).
    """
    import torch

    from neurocodec.models import build_model
    from neurocodec.zoo import export_weights

    path = Path(directory) / f"{name}.safetensors"
    if not path.exists():
        state = torch.random.get_rng_state()
        torch.manual_seed(0)
        try:
            model = build_model("block-hyperprior", refine_blocks=1, refine_hidden=16, pixel_hidden=8,
                                hyper_channels=8, hyper_hidden=16)
        finally:
            torch.random.set_rng_state(state)
        export_weights(model, path, name, description="random weights for fuzzing")
    return path


def use_weights_dir(directory: str | Path, include_shipped: bool = True) -> None:
    """Point the zoo at ``directory`` (keeping the shipped models reachable via symlinks)."""
    import neurocodec.zoo as zoo

    directory = Path(directory)
    if include_shipped:
        for path in Path(zoo.WEIGHTS_DIR).glob("*.safetensors"):
            link = directory / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
    zoo.WEIGHTS_DIR = directory


# --------------------------------------------------------------------------- #
# Mutations
# --------------------------------------------------------------------------- #


def layout(data: bytes | bytearray) -> dict | None:
    """Offsets of a v1 stream's fields as far as its bytes describe them, or None."""
    if len(data) < 8:
        return None
    base = 8 + data[7]
    extra_at = base + 31
    if extra_at > len(data):
        return None
    extra_len = int.from_bytes(data[base + 29:base + 31], "little")
    n_at = extra_at + extra_len
    if n_at + 4 > len(data):
        return None
    n = int.from_bytes(data[n_at:n_at + 4], "little")
    table = n_at + 4
    header_end = table + 4 * n
    return dict(version=4, flags=5, coder_id=6, model_id_len=7, model_id=8, weight_hash=base, quality=base + 8,
                height=base + 12, width=base + 16, channels=base + 20, tile_height=base + 21, tile_width=base + 25,
                extra_len=base + 29, n_segments=n_at, segment_table=table, n=n, header_end=header_end)


def fix_crcs(data: bytes | bytearray) -> bytes:
    """Recompute the header and payload CRC32s where the (damaged) layout puts them."""
    out = bytearray(data)
    lay = layout(out)
    if lay is None or lay["n"] > 2**22:
        return bytes(out)
    end = lay["header_end"]
    if end + 4 <= len(out):
        struct.pack_into("<I", out, end, zlib.crc32(out[:end]))
        if len(out) >= end + 8:
            struct.pack_into("<I", out, len(out) - 4, zlib.crc32(out[end + 4:len(out) - 4]))
    return bytes(out)


class Mutator:
    """Stream mutations driven by ``draw(lo, hi)`` -> an int in [lo, hi] (inclusive).

    The same engine serves the benchmark (numpy RNG) and the tests (hypothesis draws,
    which shrink a failure to a minimal mutation).
    """

    def __init__(self, draw: Callable[[int, int], int]):
        self.draw = draw

    def choice(self, seq):
        return seq[self.draw(0, len(seq) - 1)]

    def blob(self, max_size: int) -> bytes:
        """Up to ``max_size`` pseudo-random bytes (a function of two draws)."""
        n = self.draw(0, max_size)
        return np.random.default_rng(self.draw(0, U32)).integers(0, 256, n, dtype=np.uint8).tobytes()

    def mutate(self, seeds: list[bytes]) -> bytes:
        data = self.choice(seeds)
        for _ in range(self.draw(1, 3)):
            data = self.choice(self.OPS)(self, data, seeds)
        return data

    # -- raw byte mutations ----------------------------------------------------------
    def op_flip(self, data, seeds):
        out = bytearray(data)
        if out:
            for _ in range(self.draw(1, 4)):
                out[self.draw(0, len(out) - 1)] ^= self.draw(1, 255)
        return fix_crcs(out) if self.draw(0, 3) else bytes(out)

    def op_truncate(self, data, seeds):
        out = data[:self.draw(0, max(0, len(data) - 1))]
        return fix_crcs(out) if self.draw(0, 1) else out

    def op_extend(self, data, seeds):
        out = data + self.blob(64)
        return fix_crcs(out) if self.draw(0, 1) else out

    def op_splice(self, data, seeds):
        other = self.choice(seeds)
        out = data[:self.draw(0, len(data))] + other[self.draw(0, len(other)):]
        return fix_crcs(out)

    def op_random(self, data, seeds):
        prefix = data[:self.choice([0, 4, 5, 8, 16, 40, len(data)])]
        return fix_crcs(prefix + self.blob(200))

    def op_raw_field(self, data, seeds):
        """Write an extreme value into a header field (incl. those Header refuses)."""
        lay = layout(data)
        if lay is None:
            return self.op_flip(data, seeds)
        out = bytearray(data)
        field = self.choice(["version", "flags", "coder_id", "model_id_len", "quality", "channels", "extra_len",
                             "n_segments", "segment_len", "height", "width", "tile_height", "tile_width"])
        try:
            if field in ("version", "flags", "coder_id", "model_id_len", "channels"):
                out[lay[field]] = self.choice([0, 1, 2, 3, 4, 63, 64, 65, 255, self.draw(0, 255)])
            elif field == "quality":
                struct.pack_into("<f", out, lay["quality"], self.choice(RAW_QUALITIES + QUALITIES))
            elif field == "extra_len":
                struct.pack_into("<H", out, lay["extra_len"], self.choice([0, 1, 4, 65535, self.draw(0, 65535)]))
            elif field == "n_segments":
                struct.pack_into("<I", out, lay["n_segments"], self.choice([0, 1, 3, lay["n"] + 1, 2**20, U32]))
            elif field == "segment_len":
                if lay["n"] == 0:
                    return bytes(out)
                at = lay["segment_table"] + 4 * self.draw(0, lay["n"] - 1)
                old = int.from_bytes(out[at:at + 4], "little")
                struct.pack_into("<I", out, at, self.choice([0, 1, 3, 4, old - 4 & U32, old + 4, U32, 2**31]))
            else:
                struct.pack_into("<I", out, lay[field], self.choice(SIDES + TILES))
        except struct.error:
            return bytes(out)
        return fix_crcs(out) if self.draw(0, 7) else bytes(out)

    # -- structured mutations (valid container, valid CRCs) --------------------------------
    def _unpacked(self, data):
        from neurocodec.errors import FormatError
        from neurocodec.format import Limits, unpack

        try:
            return unpack(data, Limits(max_pixels=2**64, max_segments=2**22, max_bytes=2**40))
        except FormatError:
            return None

    def op_segments(self, data, seeds):
        from neurocodec.format import pack

        parsed = self._unpacked(data)
        if parsed is None:
            return self.op_flip(data, seeds)
        header, segments = parsed
        segments = list(segments)
        action = self.choice(["flip", "cut", "extend", "random", "empty", "swap", "duplicate", "drop", "add", "words"])
        if not segments:
            action = "add"
        k = self.draw(0, len(segments) - 1) if segments else 0
        if action == "flip" and segments[k]:
            s = bytearray(segments[k])
            for _ in range(self.draw(1, 3)):
                s[self.draw(0, len(s) - 1)] ^= 1 << self.draw(0, 7)
            segments[k] = bytes(s)
        elif action == "cut":
            segments[k] = segments[k][:self.draw(0, len(segments[k]))]
        elif action == "extend":
            segments[k] = segments[k] + self.blob(32)
        elif action == "random":
            segments[k] = self.blob(300)
        elif action == "empty":
            segments[k] = b""
        elif action == "swap" and len(segments) > 1:
            j = self.draw(0, len(segments) - 1)
            segments[k], segments[j] = segments[j], segments[k]
        elif action == "duplicate" and segments:
            segments.insert(k, segments[k])
        elif action == "drop" and segments:
            del segments[k]
        elif action == "add":
            segments.insert(k, self.blob(16))
        elif action == "words" and segments:  # whole 32-bit words: reaches constriction
            s = bytearray(segments[k])
            s += bytes(4 * self.draw(0, 2))
            for _ in range(self.draw(1, 3)):
                if s:
                    s[self.draw(0, len(s) - 1)] = self.draw(0, 255)
            segments[k] = bytes(s[:len(s) - len(s) % 4])
        return pack(header, segments)

    def op_header(self, data, seeds):
        from neurocodec.format import pack

        parsed = self._unpacked(data)
        if parsed is None:
            return self.op_raw_field(data, seeds)
        header, segments = parsed
        field = self.choice(["height", "width", "size", "tiles", "quality", "coder", "model_id", "weight_hash",
                             "extra"])
        try:
            if field in ("height", "width"):
                old = getattr(header, field)
                value = self.choice(SIDES + [old - 1, old + 1, self.draw(1, 4096)])
                header = dataclasses.replace(header, **{field: max(1, value)})
            elif field == "size":
                header = dataclasses.replace(header, height=self.draw(1, 600), width=self.draw(1, 600))
            elif field == "tiles":
                t = self.choice(TILES + [self.draw(1, 4096)])
                u = t if self.draw(0, 2) else self.choice(TILES)
                if (t == 0) != (u == 0):
                    u = t
                header = dataclasses.replace(header, tile_height=t, tile_width=u)
            elif field == "quality":
                header = dataclasses.replace(header, quality=self.choice(QUALITIES))
            elif field == "coder":
                header = dataclasses.replace(header, coder=self.choice(["cpu-range", "triton-rans"]))
            elif field == "model_id":
                header = dataclasses.replace(header, model_id=self.choice(["block-hyperprior-mse", TINY_NAME, "x",
                                                                           "conv-hyperprior", "a" * 64]))
            elif field == "weight_hash":
                header = dataclasses.replace(header, weight_hash=bytes(self.draw(0, 255) for _ in range(8)))
            else:
                header = dataclasses.replace(header, extra=self.blob(40))
        except (ValueError, TypeError):
            return data
        return pack(header, segments)

    OPS = [op_flip, op_truncate, op_extend, op_splice, op_random, op_raw_field, op_segments, op_segments,
           op_header, op_header, op_header]


# --------------------------------------------------------------------------- #
# One case
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class Outcome:
    kind: str  # "ok", a FormatError subclass name, or "CRASH:<type>"
    seconds: float
    message: str = ""
    shape_ok: bool = True
    cpu_seconds: float = 0.0  # CPU time of this process (on a loaded machine wall time overstates the work)


def decode_case(data: bytes, limits) -> Outcome:
    """Decode ``data``; classify the outcome. Never raises for a FormatError."""
    import neurocodec
    from neurocodec.errors import FormatError
    from neurocodec.format import Limits, read_header

    t0, c0 = time.perf_counter(), time.process_time()
    try:
        image = neurocodec.decompress(data, limits=limits)
    except FormatError as exc:
        return Outcome(type(exc).__name__, time.perf_counter() - t0, str(exc)[:200],
                       cpu_seconds=time.process_time() - c0)
    except Exception as exc:  # noqa: BLE001 - the thing we are hunting
        return Outcome(f"CRASH:{type(exc).__name__}", time.perf_counter() - t0,
                       "".join(traceback.format_exception(exc))[-3000:], cpu_seconds=time.process_time() - c0)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    header = read_header(data, Limits(max_pixels=2**64))
    ok = isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == (header.height, header.width, 3)
    return Outcome("ok", elapsed, "" if ok else f"bad result {type(image)} {getattr(image, 'shape', None)}", ok,
                   cpu_seconds=cpu)


# --------------------------------------------------------------------------- #
# Benchmark driver
# --------------------------------------------------------------------------- #


def _reason(message: str) -> str:
    """A FormatError message without its numbers and quoted values: what stage rejected it."""
    words = re.sub(r"'[^']*'|\"[^\"]*\"|0x[0-9a-fA-F]+|-?\d+(\.\d+)?(e[+-]?\d+)?", "#", message).split()
    return " ".join(words[:7])


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from neurocodec.format import Limits

    tmp = tempfile.mkdtemp(prefix="ncdc-fuzz-")
    model_name = args.model
    if args.weights_dir:
        import neurocodec.zoo as zoo

        zoo.WEIGHTS_DIR = Path(args.weights_dir)
    if args.tiny:
        export_tiny_model(tmp)
        use_weights_dir(tmp)
        model_name = TINY_NAME
    seeds = seed_streams(model_name)
    limits = Limits(max_pixels=args.max_pixels)
    crash_dir = Path(args.crash_dir)
    kinds: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    slow: list[tuple[int, float, str]] = []
    crashes: list[tuple[int, str]] = []
    times = []
    rss_jumps: list[tuple[int, float]] = []
    max_cpu = 0.0
    baseline = _rss_peak_mb()
    peak = baseline
    signal.signal(signal.SIGALRM, _alarm)
    t_start = time.perf_counter()
    cases = [args.case] if args.case is not None else range(args.start, args.start + args.n)
    for i in cases:
        rng = np.random.default_rng([args.seed, i])
        mutator = Mutator(lambda lo, hi: int(rng.integers(lo, hi + 1)))
        data = mutator.mutate(seeds)
        signal.alarm(int(args.hang))
        try:
            outcome = decode_case(data, limits)
        except _Timeout:
            outcome = Outcome("HANG", float(args.hang))
        finally:
            signal.alarm(0)
        if not outcome.shape_ok:
            outcome.kind = "CRASH:bad-result"
        kinds[outcome.kind] += 1
        if outcome.kind not in ("ok", "HANG") and not outcome.kind.startswith("CRASH"):
            reasons[_reason(outcome.message)] += 1
        times.append(outcome.seconds)
        max_cpu = max(max_cpu, outcome.cpu_seconds)
        if outcome.seconds > args.slow or outcome.kind == "HANG":
            slow.append((i, outcome.seconds, outcome.kind, outcome.cpu_seconds))
        if outcome.kind.startswith("CRASH") or outcome.kind == "HANG" or outcome.seconds > args.slow:
            crash_dir.mkdir(parents=True, exist_ok=True)
            (crash_dir / f"case{i}.ncdc").write_bytes(data)
            if outcome.kind.startswith("CRASH"):
                crashes.append((i, outcome.message))
        now = _rss_peak_mb()
        if now > peak:
            peak = now
            rss_jumps.append((i, now))
        if args.case is not None:
            print(f"case {i}: {len(data)} bytes -> {outcome.kind} in {outcome.seconds:.3f} s "
                  f"(CPU {outcome.cpu_seconds:.3f} s)\n{outcome.message}")
        done = len(times)
        if args.progress and done % args.progress == 0:
            print(f"{done} cases, {time.perf_counter() - t_start:.0f} s, max {max(times):.2f} s/case, "
                  f"peak RSS {peak:.0f} MB, crashes {len(crashes)}", file=sys.stderr, flush=True)
    times_arr = np.array(times)
    return dict(cases=len(times), start=args.start, seed=args.seed, model=_model_label(args, model_name),
                max_pixels=args.max_pixels, kinds=dict(kinds.most_common()), reasons=dict(reasons.most_common(12)),
                crashes=len(crashes), crash_examples=crashes[:5], slow_cases=slow[:20], n_slow=len(slow),
                max_seconds=float(times_arr.max()), max_cpu_seconds=max_cpu, median_ms=float(1e3 * np.median(times_arr)),
                p99_ms=float(1e3 * np.percentile(times_arr, 99)), total_seconds=time.perf_counter() - t_start,
                rss_baseline_mb=baseline, rss_peak_mb=peak, rss_jumps=rss_jumps[-5:])


def _model_label(args, model_name: str | None) -> str:
    if args.tiny:
        return f"{TINY_NAME} (random weights)"
    return (model_name or "default") + (f" from {args.weights_dir}" if args.weights_dir else " (shipped)")


def markdown(r: dict, command: str) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in r["kinds"].items())
    cpu = f"{r['max_cpu_seconds']:.2f}" if r.get("max_cpu_seconds") is not None else "n/a"
    lines = [f"`{command}`", "",
             "| cases | model | Limits.max_pixels | exceptions other than FormatError | cases > 2 s (wall) | max s/case "
             "(wall) | max CPU s/case | median ms | p99 ms | peak RSS MB (baseline) |", "|---|---|---|---|---|---|---|---|---|---|",
             f"| {r['cases']} | {r['model']} | {r['max_pixels']} | {r['crashes']} | {r['n_slow']} | "
             f"{r['max_seconds']:.2f} | {cpu} | {r['median_ms']:.1f} | {r['p99_ms']:.1f} | {r['rss_peak_mb']:.0f} "
             f"({r['rss_baseline_mb']:.0f}) |", "", f"Outcomes: {kinds}.", "",
             "Most frequent rejections (message stems): " + "; ".join(f"{k} ({v})" for k, v in r["reasons"].items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="number of cases")
    p.add_argument("--start", type=int, default=0, help="first case index (resume a run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--case", type=int, default=None, help="replay one case and print its outcome")
    p.add_argument("--tiny", action="store_true", help="fuzz a small random model instead of the shipped one")
    p.add_argument("--model", default=None, help="model to encode the seeds with (default: the default model)")
    p.add_argument("--weights-dir", default=None, help="use the weight files in this directory as the zoo")
    p.add_argument("--max-pixels", type=int, default=2**18,
                   help="Limits.max_pixels for decoding (bounds the legitimate work of one case)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--slow", type=float, default=2.0, help="flag cases slower than this (s)")
    p.add_argument("--hang", type=float, default=60.0, help="abandon a case after this many seconds")
    p.add_argument("--max-rss-mb", type=float, default=3072.0)
    p.add_argument("--crash-dir", default="fuzz-crashes")
    p.add_argument("--progress", type=int, default=5000, help="print progress every N cases (0 = never)")
    p.add_argument("--md", default=None, help="append the markdown table to this file")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    _import_neurocodec()
    result = run(args)
    if args.case is not None:
        return 0 if result["crashes"] == 0 else 1
    command = "python benchmarks/fuzz_decoder.py " + " ".join(sys.argv[1:] if argv is None else argv)
    table = markdown(result, command.strip())
    print(table)
    for i, message in result["crash_examples"]:
        print(f"--- case {i} ---\n{message}")
    if args.md:
        with open(args.md, "a") as f:
            f.write(table + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    bad = result["crashes"] or result["n_slow"] or result["rss_peak_mb"] > args.max_rss_mb
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
