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
import math
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
    encoder = encoder_description()  # before the run: the commit it started from
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
                encoder=encoder, curves={k: [p.as_dict() for p in v] for k, v in curves.items()},
                bd_rate=bd)


def encoder_description() -> dict:
    """The encoder's schedule and the commit it ran from (RD results depend on both)."""
    import dataclasses
    import subprocess

    from neurocodec.models.overfit import FIT_OPTIONS

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return dict(options=dataclasses.asdict(FIT_OPTIONS), commit=commit)


def part_default_effort(args) -> dict:
    """The shipped default (``Codec()``) with encode-time latent refinement (``effort``) on
    the RD images, one image at a time (per-image curves, to pair with the RD part's)."""
    from neurocodec.bench import evaluate
    from neurocodec.bench.neural import NeuralCodec

    rows = {}
    for effort in args.default_efforts:
        codec = NeuralCodec(None, threads=args.threads, effort=effort)
        for name in args.images:
            points = evaluate(codec, [(name, load(name, args.kodak))], args.qualities, progress=False,
                              with_ms_ssim=False)
            if codec.mismatches:
                raise SystemExit(f"effort {effort}: a decode differs from the encoder's reconstruction")
            rows[f"{effort}|{name}"] = dict(effort=effort, image=name, model=codec.codec.name,
                                            weight_hash=codec.codec.info.weight_hash.hex(),
                                            points=[p.as_dict() for p in points])
            for p in points:
                print(f"| {codec.name} | {name} | {p.quality:g} | {p.bpp:.4f} | {p.psnr:.3f} | {p.enc_s:.1f} |",
                      flush=True)
    return dict(threads=args.threads, qualities=list(args.qualities), runs=rows)


def mean_curve(curves: list[list[dict]]) -> list[tuple[float, float]]:
    """Per-image curves (each a list of points at the same qualities, in order) -> the
    mean (bpp, PSNR) per quality, as neurocodec.bench.evaluate averages several images."""
    curves = [sorted(c, key=lambda p: p["quality"]) for c in curves]
    if any([p["quality"] for p in c] != [p["quality"] for p in curves[0]] for c in curves):
        raise ValueError("per-image curves at different qualities")
    return [(float(np.mean([c[i]["bpp"] for c in curves])), float(np.mean([c[i]["psnr"] for c in curves])))
            for i in range(len(curves[0]))]


