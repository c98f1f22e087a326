"""Peak memory and time of coding a large image (issue 4, must-show 5: 8000x8000 < 3 GB).

A deterministic synthetic photo-like image is encoded in one child process and decoded in
another, both through the public API (``neurocodec.Codec.compress_with_reconstruction``
and ``neurocodec.decompress``), so each phase's peak resident memory is measured on its own
(``ru_maxrss`` of the child; under ``/usr/bin/time -v`` as well when that exists). Images
with a side above 2048 are coded in 1024x1024 tiles (see ``neurocodec.codec``).

Usage (8000x8000 takes a few minutes on one core; nice it on a shared machine)::

    nice -n 10 python benchmarks/large_image.py                  # 8000x8000, quality 4
    nice -n 10 python benchmarks/large_image.py --size 2048      # the largest untiled image
    nice -n 10 python benchmarks/large_image.py --size 3000x5000 --quality 8 --md out.md

Exit status 1 if a phase peaks above ``--limit-gb`` (default 3) or the decode does not
reproduce the encoder's reconstruction exactly.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STRIP = 512  # rows synthesised at a time (keeps the generator's own memory small)


def synthetic_large(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Deterministic photo-like uint8 (H, W, 3): smooth colour fields, edges, texture.

    Built strip by strip in float32, so generating it costs little beyond the 3*H*W bytes
    of the result.
    """
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(1.0, 12.0, (3, 2)) * 2 * np.pi
    phases = rng.uniform(0, 2 * np.pi, 3)
    rects = [(rng.integers(0, height), rng.integers(0, width), rng.integers(height // 20 + 1, height // 4 + 2),
              rng.integers(width // 20 + 1, width // 4 + 2), rng.uniform(0, 255, 3)) for _ in range(24)]
    out = np.empty((height, width, 3), np.uint8)
    xx = (np.arange(width, dtype=np.float32) / width)[None, :]
    for top in range(0, height, STRIP):
        rows = min(STRIP, height - top)
        yy = (np.arange(top, top + rows, dtype=np.float32) / height)[:, None]
        strip = np.empty((rows, width, 3), np.float32)
        for c in range(3):
            strip[:, :, c] = 128 + 70 * np.sin(freqs[c, 0] * yy + phases[c]) * np.cos(freqs[c, 1] * xx)
        for r0, c0, rh, cw, colour in rects:
            a, b = max(r0, top), min(r0 + rh, top + rows)
            if a < b:
                strip[a - top:b - top, c0:c0 + cw] = colour
        strip += np.random.default_rng([seed, top]).normal(0, 6, strip.shape).astype(np.float32)
        np.clip(np.rint(strip), 0, 255, out=strip)
        out[top:top + rows] = strip
    return out


def _psnr_blocked(a: np.ndarray, b: np.ndarray) -> float:
    total = 0.0
    for top in range(0, a.shape[0], STRIP):
        d = a[top:top + STRIP].astype(np.float32) - b[top:top + STRIP].astype(np.float32)
        total += float(np.square(d, dtype=np.float64).sum())
    mse = total / a.size
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- #
# Children
# --------------------------------------------------------------------------- #


def _child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    import neurocodec
    import neurocodec.zoo as zoo
    from neurocodec.codec import Codec

    zoo.WEIGHTS_DIR = Path(args.workdir) / "zoo"

    work = Path(args.workdir)
    h, w = args.size
    report = {}
    if args.role == "encode":
        t0 = time.perf_counter()
        image = synthetic_large(h, w)
        report["time_synthesis"] = time.perf_counter() - t0
        codec = Codec(args.model)
        report["rss_before_mb"] = _rss_mb()
        t0 = time.perf_counter()
        data, recon = codec.compress_with_reconstruction(image, args.quality)
        report["time"] = time.perf_counter() - t0
        report["bytes"] = len(data)
        report["bpp"] = 8 * len(data) / (h * w)
        report["psnr"] = _psnr_blocked(image, recon)
        (work / "stream.ncdc").write_bytes(data)
        np.save(work / "recon.npy", recon)
    else:
        data = (work / "stream.ncdc").read_bytes()
        import neurocodec.zoo  # noqa: F401  (load the model before measuring the baseline)

        neurocodec.Codec(args.model)
        report["rss_before_mb"] = _rss_mb()
        t0 = time.perf_counter()
        decoded = neurocodec.decompress(data)
        report["time"] = time.perf_counter() - t0
        del data
        recon = np.load(work / "recon.npy", mmap_mode="r")
        report["shape"] = list(decoded.shape)
        report["matches_encoder"] = bool(decoded.shape == recon.shape and all(
            np.array_equal(decoded[t:t + STRIP], recon[t:t + STRIP]) for t in range(0, h, STRIP)))
    report["peak_rss_mb"] = _rss_mb()
    (work / f"{args.role}.json").write_text(json.dumps(report))


def _spawn(args, work: Path, role: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--workdir", str(work),
           "--size", f"{args.size[0]}x{args.size[1]}", "--quality", repr(args.quality), "--threads", str(args.threads)]
    if args.model:
        cmd += ["--model", args.model]
    if Path("/usr/bin/time").exists():
        cmd = ["/usr/bin/time", "-v"] + cmd
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{role} child failed with status {proc.returncode}")
    report = json.loads((work / f"{role}.json").read_text())
    report["wall_process"] = wall
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if match:
        report["time_v_peak_rss_mb"] = int(match.group(1)) / 1024.0
    match = re.search(r"User time \(seconds\): ([0-9.]+)", proc.stderr)
    if match:
        report["cpu_user_s"] = float(match.group(1))
    return report


def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="ncdc-large-"))
    try:
        # Both children use one snapshot of the weight file (it may be replaced meanwhile).
        sys.path.insert(0, str(ROOT / "src"))
        import neurocodec.zoo as zoo

        name = args.model or zoo.DEFAULT_MODEL
        (work / "zoo").mkdir()
        source_dir = Path(args.weights_dir) if args.weights_dir else Path(zoo.WEIGHTS_DIR)
        shutil.copy2(source_dir / f"{name}.safetensors", work / "zoo")
        enc = _spawn(args, work, "encode")
        print(f"encode: {enc}", file=sys.stderr, flush=True)
        dec = _spawn(args, work, "decode")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dict(size=list(args.size), quality=args.quality, threads=args.threads, encode=enc, decode=dec)


def markdown(result: dict, command: str, limit_gb: float) -> str:
    h, w = result["size"]
    lines = [f"`{command}`", "",
             "| image | phase | time (s) | CPU user s (whole child) | peak RSS (MB) | RSS before coding (MB) | notes |",
             "|---|---|---|---|---|---|---|"]
    enc, dec = result["encode"], result["decode"]
    for phase, r, notes in (
            ("encode", enc, f"{r_bpp(enc)} bpp, {enc['psnr']:.2f} dB"),
            ("decode", dec, f"shape {tuple(dec['shape'])}, equals encoder's reconstruction: "
                            f"{'yes' if dec['matches_encoder'] else 'NO'}")):
        peak = r.get("time_v_peak_rss_mb", r["peak_rss_mb"])
        cpu = f"{r['cpu_user_s']:.0f}" if "cpu_user_s" in r else "n/a"
        lines.append(f"| {h}x{w} q{result['quality']:g} | {phase} | {r['time']:.1f} | {cpu} | {peak:.0f} "
                     f"{'(over ' + str(limit_gb) + ' GB!)' if peak > limit_gb * 1024 else ''} | "
                     f"{r['rss_before_mb']:.0f} | {notes} |")
    return "\n".join(lines) + "\n"


def r_bpp(enc: dict) -> str:
    return f"{enc['bpp']:.3f}"


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    return (int(parts[0]), int(parts[-1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=_size, default=(8000, 8000), help="HxW or a single side (default 8000)")
    p.add_argument("--quality", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default=None)
    p.add_argument("--weights-dir", default=None, help="take the model's weight file from this directory")
    p.add_argument("--limit-gb", type=float, default=3.0)
    p.add_argument("--md", default=None, help="append the markdown table to this file")
    p.add_argument("--json", default=None)
    p.add_argument("--role", choices=["encode", "decode"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role:
        _child(args)
        return 0
    result = run(args)
    command = "python benchmarks/large_image.py " + " ".join(sys.argv[1:] if argv is None else argv)
    table = markdown(result, command.strip(), args.limit_gb)
    print(table)
    if args.md:
        with open(args.md, "a") as f:
            f.write(table + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    peaks = [r.get("time_v_peak_rss_mb", r["peak_rss_mb"]) for r in (result["encode"], result["decode"])]
    ok = max(peaks) <= args.limit_gb * 1024 and result["decode"]["matches_encoder"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
