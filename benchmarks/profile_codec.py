"""Per-stage time of encoding and decoding one image with a shipped model.

Wraps the stages of the real :class:`neurocodec.Codec` path with timers (nothing is
re-implemented here, so what is timed is what ``compress`` / ``decompress`` run) and
prints, for encode and decode, each stage's own time (children excluded) and its share of
the total, as the median over ``--repeats`` runs. On a shared machine compare the shares,
not the seconds::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/profile_codec.py --threads 1
    python benchmarks/profile_codec.py --image kodim05.png --quality 8 --threads 2

``--digest OUT.json`` instead writes the sha256 of the stream, of the encoder's
reconstruction and of the decoded pixels for a few Kodak images and qualities, and
``--compare OLD.json`` checks a digest against an earlier one (e.g. before and after a
speed change that must not change a coded bit or a pixel): exit status 1 on any
difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DEFAULT_KODAK = ROOT.parent / "shared" / "data" / "kodak"


class StageTimer:
    """Nested timers: each stage's own time (children excluded).

    Args:
      clock: ``time.perf_counter`` (wall) or ``time.process_time`` (CPU time of the
        process, all threads: on a loaded machine it counts the work, not the waiting).
    """

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.own = defaultdict(float)
        self.calls = defaultdict(int)
        self.order: list[str] = []
        self._stack: list[list] = []  # [name, start, time spent in children]

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            if name not in self.own:
                self.order.append(name)
            self._stack.append([name, self.clock(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                _, start, children = self._stack.pop()
                spent = self.clock() - start
                self.own[name] += spent - children
                self.calls[name] += 1
                if self._stack:
                    self._stack[-1][2] += spent

        return timed

    def reset(self):
        self.own.clear()
        self.calls.clear()


def instrument(codec, timer: StageTimer) -> None:
    """Replace the stages of ``codec`` (a block-hyperprior Codec) by timed wrappers."""
    import neurocodec.codec as codec_module
    import neurocodec.entropy.hyperprior as hyperprior
    from neurocodec.coding import get_backend

    model = codec.model
    em = model.entropy_model

    def patch_method(obj, attr, name):
        setattr(obj, attr, timer.wrap(name, getattr(obj, attr)))

    def patch_global(module, attr, name):
        setattr(module, attr, timer.wrap(name, getattr(module, attr)))

    patch_method(codec, "_to_tensor", "image -> tensor, padding")
    patch_global(codec_module, "_to_uint8", "float -> uint8")
    patch_global(codec_module, "pack", "container pack + CRC")
    patch_global(codec_module, "unpack", "container unpack + CRC")
    for attr, name in (("colour", "analysis: colour"), ("dct", "analysis: DCT"),
                       ("encoder", "analysis: linear projection"),   # block-walloc's whole learned encoder
                       ("inverse_colour", "synthesis: inverse colour")):
        if hasattr(model, attr):
            patch_method(getattr(model, attr), "forward", name)
    for attr, name in (("analysis_refine", "analysis: refine blocks"),
                       ("synthesis_refine", "synthesis: refine blocks")):
        for block in getattr(model, attr, ()):  # synthesis iterates over the blocks itself
            patch_method(block, "forward", name)
    if hasattr(model, "dct"):
        patch_method(model.dct, "inverse", "synthesis: inverse DCT")
    if getattr(model, "pixel_refine", None) is not None:
        patch_method(model.pixel_refine, "forward", "synthesis: pixel refiner")
    patch_method(model, "code_latents", "gains, y symbols, rest of encode")
    patch_method(model, "reconstruct", "synthesis: rest (gains, modulation)")
    patch_method(em, "quantise", "gains, y symbols, rest of encode")
    patch_method(em.hyper_analysis, "forward", "hyper-analysis")
    patch_method(em, "_prior", "prior: rest (log2 gain, int32 indexes)")
    hs = em.hyper_synthesis
    for i, layer in enumerate(hs.layers):
        patch_method(layer, "forward_exact", f"prior: exact conv {i}")
    patch_global(hyperprior, "requantise_exact", "prior: requantise")
    patch_global(hyperprior, "scale_prior_exact", "prior: mean / index head")
    backend = get_backend(codec.coder)
    patch_method(em, "encode", "coding: z and y (rest)")
    patch_method(em, "decode", "coding: z and y (rest)")
    patch_method(backend, "encode", "coding: range coder")
    patch_method(backend, "decode", "coding: range coder")


def profile(args) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    import neurocodec

    torch.set_num_threads(args.threads)
    codec = neurocodec.Codec(args.model, quality=args.quality, weights=args.weights)
    img = np.asarray(Image.open(Path(args.kodak) / args.image).convert("RGB")).copy()
    codec.decompress(codec.compress(img))  # warm-up: lazy imports, model caches
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    timer = StageTimer(clock)
    instrument(codec, timer)
    codec.decompress(codec.compress(img))
    results = {}
    for phase in ("encode", "decode"):
        runs = defaultdict(list)
        totals = []
        data = codec.compress(img)
        for _ in range(args.repeats):
            timer.reset()
            t0 = clock()
            if phase == "encode":
                codec.compress(img)
            else:
                codec.decompress(data)
            total = clock() - t0
            totals.append(total)
            accounted = sum(timer.own.values())
            for name in timer.order:
                if name in timer.own:
                    runs[name].append(timer.own[name])
            runs["(outside the stages)"].append(total - accounted)
        results[phase] = {"total_s": statistics.median(totals),
                          "stages": {k: statistics.median(v) for k, v in runs.items()}}
    return {"image": args.image, "quality": args.quality, "threads": args.threads, "clock": args.clock,
            "model": codec.name,
            "shape": list(img.shape), "torch": torch.__version__, "results": results}


def print_profile(report: dict) -> None:
    print(f"{report['model']} q{report['quality']:g}, {report['image']} {report['shape'][1]}x{report['shape'][0]}, "
          f"{report['threads']} thread(s), torch {report['torch']}, {report['clock']} time (median of repeats; "
          "own time of each stage)")
    for phase, res in report["results"].items():
        total = res["total_s"]
        print(f"\n{phase}: {total:.3f} s")
        for name, t in sorted(res["stages"].items(), key=lambda kv: -kv[1]):
            if t < 0.0005 * total:
                continue
            print(f"  {name:42s} {t * 1000:8.1f} ms  {100 * t / total:5.1f} %")


def digest(args) -> dict:
    """sha256 of stream, encoder reconstruction and decoded pixels per (image, quality)."""
    import numpy as np
    from PIL import Image

    import neurocodec

    codec = neurocodec.Codec(args.model, weights=args.weights)
    out = {}
    for name in args.digest_images.split(","):
        img = np.asarray(Image.open(Path(args.kodak) / name).convert("RGB")).copy()
        for q in (float(v) for v in args.digest_qualities.split(",")):
            data, recon = codec.compress_with_reconstruction(img, q)
            decoded = neurocodec.decompress(data)
            out[f"{name} q{q:g}"] = {"stream": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                                     "encoder_pixels": hashlib.sha256(recon.tobytes()).hexdigest(),
                                     "decoded_pixels": hashlib.sha256(decoded.tobytes()).hexdigest(),
                                     "round_trip_equal": bool(np.array_equal(recon, decoded))}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", default=str(DEFAULT_KODAK))
    parser.add_argument("--image", default="kodim01.png")
    parser.add_argument("--quality", type=float, default=4.0)
    parser.add_argument("--model", default=None, help="shipped model (default: the default model)")
    parser.add_argument("--weights", help="a weight file instead of the shipped weights (e.g. a training candidate)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or CPU time of the process (steadier on a loaded machine)")
    parser.add_argument("--json", help="also write the profile here")
    parser.add_argument("--digest", metavar="OUT.json", help="write stream / pixel digests instead of profiling")
    parser.add_argument("--compare", metavar="OLD.json", help="with --digest: fail on any difference from OLD")
    parser.add_argument("--digest-images", default="kodim01.png,kodim05.png,kodim23.png")
    parser.add_argument("--digest-qualities", default="1,4,8")
    args = parser.parse_args(argv)

    if args.digest:
        import torch

        torch.set_num_threads(args.threads)
        current = digest(args)
        Path(args.digest).write_text(json.dumps(current, indent=1))
        status = 0
        for key, d in current.items():
            line = f"{key}: {d['bytes']} bytes, stream {d['stream'][:16]}, pixels {d['decoded_pixels'][:16]}"
            if not d["round_trip_equal"]:
                line += "  ENCODER/DECODER PIXELS DIFFER"
                status = 1
            if args.compare:
                old = json.loads(Path(args.compare).read_text()).get(key)
                same = old is not None and all(old[k] == d[k] for k in ("stream", "encoder_pixels", "decoded_pixels"))
                line += "  identical to before" if same else "  DIFFERS FROM BEFORE"
                status |= 0 if same else 1
            print(line)
        return status

    report = profile(args)
    print_profile(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