def part_summary(args) -> dict:
    """BD-rate against AVIF and median encode time per image of each measured encoder
    (the overfitted codec's presets from overfit-rd-IMAGE[-PRESET].json, the default with
    effort from overfit-effort.json), on the images every one of them measured; the table
    and docs/img/overfit_rd_time.png."""
    from neurocodec.metrics import bd_rate

    rd = {}
    for path in sorted(RESULTS.glob("overfit-rd-kodim*.json")):
        d = json.loads(path.read_text())
        for image in d["images"]:
            curves = d["curves"]
            key = next(k for k in curves if k.startswith("overfit"))
            # files written before the encoder recorded its schedule hold the first encoder's runs
            label = key if d.get("encoder") else key + " (first encoder)"
            rd.setdefault(label, {})[image] = dict(points=curves[key], encoder=d.get("encoder"), file=path.name)
            for ref in ("JPEG", "WebP", "AVIF"):
                rd.setdefault(ref, {})[image] = dict(points=curves[ref], file=path.name)
    effort_path = RESULTS / "overfit-effort.json"
    if effort_path.exists():
        for run in json.loads(effort_path.read_text())["runs"].values():
            label = f"{run['model']} effort {run['effort']}"
            rd.setdefault(label, {})[run["image"]] = dict(points=run["points"], file=effort_path.name)
    images = sorted(set(rd.get("AVIF", {})))
    rows = []
    for label, per_image in rd.items():
        mine = [i for i in images if i in per_image]
        if not mine:
            continue
        test = mean_curve([per_image[i]["points"] for i in mine])
        ref = mean_curve([rd["AVIF"][i]["points"] for i in mine])
        try:
            bd = bd_rate([r for r, _ in ref], [q for _, q in ref], [r for r, _ in test], [q for _, q in test])
        except ValueError:
            bd = None
        per = {}
        for i in mine:
            t, r = per_image[i]["points"], rd["AVIF"][i]["points"]
            try:
                per[i] = bd_rate([p["bpp"] for p in r], [p["psnr"] for p in r], [p["bpp"] for p in t],
                                 [p["psnr"] for p in t])
            except ValueError:
                per[i] = None
        # encode seconds per image: each point is one image at one quality
        seconds = float(np.median([p["enc_s"] for i in mine for p in per_image[i]["points"]]))
        rows.append(dict(codec=label, images=mine, bd_rate_vs_avif=bd, bd_rate_per_image=per,
                         median_encode_s=seconds))
    rows.sort(key=lambda r: r["median_encode_s"])
    for r in rows:
        bd = "n/a" if r["bd_rate_vs_avif"] is None else f"{r['bd_rate_vs_avif']:+.1f} %"
        per = ", ".join(f"{i} {'n/a' if v is None else f'{v:+.0f} %'}" for i, v in r["bd_rate_per_image"].items())
        print(f"| {r['codec']} | {len(r['images'])} | {bd} | {per} | {r['median_encode_s']:.2f} |")
    if args.plot:
        plot_rd_time(rows, REPO / "docs" / "img" / "overfit_rd_time.png")
    if args.docs:
        from neurocodec.bench.report import update_section

        update_section(REPO / "docs" / "benchmarks.md", "overfit", summary_section(rows, rd, images))
        print("wrote the overfit section of docs/benchmarks.md")
    return dict(rows=rows)


def summary_section(rows: list[dict], rd: dict, images: list[str]) -> str:
    """The "Overfitted codec" section of docs/benchmarks.md, from the result files alone."""
    files = sorted({v["file"] for per_image in rd.values() for v in per_image.values()})
    lines = [
        "## Overfitted codec: RD against encode time (issue 22)", "",
        f"Generated by `python benchmarks/overfit.py --summary --plot --docs` on {time.strftime('%Y-%m-%d')} from "
        + ", ".join(f"`benchmarks/results/{f}`" for f in files) + " (each file names the command that made it). "
        "Every encoder on the same Kodak images, one torch thread, a CPU shared with other jobs; JPEG, WebP and "
        "AVIF measured in the overfitted codec's runs (their sizes and PSNR do not depend on the run). "
        "BD-rate against AVIF on the mean curve of the images each row measured (bpp and PSNR averaged per "
        "quality); encode time: the median over its images and qualities of one image's encode. The "
        "overfitted codec's design and what limits it: [overfitted.md](overfitted.md).", "",
        "| encoder | images | BD-rate vs AVIF | per image | median encode s per image |",
        "|---|---|---:|---|---:|",
    ]
    for r in rows:
        bd = "n/a" if r["bd_rate_vs_avif"] is None else f"{r['bd_rate_vs_avif']:+.1f} %"
        per = ", ".join(f"{i[5:]}: {'n/a' if v is None else f'{v:+.0f} %'}" for i, v in r["bd_rate_per_image"].items())
        lines.append(f"| {r['codec']} | {len(r['images'])} | {bd} | {per} | {r['median_encode_s']:.2f} |")
    lines += ["", f"Images: {', '.join(images)}. Goal of issue 22: -15 % against AVIF at the best preset.", "",
              "![RD against encode time](img/overfit_rd_time.png)"]
    return "\n".join(lines)


