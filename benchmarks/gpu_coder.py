"""GPU speed of the Triton lane coder (coder `triton-rans`) against the constriction cpu
coder, measured in the same run.

On a machine with a CUDA GPU and triton installed it times, median of --runs runs:

* the fused encoder `encode_latents(y, mean, index, tables)` on device tensors (quantise,
  plan, encode, compact; bytes returned to the host),
* the decoder `decode(data, indexes, tables)` (upload, decode, symbols back to the host),
* the cpu coder encoding / decoding the same symbols,

and prints Msym/s and GB/s (compressed bytes produced per second when encoding, consumed
per second when decoding). Times include the host <-> device copies of the API calls.

Without a GPU it measures nothing and says so: no GPU figure exists for these kernels
until this script has been run on one. (`--executor interpreter` runs the same code path
under the Triton interpreter on the CPU as a smoke test of this script; its times are
not GPU figures and are labelled as such.)

    python benchmarks/gpu_coder.py                    # Kodak latents of the default model
    python benchmarks/gpu_coder.py --synthetic 4000000
    python benchmarks/gpu_coder.py --executor interpreter --synthetic 2000 --lanes 512 --runs 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

NO_GPU = "no GPU here: no GPU figure exists (the Triton kernels have only been run under the interpreter)"


def synthetic(n: int, seed: int = 0):
    """Latents from 64 Gaussian scale tables, integer means, float32 y."""
    from neurocodec.coding import build_tables

    scales = np.exp(np.linspace(np.log(0.11), np.log(64.0), 64))
    pmfs, minima = [], []
    for s in scales:
        k = int(np.ceil(7 * s)) + 1
        x = np.arange(-k, k + 1)
        pmfs.append(np.exp(-0.5 * (x / s) ** 2))
        minima.append(-k)
    tables = build_tables(pmfs, np.array(minima, np.int32), escape_mass=1e-5)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 64, n).astype(np.int32)
    mean = rng.integers(-8, 8, n).astype(np.int64)
    y = (mean + rng.standard_normal(n) * scales[idx]).astype(np.float32)
    return y, mean, idx, tables


def kodak(folder: Path, quality: float):
    import inspect

    import torch
    from PIL import Image

    from neurocodec.codec import Codec

    codec = Codec()
    model = codec.model
    em = model.entropy_model
    array = np.asarray(Image.open(sorted(folder.glob("kodim*.png"))[0]).convert("RGB"))
    x, _ = codec._to_tensor(array)
    with torch.inference_mode():
        y = model.analysis(x) * model.gains(torch.tensor([quality]))[0]
        s = em.quantise(y, quality) if len(inspect.signature(em.quantise).parameters) >= 2 else em.quantise(y)
        mean = (s.y_hat.double() - torch.from_numpy(s.y_symbols).double()).round().to(torch.int64)
    return y.float().numpy().ravel(), mean.numpy().ravel(), s.y_indexes.ravel(), em.y_tables


def timed(fn, runs: int, sync) -> float:
    times = []
    for _ in range(runs):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--quality", type=float, default=4.0)
    parser.add_argument("--synthetic", type=int, default=0, help="use N synthetic symbols instead of Kodak")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--executor", default="cuda", choices=["cuda", "interpreter"])
    parser.add_argument("--lanes", type=int, default=None, help="lane count (default: the encoder's plan)")
    args = parser.parse_args(argv)

    try:
        import torch
        import triton  # noqa: F401
    except ImportError as exc:
        print(f"{NO_GPU} (triton or torch missing: {exc})")
        return 0
    if args.executor == "cuda" and not torch.cuda.is_available():
        print(NO_GPU)
        return 0

    from neurocodec.coding import get_backend
    from neurocodec.coding.triton_backend import TritonLaneCoder

    torch.set_num_threads(1)
    folder = Path(args.kodak)
    if args.synthetic or not folder.is_dir():
        y, mean, idx, tables = synthetic(args.synthetic or 1_179_648)
        source = f"{y.size} synthetic symbols"
    else:
        y, mean, idx, tables = kodak(folder, args.quality)
        source = f"Kodak kodim01 y latents, quality {args.quality:g}, {y.size} symbols"
    gpu = TritonLaneCoder(args.executor)
    cpu = get_backend("cpu")
    device = gpu.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    y_d = torch.from_numpy(y).to(device)
    mean_d = torch.from_numpy(mean).to(device)
    idx_d = torch.from_numpy(idx).to(device)
    sym = np.clip(np.round(y.astype(np.float64)) - mean, -2**31, 2**31 - 1).astype(np.int32)

    data = gpu.encode_latents(y_d, mean_d, idx_d, tables, args.lanes)  # warm-up (compiles the kernels)
    assert np.array_equal(gpu.decode(data, idx, tables), sym)
    cdata = cpu.encode(sym, idx, tables)
    t = {
        "triton encode (fused)": timed(lambda: gpu.encode_latents(y_d, mean_d, idx_d, tables, args.lanes),
                                       args.runs, sync),
        "triton decode": timed(lambda: gpu.decode(data, idx, tables), args.runs, sync),
        "cpu encode": timed(lambda: cpu.encode(sym, idx, tables), args.runs, sync),
        "cpu decode": timed(lambda: cpu.decode(cdata, idx, tables), args.runs, sync),
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "Triton interpreter on CPU"
    print(f"# {source}; {name}; median of {args.runs}")
    if device.type != "cuda":
        print("# NOT A GPU FIGURE: interpreter smoke test of this script")
    print("| coder | time | Msym/s | GB/s (compressed) |")
    print("|---|---|---|---|")
    for key, sec in t.items():
        size = len(data) if key.startswith("triton") else len(cdata)
        print(f"| {key} | {sec * 1e3:.2f} ms | {y.size / sec / 1e6:.1f} | {size / sec / 1e9:.3f} |")
    print(f"\nencode speed-up vs cpu: {t['cpu encode'] / t['triton encode (fused)']:.2f}x, "
          f"decode: {t['cpu decode'] / t['triton decode']:.2f}x; stream {len(data)} B vs cpu {len(cdata)} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
