"""Lane-parallel rANS (coder `triton-rans`): size overhead and reference-decoder speed,
both against the constriction `cpu` coder measured in the same run, on Kodak latents of
the shipped default model.

Size: every image (or the first --images) at each --qualities; the y and z segments
are coded by the cpu backend and by the lane format with its default lane plan
(`plan_lanes`), and optionally (--sweep) with one lane per K estimated bytes for
several K, which is the measurement behind `BYTES_PER_LANE`.

Speed: the numpy reference decoder (`get_backend("lanes")`) against the constriction
decoder (`get_backend("cpu")`) on the y latents of --speed-images images at quality
--speed-quality, timed interleaved, median of --runs runs, single thread, wall clock;
Msym/s and the ratio. Encoders likewise. (Only CPU figures: for the GPU kernels see
benchmarks/gpu_coder.py.)

    python benchmarks/lane_coder.py                        # all 24 images, qualities 1,4,8
    python benchmarks/lane_coder.py --images 4 --sweep 256,512,768,1024,2048
"""

from __future__ import annotations

import argparse
import inspect
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402


def kodak_latents(folder: Path, images: int, qualities: list[float]):
    """[(name, quality, y_symbols, y_indexes, z_symbols, z_indexes)], and (y_tables, z_tables)."""
    import torch
    from PIL import Image

    from neurocodec.codec import Codec

    codec = Codec()
    em = codec.model.entropy_model
    with_quality = len(inspect.signature(em.quantise).parameters) >= 2
    names = sorted(p.name for p in folder.glob("kodim*.png"))[: images or None]
    out = []
    for name in names:
        array = np.asarray(Image.open(folder / name).convert("RGB"))
        x, _ = codec._to_tensor(array)
        with torch.inference_mode():
            y = codec.model.analysis(x)
            for q in qualities:
                scaled = y * codec.model.gains(torch.tensor([q]))[0]
                s = em.quantise(scaled, q) if with_quality else em.quantise(scaled)
                zi = em._z_indexes(s.z_symbols.shape)
                out.append((name, q, array.shape[:2], s.y_symbols, s.y_indexes, s.z_symbols, zi))
    return out, (em.y_tables, em.z_tables), codec.info.name


