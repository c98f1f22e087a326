"""One-command GPU recipe: warm-start from the shipped default, train for a few minutes,
export, and keep the result only if it beats the shipped model on Kodak.

On a machine with a CUDA GPU, from the project root (../shared/data next to it)::

    python benchmarks/gpu_recipe.py --out runs/gpu-recipe

finishes inside a 10-minute budget, start-up included (``--budget-minutes``): it trains
the shipped model's architecture and options (read from its weight file) from its weights
with ``--device cuda`` (bf16 autocast, channels_last, batch 32 of 256-pixel crops, the rate of
the coded symbols, a quarter of the crops at integer qualities) for ``--minutes`` or what
the budget leaves after a reserve for export and evaluation, then writes into ``--out``:

* ``run/`` - the training run (config.json, log.jsonl, checkpoint.pt): resumable with
  ``neurocodec train DATA run/ --device cuda --steps N``;
* ``NAME.safetensors`` (+ ``.hints``) - the exported weights, kept only if they beat the
  shipped model (BD-rate < 0 on the Kodak images measured), removed otherwise;
* ``card.json`` - the exported model card (training config, steps, GPU-minutes, last log line);
* ``report.json`` / ``report.md`` - both models' Kodak points (real file sizes, header
  included; PSNR per image then averaged) and the BD-rate of the new weights against the
  shipped ones, the decision, and the wall time of each stage.

Evaluation runs on the CPU in ``--workers`` processes (one image each at a time).
Its plumbing is tested on the CPU with tiny data (tests/test_gpu_recipe.py)::

    python benchmarks/gpu_recipe.py --device cpu --minutes 0.05 --data DIR --kodak DIR --images 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

START = time.monotonic()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT.parent / "runs" / "gpu-recipe"), help="output folder (created)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--minutes", type=float, default=6.0, help="training time at most (default: 6)")
    parser.add_argument("--budget-minutes", type=float, default=10.0,
                        help="the whole run, start-up included; training gets what is left after --reserve")
    parser.add_argument("--reserve", type=float, default=150.0,
                        help="seconds kept for export and evaluation (default: 150)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    parser.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--images", type=int, default=24, help="Kodak images measured (default: all 24)")
    parser.add_argument("--qualities", default="1,3,5,8")
    parser.add_argument("--batch", type=int, help="default: 32 on cuda, 8 on cpu")
    parser.add_argument("--crop", type=int, help="default: 256 on cuda, 128 on cpu")
    parser.add_argument("--scales", default="0.5,0.75", help="training image scales (default: 0.5,0.75)")
    parser.add_argument("--lr", type=float, default=3e-5, help="learning rate (the shipped run ended at 1e-5)")
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="evaluation processes")
    parser.add_argument("--name", default="block-hyperprior-mse-gpu")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    command = "python benchmarks/gpu_recipe.py " + " ".join(sys.argv[1:] if argv is None else argv)

    import torch

    from neurocodec.train import TrainConfig, train
    from neurocodec.train.command import CUDA_DEFAULTS
    from neurocodec.train.export import export_run, read_log
    from neurocodec.zoo import model_info
    from neurocodec.zoo.weights import read_metadata

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shipped = model_info()
    meta = read_metadata(shipped.path)
    on_gpu = args.device == "cuda"
    device_name = torch.cuda.get_device_name(0) if on_gpu else "cpu"
    stages = {"start-up": round(time.monotonic() - START, 1)}
    cfg = TrainConfig(
        data=args.data, architecture=meta["architecture"], model_config=dict(meta["config"]),
        rate_proxy="round", integer_qualities=0.25, lr=args.lr, lr_drop_at=1.0, steps=10**9,
        batch=args.batch or (CUDA_DEFAULTS["batch"] if on_gpu else 8),
        crop=args.crop or (CUDA_DEFAULTS["crop"] if on_gpu else 128),
        scales=tuple(float(s) for s in args.scales.split(",")), seed=args.seed, checkpoint_every=500,
        log_every=20, init_from=str(shipped.path), precision="auto")
    budget = args.budget_minutes * 60 - (time.monotonic() - START) - args.reserve
    seconds = max(1.0, min(args.minutes * 60, budget))
    print(f"training {cfg.architecture} {cfg.model_config} from {shipped.name} on {device_name} for "
          f"{seconds:.0f} s (batch {cfg.batch}, crop {cfg.crop})", flush=True)
    tic = time.monotonic()
    train(cfg, out / "run", progress=args.progress, device=args.device, time_limit=seconds)
    stages["train"] = round(time.monotonic() - tic, 1)
    records = read_log(out / "run" / "log.jsonl")

    tic = time.monotonic()
    weights = out / f"{args.name}.safetensors"
    minutes = records[-1]["seconds"] / 60 if records else 0.0
    export_run(out / "run", weights, args.name,
               f"{shipped.name} fine-tuned for {minutes:.1f} minutes on {device_name} (benchmarks/gpu_recipe.py)",
               card_extra={"command": command, "device": device_name, "warm_start": shipped.name,
                           "warm_start_hash": shipped.weight_hash.hex()[:16],
                           ("gpu_minutes" if on_gpu else "train_minutes"): round(minutes, 2)})
    (out / "card.json").write_text(json.dumps(read_metadata(weights), indent=1, default=str))
    stages["export"] = round(time.monotonic() - tic, 1)

    tic = time.monotonic()
    qualities = [float(q) for q in args.qualities.split(",")]
    images = kodak_images(args.kodak, args.images)
    curves = measure_rd({"shipped": None, "trained": str(weights)}, images, qualities, args.workers)
    bd = bd_against(curves["shipped"], curves["trained"])
    stages["evaluate"] = round(time.monotonic() - tic, 1)
    keep = bd is not None and bd < 0
    if not keep:
        for path in (weights, weights.with_suffix(".hints")):
            path.unlink(missing_ok=True)
    stages["total"] = round(time.monotonic() - START, 1)
    report = {"command": command, "device": device_name, "shipped": shipped.name,
              "shipped_hash": shipped.weight_hash.hex()[:16], "steps": records[-1]["step"] if records else 0,
              "train_seconds": records[-1]["seconds"] if records else 0.0, "images": [n for n, _ in images],
              "qualities": qualities, "curves": curves, "bd_rate_vs_shipped": bd, "kept": keep,
              "weights": weights.name if keep else None, "stages_s": stages, "last_log": records[-1] if records else None}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(render(report))
    print(render(report), flush=True)
    return 0


def kodak_images(folder: str | Path, count: int) -> list:
    """The first ``count`` images of ``folder`` as (name, uint8 (H, W, 3)) pairs."""
    from neurocodec.bench import load_images

    return load_images(folder)[:count]


def _measure_one(task):
    weights, image, qualities = task
    import torch

    from neurocodec.bench import evaluate
    from neurocodec.bench.neural import NeuralCodec

    torch.set_num_threads(1)
    points = evaluate(NeuralCodec(weights=weights), [image], qualities, progress=False, with_ms_ssim=False)
    return [(p.bpp, p.psnr) for p in points]


def measure_rd(models: dict, images: list, qualities: list[float], workers: int = 1) -> dict:
    """Kodak RD of each model (label -> weight file, None for the shipped default): real file
    sizes through the public codec, per image, then averaged per quality. Returns label ->
    list of [quality, bpp, PSNR]. ``workers`` > 1 measures images in parallel processes."""
    tasks = [(weights, image, qualities) for weights in models.values() for image in images]
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(tasks))) as pool:
            results = list(pool.map(_measure_one, tasks))
    else:
        results = [_measure_one(task) for task in tasks]
    curves = {}
    for i, label in enumerate(models):
        per_image = results[i * len(images):(i + 1) * len(images)]
        curves[label] = [[q, round(sum(r[k][0] for r in per_image) / len(per_image), 5),
                          round(sum(r[k][1] for r in per_image) / len(per_image), 4)] for k, q in enumerate(qualities)]
    return curves


def bd_against(reference: list, test: list) -> float | None:
    """BD-rate (%) of curve ``test`` against ``reference`` ([quality, bpp, PSNR] rows), or
    None where it is undefined (PSNR ranges that do not overlap, fewer than 4 points)."""
    from neurocodec.metrics import bd_rate

    try:
        return round(bd_rate([r[1] for r in reference], [r[2] for r in reference],
                             [t[1] for t in test], [t[2] for t in test]), 3)
    except ValueError:
        return None


def render(report: dict) -> str:
    bd = report["bd_rate_vs_shipped"]
    lines = [f"# GPU recipe: {report['device']}", "",
             f"`{report['command']}`", "",
             f"{report['steps']} steps in {report['train_seconds']:.0f} s from {report['shipped']} "
             f"({report['shipped_hash']}); stages (s): "
             + ", ".join(f"{k} {v:g}" for k, v in report["stages_s"].items()), "",
             f"BD-rate against the shipped model on {len(report['images'])} Kodak image(s) (real file sizes): "
             + ("n/a" if bd is None else f"**{bd:+.2f} %**") + " - weights "
             + ("kept" if report["kept"] else "not kept (they do not beat the shipped model)"), "",
             "| quality | shipped bpp | shipped PSNR | trained bpp | trained PSNR |", "|---|---|---|---|---|"]
    for s, t in zip(report["curves"]["shipped"], report["curves"]["trained"]):
        lines.append(f"| {s[0]:g} | {s[1]:.4f} | {s[2]:.3f} | {t[1]:.4f} | {t[2]:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