def plot_rd_time(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = {"overfit": ("tab:red", "o"), "effort": ("tab:blue", "s")}
    placed = {}   # kind -> labels placed so far: neighbours alternate below / above their point
    for r in sorted((r for r in rows if r["bd_rate_vs_avif"] is not None), key=lambda r: r["median_encode_s"]):
        kind = "overfit" if r["codec"].startswith("overfit") else "effort" if "effort" in r["codec"] else "classical"
        colour, marker = groups.get(kind, ("tab:gray", "^"))
        ax.scatter(r["median_encode_s"], r["bd_rate_vs_avif"], color=colour, marker=marker, s=40, zorder=3)
        name = r["codec"].replace("block-hyperprior-mse ", "default ").replace("block-hyperprior-mse", "default")
        index = placed[kind] = placed.get(kind, -1) + 1
        offset = ((-20, -13) if index % 2 == 0 else (-20, 7)) if kind == "effort" else (5, 4)
        ax.annotate(f"{name} ({len(r['images'])} img)", (r["median_encode_s"], r["bd_rate_vs_avif"]),
                    textcoords="offset points", xytext=offset, fontsize=7)
    # join the default's effort points (same images); the overfitted codec's rows may differ in images
    pts = sorted((r["median_encode_s"], r["bd_rate_vs_avif"]) for r in rows
                 if r["bd_rate_vs_avif"] is not None and "effort" in r["codec"])
    if len(pts) > 1:
        ax.plot(*zip(*pts), color=groups["effort"][0], lw=1, alpha=0.6)
    ax.axhline(0, color="k", lw=0.8)
    ax.axhline(-15, color="tab:green", lw=0.8, ls="--", label="goal of issue 22: -15 % vs AVIF")
    ax.set_xscale("log")
    ax.margins(x=0.25, y=0.1)
    ax.legend(loc="upper center", fontsize=7)
    ax.set_xlabel("median encode time per image and quality (s, CPU, 1 thread)")
    ax.set_ylabel("BD-rate vs AVIF (%), lower is better")
    ax.set_title("Encode time against RD (Kodak 02, 08, 17, 23 where measured)", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print("wrote", path)


#: Fixed crops of the tuning part: (image, top, left), 256 x 256.
TUNE_CROPS = (("kodim23", 128, 256), ("kodim02", 128, 256))
#: Named encoder schedules compared by --tune (neurocodec.models.overfit.FitOptions fields).
TUNE_VARIANTS = {
    "base": {},  # FitOptions(): the schedule before tuning (uniform noise 75 %, one network learning rate)
    "softround": dict(quantiser="softround", temperature=(0.3, 0.1), noise="uniform", noise_scale=(1.0, 1.0)),
    "softround-gauss": dict(quantiser="softround", temperature=(0.3, 0.1), noise="gaussian",
                            noise_scale=(0.25, 0.1)),
    "warmup3x20": dict(warmup_candidates=3, warmup_iterations=20),
    "arm-lr2": dict(arm_lr_scale=2.0),
    "arm-lr0.5": dict(arm_lr_scale=0.5),
    "synth-lr0.5": dict(synthesis_lr_scale=0.5),
    "synth-lr2": dict(synthesis_lr_scale=2.0),
    "ste-soft0.3": dict(ste_temperature=0.3),
}
_SR = dict(quantiser="softround", temperature=(0.3, 0.1), noise="uniform", noise_scale=(1.0, 1.0))
TUNE_VARIANTS.update({
    "sr-warmup3x20": dict(_SR, warmup_candidates=3, warmup_iterations=20),
    "sr-arm2": dict(_SR, arm_lr_scale=2.0),
    "sr-synth0.5": dict(_SR, synthesis_lr_scale=0.5),
    "sr-ste0.3": dict(_SR, ste_temperature=0.3),
    "sr-noise0.9": dict(_SR, noise_fraction=0.9),
    "sr-noise0.5": dict(_SR, noise_fraction=0.5),
    "sr-t0.5": dict(_SR, temperature=(0.5, 0.1)),
    "sr-t0.2": dict(_SR, temperature=(0.2, 0.05)),
    "sr-lat2": dict(_SR, latent_lr_scale=2.0),
    "sr-u0.5": dict(_SR, noise_scale=(1.0, 0.5)),
    "sr-n0.9-arm2": dict(_SR, noise_fraction=0.9, arm_lr_scale=2.0),
    "sr-n0.9-arm4": dict(_SR, noise_fraction=0.9, arm_lr_scale=4.0),
    "sr-n0.9-arm2-t0.5": dict(_SR, noise_fraction=0.9, arm_lr_scale=2.0, temperature=(0.5, 0.1)),
})


def linear_bd_rate(ref: list[tuple[float, float]], test: list[tuple[float, float]]) -> float | None:
    """BD-rate (percent) with log-rate interpolated linearly in PSNR (three points suffice;
    the cubic fit of neurocodec.metrics.bd_rate needs four). Points are (bpp, PSNR)."""
    def curve(points):
        pts = sorted(points, key=lambda p: p[1])
        return np.array([p[1] for p in pts]), np.log([p[0] for p in pts])

    q1, r1 = curve(ref)
    q2, r2 = curve(test)
    low, high = max(q1.min(), q2.min()), min(q1.max(), q2.max())
    if not high > low:
        return None
    grid = np.linspace(low, high, 200)
    d = np.mean(np.interp(grid, q2, r2) - np.interp(grid, q1, r1))
    return float((np.exp(d) - 1.0) * 100.0)


def part_tune(args) -> dict:
    """Encoder schedules on fixed crops at a fixed iteration count: real coded size (both
    segments) and PSNR of the decoded crop, the RD loss at each quality, BD-rate against
    the first variant named."""
    import torch

    from neurocodec.models import lambda_for_quality
    from neurocodec.models.overfit import FitOptions

    torch.set_num_threads(args.threads)
    model = fresh_model()
    path = RESULTS / "overfit-tune.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    runs = previous.get("runs", {})
    for variant in args.variants:
        options = FitOptions(**TUNE_VARIANTS[variant])
        for name, top, left in TUNE_CROPS:
            x = tensor(load(name, args.kodak)[top:top + 256, left:left + 256])
            for q in args.qualities:
                start = time.perf_counter()
                fit = model.fit(x, q, args.iterations, options=options)
                segments, decoded = model.code_latents(fit, q)
                seconds = time.perf_counter() - start
                x_hat = (model.reconstruct(decoded).clamp(0, 1) * 255).round() / 255
                mse = float(torch.mean((x_hat - x) ** 2))
                bpp = 8 * sum(map(len, segments)) / (256 * 256)
                psnr = -10 * math.log10(mse)
                lam = float(lambda_for_quality(torch.tensor([q])))
                key = f"{variant}|{name}|{q:g}|{args.iterations}"
                runs[key] = dict(variant=variant, image=name, quality=q, iterations=args.iterations, bpp=bpp,
                                 psnr=psnr, loss=bpp + lam * 255.0**2 * mse, seconds=seconds,
                                 options=TUNE_VARIANTS[variant])
                print(f"| {variant} | {name} | {q:g} | {bpp:.4f} | {psnr:.3f} | {runs[key]['loss']:.4f} | "
                      f"{seconds:.1f} |", flush=True)
    summary = tune_summary(runs, args.iterations, args.variants[0] if args.baseline is None else args.baseline)
    for row in summary:
        print(f"| {row['variant']} | " + " | ".join(f"{row['bd_rate'][n]:+.1f} %" if row['bd_rate'][n] is not None
                                                   else "n/a" for n, _, _ in TUNE_CROPS)
              + f" | {row['mean_bd_rate']:+.1f} % | {row['loss_change']:+.2f} % |")
    return dict(crops=[list(c) for c in TUNE_CROPS], size=256, threads=args.threads, runs=runs,
                summary={**previous.get("summary", {}), str(args.iterations): summary})


def tune_summary(runs: dict, iterations: int, baseline: str) -> list[dict]:
    """Per variant: BD-rate against ``baseline`` per crop (linear interpolation), their mean,
    and the mean relative change of the RD loss over the (crop, quality) pairs both have."""
    rows = []
    variants = sorted({r["variant"] for r in runs.values() if r["iterations"] == iterations},
                      key=lambda v: (v != baseline, v))
    for variant in variants:
        bd, changes = {}, []
        for name, _, _ in TUNE_CROPS:
            mine = {r["quality"]: r for r in runs.values()
                    if (r["variant"], r["image"], r["iterations"]) == (variant, name, iterations)}
            ref = {r["quality"]: r for r in runs.values()
                   if (r["variant"], r["image"], r["iterations"]) == (baseline, name, iterations)}
            common = sorted(set(mine) & set(ref))
            bd[name] = linear_bd_rate([(ref[q]["bpp"], ref[q]["psnr"]) for q in common],
                                      [(mine[q]["bpp"], mine[q]["psnr"]) for q in common]) if len(common) >= 2 else None
            changes += [100 * (mine[q]["loss"] / ref[q]["loss"] - 1) for q in common]
        known = [v for v in bd.values() if v is not None]
        rows.append(dict(variant=variant, bd_rate=bd, mean_bd_rate=float(np.mean(known)) if known else float("nan"),
                         loss_change=float(np.mean(changes)) if changes else float("nan")))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cost", action="store_true", help="encode cost per iteration (768x512)")
    ap.add_argument("--decode", action="store_true", help="decode time per image and multiplications per pixel")
    ap.add_argument("--rd", action="store_true", help="RD against JPEG, WebP and AVIF")
    ap.add_argument("--default-effort", action="store_true",
                    help="the shipped default with effort (--default-efforts) on --images, per image")
    ap.add_argument("--default-efforts", type=lambda s: [int(v) for v in s.split(",") if v], default=[0, 30])
    ap.add_argument("--summary", action="store_true",
                    help="BD-rate vs AVIF and median encode time of every measured encoder (from the JSONs)")
    ap.add_argument("--plot", action="store_true", help="with --summary: docs/img/overfit_rd_time.png")
    ap.add_argument("--docs", action="store_true", help="with --summary: its section of docs/benchmarks.md")
    ap.add_argument("--name", default="rd", help="--rd's results file: benchmarks/results/overfit-NAME.json")
    ap.add_argument("--tune", action="store_true",
                    help="encoder schedules (--variants) on fixed 256x256 crops at --iterations (default 300)")
    ap.add_argument("--variants", type=lambda s: [v for v in s.split(",") if v], default=["base"],
                    help=f"--tune's variants, the first the reference: {', '.join(TUNE_VARIANTS)}")
    ap.add_argument("--baseline", default=None, help="--tune's reference variant (default: the first of --variants)")
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
    if not (args.cost or args.decode or args.rd or args.tune or args.default_effort or args.summary):
        ap.error("choose at least one of --cost, --decode, --rd, --tune, --default-effort, --summary")
    unknown = [v for v in args.variants if v not in TUNE_VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(TUNE_VARIANTS)}")
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
        print("wrote", write(args.name, part_rd(args)))
    if args.default_effort:
        print("| codec | image | quality | bpp | PSNR (dB) | enc s |\n|---|---|---:|---:|---:|---:|")
        path = RESULTS / "overfit-effort.json"
        result = part_default_effort(args)
        if path.exists():  # keep other images' and efforts' runs
            result["runs"] = {**json.loads(path.read_text()).get("runs", {}), **result["runs"]}
        print("wrote", write("effort", result))
    if args.summary:
        print("| codec | images | BD-rate vs AVIF (mean curve) | per image | median encode s |\n"
              "|---|---:|---:|---|---:|")
        print("wrote", write("summary", part_summary(args)))
    if args.tune:
        args.iterations = args.iterations or 300
        if args.qualities == list(RD_QUALITIES):
            args.qualities = [2.0, 4.0, 6.0]
        print("| variant | crop | quality | bpp | PSNR (dB) | RD loss | s |\n|---|---|---:|---:|---:|---:|---:|")
        print("wrote", write("tune", part_tune(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
