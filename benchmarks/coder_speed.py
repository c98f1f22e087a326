"""Speed and size of the `cpu` coder against raw constriction, measured in the same run.

Workload: ~2M symbols drawn from 64 discretised zero-mean Gaussians (scales
log-spaced over 0.11..64, as a scale-table entropy model would produce), table
index uniform per symbol, values clipped to each table's range so that raw
constriction (which has no escape mechanism) codes exactly the same stream.

Three contenders, each timed interleaved, median of several runs, one thread:

* neurocodec: `get_backend("cpu").encode/decode` (validation, grouping,
  escape handling, bytes conversion);
* raw grouped: the same grouping (stable radix argsort by table) and the same
  cached `Categorical(perfect=False)` models, calling constriction directly,
  without our checks and wrapping;
* constriction only: the constriction `encode`/`decode` calls alone on
  pre-grouped arrays (the ceiling; no grouping, no scatter).

Usage: python benchmarks/coder_speed.py [--symbols N] [--runs R]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import sys
import time

import numpy as np

try:
    import neurocodec.coding  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import constriction  # noqa: E402
from scipy.stats import norm  # noqa: E402

from neurocodec.coding import build_tables, get_backend  # noqa: E402


def gaussian_tables(num_tables: int = 64, lo: float = 0.11, hi: float = 64.0, tail: float = 1e-9):
    scales = np.exp(np.linspace(np.log(lo), np.log(hi), num_tables))
    pmfs, minima = [], []
    for s in scales:
        k = int(np.ceil(norm.isf(tail / 2) * s))
        x = np.arange(-k, k + 1)
        pmfs.append(norm.cdf((x + 0.5) / s) - norm.cdf((x - 0.5) / s))
        minima.append(-k)
    return scales, pmfs, build_tables(pmfs, np.array(minima, dtype=np.int32))


def raw_encode(sym, idx, models, minima):
    order = np.argsort(idx.astype(np.uint8), kind="stable")
    counts = np.bincount(idx, minlength=len(models))
    grouped = sym[order]
    enc = constriction.stream.queue.RangeEncoder()
    a = 0
    for t, c in enumerate(counts):
        if c:
            enc.encode(grouped[a : a + c] - minima[t], models[t])
            a += c
    return enc.get_compressed()


def raw_decode(words, idx, models, minima):
    order = np.argsort(idx.astype(np.uint8), kind="stable")
    counts = np.bincount(idx, minlength=len(models))
    dec = constriction.stream.queue.RangeDecoder(words)
    parts = [dec.decode(models[t], int(c)) + minima[t] for t, c in enumerate(counts) if c]
    out = np.empty(idx.size, dtype=np.int32)
    out[order] = np.concatenate(parts)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    scales, pmfs, tables = gaussian_tables()
    rng = np.random.default_rng(args.seed)
    n = args.symbols
    idx = rng.integers(0, tables.num_tables, n).astype(np.int32)
    sizes = tables.sizes
    sym = np.rint(rng.standard_normal(n) * scales[idx]).astype(np.int64)
    sym = np.clip(sym, tables.minima[idx], tables.minima[idx] + sizes[idx] - 1).astype(np.int32)

    backend = get_backend("cpu")
    data = backend.encode(sym, idx, tables)  # also builds the cached models
    # The same models the backend builds, constructed here independently.
    models = [
        constriction.stream.model.Categorical(
            tables.freqs[tables.offsets[t] : tables.offsets[t + 1]].astype(np.float64)
            / 2**tables.precision,
            perfect=False,
        )
        for t in range(tables.num_tables)
    ]
    minima = tables.minima

    raw_words = raw_encode(sym, idx, models, minima)
    same_bytes = raw_words.astype("<u4").tobytes() == data
    assert np.array_equal(backend.decode(data, idx, tables), sym)
    assert np.array_equal(raw_decode(raw_words, idx, models, minima), sym)

    # Pre-grouped arrays for the constriction-only ceiling.
    order = np.argsort(idx.astype(np.uint8), kind="stable")
    counts = np.bincount(idx, minlength=tables.num_tables)
    grouped = sym[order]
    bounds = np.concatenate([[0], np.cumsum(counts)])
    locals_ = [grouped[bounds[t] : bounds[t + 1]] - minima[t] for t in range(tables.num_tables)]

    def core_encode():
        enc = constriction.stream.queue.RangeEncoder()
        for t, loc in enumerate(locals_):
            enc.encode(loc, models[t])
        return enc.get_compressed()

    def core_decode():
        dec = constriction.stream.queue.RangeDecoder(raw_words)
        return [dec.decode(models[t], int(c)) for t, c in enumerate(counts)]

    contenders = {
        "neurocodec cpu": (
            lambda: backend.encode(sym, idx, tables),
            lambda: backend.decode(data, idx, tables),
        ),
        "raw grouped": (
            lambda: raw_encode(sym, idx, models, minima),
            lambda: raw_decode(raw_words, idx, models, minima),
        ),
        "constriction only": (core_encode, core_decode),
    }
    times = {name: ([], []) for name in contenders}
    for _ in range(args.runs):
        for which in (0, 1):
            for name, fns in contenders.items():
                t0 = time.perf_counter()
                fns[which]()
                times[name][which].append(time.perf_counter() - t0)

    print(f"coder_speed: {n} symbols, {tables.num_tables} Gaussian tables "
          f"(scales {scales[0]:.2f}..{scales[-1]:.0f}, precision {tables.precision}), "
          f"median of {args.runs} runs, interleaved")
    print(f"python {platform.python_version()}, numpy {np.__version__}, "
          f"constriction {importlib.metadata.version('constriction')}, "
          f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}")
    print(f"{'':20s} {'encode Msym/s':>14s} {'decode Msym/s':>14s}")
    med = {}
    for name, (enc_t, dec_t) in times.items():
        med[name] = (statistics.median(enc_t), statistics.median(dec_t))
        print(f"{name:20s} {n / med[name][0] / 1e6:14.1f} {n / med[name][1] / 1e6:14.1f}")
    ours, raw = med["neurocodec cpu"], med["raw grouped"]
    print(f"neurocodec / raw grouped speed: encode {raw[0] / ours[0]:.2f}x, "
          f"decode {raw[1] / ours[1]:.2f}x")

    bits = 8 * len(data)
    ideal = tables.ideal_bits(sym, idx)
    float_bits = 0.0
    for t in range(tables.num_tables):
        sel = idx == t
        p = pmfs[t][sym[sel] - minima[t]]
        float_bits += float(-np.log2(p).sum())
    print(f"size: {bits} bits = {bits / n:.4f} bits/sym; ideal under the integer tables "
          f"{ideal:.0f} bits ({100 * (bits / ideal - 1):+.4f} %); "
          f"under the float pmfs {float_bits:.0f} bits "
          f"(tables cost {100 * (ideal / float_bits - 1):+.4f} %)")
    print(f"bytes identical to raw constriction stream: {same_bytes}")


if __name__ == "__main__":
    main()
