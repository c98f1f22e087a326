#!/usr/bin/env python
"""Benchmarks of the overfitted codec (architecture ``overfit``, issue 22).

Parts (any combination; each prints a table and writes JSON under benchmarks/results/):

* ``--cost``: encode cost per iteration on a 768x512 Kodak image, fp32 and bf16, 1 and 2
  threads (``--quick``: 3 timed iterations after 1 warm-up instead of 10 after 2);
* ``--decode``: decode time per Kodak image (the whole stream: parameters, wavefront
  decoding of the pyramid, synthesis) and the decoder's multiplications per pixel. The
  streams come from short fits (``--decode-iterations``, default 100): decoding time
  depends on the number of latents and steps, not on how long the encoder ran;
* ``--rd``: RD on kodim02, 08, 17 and 23 (``--images``) at four qualities for a preset
  (``--preset``, default fast), through ``Codec`` (whole files, header included), with
  JPEG, WebP and AVIF measured on the same images in the same run; BD-rate of the
  overfitted codec against each, and its median encode time per image.

    python benchmarks/overfit.py --cost --quick                      # about 2 minutes
    python benchmarks/overfit.py --decode --images kodim23 --decode-iterations 30
    python benchmarks/overfit.py --rd --images kodim23 --qualities 4 --iterations 20   # smoke run
    python benchmarks/overfit.py --rd --threads 2                    # the full RD part (hours on a CPU)

``--threads`` sets torch's threads for the decode and RD parts (default 2). Results:
``benchmarks/results/overfit-{cost,decode,rd}.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import neurocodec  # noqa: F401
except ImportError:  # a checkout that is not pip-installed
    sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402

SHARED = REPO.parent / "shared"
RESULTS = REPO / "benchmarks" / "results"
RD_IMAGES = ("kodim02", "kodim08", "kodim17", "kodim23")
RD_QUALITIES = (2.0, 4.0, 6.0, 8.0)


def load(name: str, kodak: Path) -> np.ndarray:
    from neurocodec.codec import to_array

    return to_array(kodak / f"{name}.png")


def fresh_model():
    from neurocodec.models import build_model

    model = build_model("overfit")
    model.update_tables()
    return model


def tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.array(array)).permute(2, 0, 1)[None].float() / 255.0


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"overfit-{name}.json"
    payload = dict(payload, command=" ".join(sys.argv), machine=platform.processor() or platform.machine(),
                   when=time.strftime("%Y-%m-%d %H:%M:%S"))
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def part_cost(args) -> dict:
    """Seconds per fit iteration on a 768x512 image for each precision and thread count."""
    import torch

    model = fresh_model()
    array = load("kodim23", args.kodak)
    if array.shape[0] > array.shape[1]:
        array = array.transpose(1, 0, 2)
    x = tensor(array)
    warm, timed = (1, 3) if args.quick else (2, 10)
    rows = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for precision in ("fp32", "bf16"):
                model.fit(x, 4.0, warm, precision=precision)
                start = time.perf_counter()
                model.fit(x, 4.0, timed, precision=precision)
                per = (time.perf_counter() - start) / timed
                rows.append(dict(threads=threads, precision=precision, seconds_per_iteration=per))
                print(f"| {array.shape[1]}x{array.shape[0]} | {threads} | {precision} | {per:.3f} |", flush=True)
    finally:
        torch.set_num_threads(previous)
    return dict(image="kodim23", width=int(array.shape[1]), height=int(array.shape[0]), warmup=warm,
                timed_iterations=timed, rows=rows)


def part_decode(args) -> dict:
    """Decode seconds per image (median of 3) and multiplications per pixel."""
    import torch

    model = fresh_model()
    rows = []
    for name in args.images:
        array = load(name, args.kodak)
        x = tensor(array)
        torch.set_num_threads(args.fit_threads)
        fit = model.fit(x, 4.0, args.decode_iterations)
        segments, decoded = model.code_latents(fit, 4.0)
        shape = tuple(x.shape[-2:])
        torch.set_num_threads(args.threads)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            with torch.inference_mode():
                model.decompress(segments, shape)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        model.decode_latents(segments, shape)
        entropy = time.perf_counter() - start
        steps = model.schedule(*shape).bounds.size - 1
        row = dict(image=name, seconds=statistics.median(times), entropy_decoding_seconds=entropy, steps=steps,
                   bytes=sum(map(len, segments)), macs_per_pixel=model.macs_per_pixel(*shape))
        rows.append(row)
        print(f"| {name} | {row['seconds']:.3f} | {entropy:.3f} | {steps} | {row['bytes']} | "
              f"{row['macs_per_pixel']:.0f} |", flush=True)
    return dict(threads=args.threads, fit_iterations=args.decode_iterations, rows=rows)


class OverfitBenchCodec:
    """The overfitted codec through ``Codec`` (whole files), for :func:`neurocodec.bench.evaluate`."""

    def __init__(self, iterations: int, label: str, weights: Path):
        from neurocodec import Codec

        self.name = label
        self.iterations = iterations
        self.codec = Codec(weights=str(weights))

    def encode(self, img: np.ndarray, quality) -> bytes:
        return self.codec.compress(img, quality=float(quality), effort=self.iterations)

    def decode(self, data: bytes) -> np.ndarray:
        return self.codec.decompress(data)


def part_rd(args) -> dict:
    import torch

    from neurocodec.bench import DEFAULT_QUALITIES, evaluate, make_classical
    from neurocodec.bench.suite import bd_or_none
    from neurocodec.models.overfit import PRESETS
    from neurocodec.zoo import export_weights

    torch.set_num_threads(args.threads)
    images = [(name, load(name, args.kodak)) for name in args.images]
    iterations = args.iterations or PRESETS[args.preset]
    label = f"overfit {args.preset if not args.iterations else f'{iterations} it'}"
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "overfit-cc.safetensors"
        export_weights(fresh_model(), weights, name="overfit-cc")
        ours = evaluate(OverfitBenchCodec(iterations, label, weights), images, args.qualities, progress=False,
                        with_ms_ssim=False)
    curves = {label: ours}
    for key in ("jpeg", "webp", "avif"):
        codec = make_classical(key)
        curves[codec.name] = evaluate(codec, images, DEFAULT_QUALITIES[key], progress=False, with_ms_ssim=False)
    bd = {ref: bd_or_none(ours, pts) for ref, pts in curves.items() if ref != label}
    for p in ours:
        print(f"| {label} | {p.quality} | {p.bpp:.4f} | {p.psnr:.3f} | {p.enc_s:.1f} | {p.dec_s:.3f} |", flush=True)
    for ref, value in bd.items():
        print(f"| BD-rate vs {ref} | {'n/a (no PSNR overlap)' if value is None else f'{value:+.1f} %'} |")
    return dict(images=list(args.images), preset=args.preset, iterations=iterations, threads=args.threads,
                curves={k: [p.as_dict() for p in v] for k, v in curves.items()}, bd_rate=bd)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cost", action="store_true", help="encode cost per iteration (768x512)")
    ap.add_argument("--decode", action="store_true", help="decode time per image and multiplications per pixel")
    ap.add_argument("--rd", action="store_true", help="RD against JPEG, WebP and AVIF")
    ap.add_argument("--quick", action="store_true", help="fewer timed iterations in --cost")
    ap.add_argument("--kodak", type=Path, default=SHARED / "data" / "kodak", help="folder of Kodak PNGs")
    ap.add_argument("--images", type=lambda s: [v for v in s.split(",") if v], default=list(RD_IMAGES))
    ap.add_argument("--qualities", type=lambda s: [float(v) for v in s.split(",") if v], default=list(RD_QUALITIES))
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--iterations", type=int, default=0, help="override the preset's iteration count")
    ap.add_argument("--decode-iterations", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2, help="threads of decoding and of the RD part")
    ap.add_argument("--fit-threads", type=int, default=1, help="threads of the fits that make --decode's streams")
    args = ap.parse_args(argv)
    if not (args.cost or args.decode or args.rd):
        ap.error("choose at least one of --cost, --decode, --rd")
    if not args.kodak.is_dir():
        print(f"no Kodak folder at {args.kodak}", file=sys.stderr)
        return 2
    if args.cost:
        print("| image | threads | precision | s / iteration |\n|---|---:|---|---:|")
        print("wrote", write("cost", part_cost(args)))
    if args.decode:
        print(f"| image | decode s ({args.threads} threads) | entropy decoding s | steps | bytes | mult / pixel |\n"
              "|---|---:|---:|---:|---:|---:|")
        print("wrote", write("decode", part_decode(args)))
    if args.rd:
        print("| codec | quality | bpp | PSNR (dB) | enc s | dec s |\n|---|---:|---:|---:|---:|---:|")
        print("wrote", write("rd", part_rd(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