def sizes(latents, tables, sweep):
    from neurocodec.coding import get_backend, lanes

    cpu, ref = get_backend("cpu"), get_backend("lanes")
    rows = []
    for name, q, hw, ys, yi, zs, zi in latents:
        row = {"name": name, "q": q, "pixels": hw[0] * hw[1], "symbols": ys.size}
        for seg, s, i, t in (("y", ys, yi, tables[0]), ("z", zs, zi, tables[1])):
            c = cpu.encode(s, i, t)
            d = ref.encode(s, i, t)
            row[seg + "_cpu"] = len(c)
            row[seg + "_lanes"] = len(d)
            row[seg + "_L"] = lanes.Segment(d, s.size).lanes if d else 0
            if seg == "y":
                lt = lanes.lane_tables(t)
                entry, esc = lt.entries(s.ravel(), i.ravel())
                est = lt.total_cost(entry, s.ravel()[esc]) >> 19
                for k in sweep:
                    row[f"y_sweep_{k}"] = len(ref.encode(s, i, t, lanes=max(1, min(est // k, s.size))))
        rows.append(row)
    return rows


def speed(latents, tables, runs):
    from neurocodec.coding import get_backend

    cpu, ref = get_backend("cpu"), get_backend("lanes")
    t = tables[0]
    out = []
    for name, q, hw, ys, yi, zs, zi in latents:
        c, d = cpu.encode(ys, yi, t), ref.encode(ys, yi, t)
        assert np.array_equal(ref.decode(d, yi, t), ys) and np.array_equal(cpu.decode(c, yi, t), ys)
        times = {k: [] for k in ("cpu_dec", "lanes_dec", "cpu_enc", "lanes_enc")}
        for _ in range(runs):
            for key, fn in (("cpu_dec", lambda: cpu.decode(c, yi, t)), ("lanes_dec", lambda: ref.decode(d, yi, t)),
                            ("cpu_enc", lambda: cpu.encode(ys, yi, t)), ("lanes_enc", lambda: ref.encode(ys, yi, t))):
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        from neurocodec.coding.lanes import Segment

        out.append((name, q, ys.size, Segment(d, ys.size).lanes, med))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--images", type=int, default=0, help="first N images (0 = all)")
    parser.add_argument("--qualities", default="1,4,8")
    parser.add_argument("--sweep", default="", help="comma-separated bytes-per-lane values to compare")
    parser.add_argument("--speed-images", type=int, default=2)
    parser.add_argument("--speed-quality", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    folder = Path(args.kodak)
    if not folder.is_dir():
        print(f"Kodak images not found at {folder}: nothing measured")
        return 1
    from neurocodec.coding import lanes

    qualities = [float(q) for q in args.qualities.split(",") if q]
    sweep = [int(k) for k in args.sweep.split(",") if k]
    print(f"# lane coder vs cpu coder, {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"# BYTES_PER_LANE={lanes.BYTES_PER_LANE} MIN_SYMBOLS_PER_LANE={lanes.MIN_SYMBOLS_PER_LANE} "
          f"block lanes={lanes.DEFAULT_BLOCK_LANES}")
    latents, tables, model = kodak_latents(folder, args.images, qualities)
    rows = sizes(latents, tables, sweep)
    print(f"\n## size overhead, model {model}, {len(rows) // len(qualities)} images\n")
    print("| quality | mean bpp (cpu, y+z) | y symbols | lanes (y) | y overhead: total | worst image (y) "
          "| z overhead | y+z overhead |" + "".join(f" y @ {k} B/lane |" for k in sweep))
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(sweep))
    for q in qualities:
        r = [x for x in rows if x["q"] == q]
        ycpu = sum(x["y_cpu"] for x in r)
        ylanes = sum(x["y_lanes"] for x in r)
        zcpu = sum(x["z_cpu"] for x in r)
        zlanes = sum(x["z_lanes"] for x in r)
        worst = max(x["y_lanes"] / x["y_cpu"] - 1 for x in r)
        bpp = statistics.mean(8 * (x["y_cpu"] + x["z_cpu"]) / x["pixels"] for x in r)
        lanes_used = sorted(x["y_L"] for x in r)
        cells = "".join(f" {100 * (sum(x[f'y_sweep_{k}'] for x in r) / ycpu - 1):+.3f} % |" for k in sweep)
        print(f"| {q:g} | {bpp:.2f} | {r[0]['symbols']} | {lanes_used[0]}..{lanes_used[-1]} "
              f"| {100 * (ylanes / ycpu - 1):+.3f} % | {100 * worst:+.3f} % | {100 * (zlanes / zcpu - 1):+.3f} % "
              f"| {100 * ((ylanes + zlanes) / (ycpu + zcpu) - 1):+.3f} % |{cells}")
    if args.no_speed:
        return 0
    speed_lat = kodak_latents(folder, args.speed_images, [args.speed_quality])[0]
    print(f"\n## speed (y latents, quality {args.speed_quality:g}, median of {args.runs}, one thread, wall clock)\n")
    print("| image | symbols | lanes | constriction decode | lanes reference decode | ratio | constriction encode "
          "| lanes reference encode | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, q, n, L, med in speed(speed_lat, tables, args.runs):
        m = {k: n / v / 1e6 for k, v in med.items()}
        print(f"| {name} | {n} | {L} | {m['cpu_dec']:.1f} Msym/s | {m['lanes_dec']:.1f} Msym/s "
              f"| {med['lanes_dec'] / med['cpu_dec']:.1f}x slower | {m['cpu_enc']:.1f} Msym/s "
              f"| {m['lanes_enc']:.1f} Msym/s | {med['lanes_enc'] / med['cpu_enc']:.1f}x slower |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
