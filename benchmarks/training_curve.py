"""RD against CPU time: Kodak BD-rate of training snapshots, for choosing architectures.

Each run directory holds snapshots/stepNNNNNNN.pt (``snapshot_every``) and config.json.
A run that was warm-started from another gets that run's CPU time added (``--offset``).
Every snapshot is exported and measured with real files (not the entropy estimate) on
the first N Kodak images at four qualities, against Pillow JPEG on the same images.

    python benchmarks/training_curve.py runs/block-v3 --offset 1880 --images 8

``--reuse`` keeps the rows of snapshots already in ``--out-json`` (same run name and step,
same images and qualities) instead of measuring them again: Pillow JPEG is deterministic,
so the baseline they were measured against is the same.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv=None) -> int:
    import torch

    from neurocodec.bench import evaluate, load_images, make_classical
    from neurocodec.bench.neural import NeuralCodec
    from neurocodec.metrics import bd_rate
    from neurocodec.train.export import cpu_seconds, load_trained, read_log
    from neurocodec.zoo import export_weights

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="run directories (required unless --render-only)")
    parser.add_argument("--offset", type=float, nargs="*", default=[], help="CPU seconds before each run (warm starts)")
    parser.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--qualities", default="1,3,5,8")
    parser.add_argument("--out-json", default=str(ROOT / "benchmarks" / "results" / "training_curve.json"))
    parser.add_argument("--out-png", default=str(ROOT / "docs" / "img" / "training_curve.png"))
    parser.add_argument("--render-only", action="store_true",
                        help="only write the docs section and plot from an existing --out-json")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="keep the rows of snapshots already in --out-json")
    parser.add_argument("--trend-from", type=float, default=None, metavar="HOURS",
                        help="fit BD-rate = a + b log2(CPU-hours) to the snapshots from HOURS on, and report it")
    parser.add_argument("--goal", type=float, default=None, metavar="PCT",
                        help="with --trend-from: the CPU-hours at which the fitted trend reaches this BD-rate vs JPEG")
    args = parser.parse_args(argv)
    command = "python benchmarks/training_curve.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.render_only:
        result = json.loads(Path(args.out_json).read_text())
        result["trend"] = _trend(result["rows"], args.trend_from, args.goal)
        _plot(result["rows"], args.out_png, result["images"], result["trend"])
        if not args.no_docs:
            _write_section(result, args.out_png)
        return 0
    if not args.runs:
        parser.error("give at least one run directory")

    torch.set_num_threads(1)
    images = load_images(args.kodak)[: args.images]
    qualities = [float(q) for q in args.qualities.split(",")]
    jpeg = evaluate(make_classical("jpeg"), images, range(5, 100, 5), progress=False, with_ms_ssim=False)
    rows = []
    measured = {}
    if args.reuse and Path(args.out_json).exists():
        old = json.loads(Path(args.out_json).read_text())
        if old["images"] == args.images and old["qualities"] == qualities:
            measured = {(r["run"], r["step"]): r for r in old["rows"]}
    for i, run in enumerate(map(Path, args.runs)):
        offset = args.offset[i] if i < len(args.offset) else 0.0
        config = json.loads((run / "config.json").read_text())
        records = read_log(run / "log.jsonl")
        for snap in sorted((run / "snapshots").glob("step*.pt")):
            reused = measured.get((run.name, int(snap.stem[4:])))
            if reused is not None:
                rows.append(reused)
                continue
            model, state = load_trained(snap, config)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"{run.name}-{snap.stem}.safetensors"
                export_weights(model, path, path.stem)
                points = evaluate(NeuralCodec(weights=str(path)), images, qualities, progress=False, with_ms_ssim=False)
            # from the log: it knows how many processes trained each stretch (torchrun)
            hours = (offset + cpu_seconds(records, config.get("threads", 1), state["step"])) / 3600
            try:
                bd = bd_rate([p.bpp for p in jpeg], [p.psnr for p in jpeg], [p.bpp for p in points], [p.psnr for p in points])
            except ValueError:
                bd = None
            rows.append({"run": run.name, "architecture": config["architecture"], "step": state["step"],
                         "cpu_hours": round(hours, 3), "bd_rate_vs_jpeg": bd,
                         "points": [[p.quality, round(p.bpp, 4), round(p.psnr, 3)] for p in points]})
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out_json).parent.mkdir(parents=True, exist_ok=True)
    result = {"images": args.images, "qualities": qualities, "rows": rows, "command": command,
              "date": time.strftime("%Y-%m-%d"), "trend": _trend(rows, args.trend_from, args.goal)}
    Path(args.out_json).write_text(json.dumps(result, indent=1))
    _plot(rows, args.out_png, args.images, result["trend"])
    if not args.no_docs:
        _write_section(result, args.out_png)
    return 0


def _write_section(result: dict, png: str) -> None:
    """The ``training-curve`` section of docs/benchmarks.md: one row per snapshot."""
    from neurocodec.bench.report import update_section

    lines = ["## Rate-distortion against training CPU time", "",
             f"Generated by `{result.get('command', 'python benchmarks/training_curve.py')}` on "
             f"{result.get('date', '?')}: every snapshot of the runs, exported and measured with real files on the first "
             f"{result['images']} Kodak images at qualities {', '.join(f'{q:g}' for q in result['qualities'])}, "
             "BD-rate against Pillow JPEG on the same images in the same run. CPU-hours are the training loop's "
             "wall time times its processes and threads, from the run's log (shared machine, so an upper bound), "
             "including the runs each was warm-started from (`--offset`). Few images: read the trend, not the "
             "last digit.", "",
             f"![BD-rate against CPU-hours](img/{Path(png).name})", ""]
    trend = result.get("trend")
    if trend is not None:
        lines += [f"Trend: a least-squares line of BD-rate on log2(CPU-hours) through the {trend['snapshots']} snapshots "
                  f"from {trend['from_hours']:g} CPU-hours on gives **{trend['per_doubling']:+.2f} points per doubling** "
                  "of training time."]
        if trend["goal"] is not None:
            lines[-1] += (f" At that rate a BD-rate of {trend['goal']:+.1f} % against JPEG is reached after about "
                          f"**{trend['goal_hours']:,.0f} CPU-hours**." if trend["goal_hours"] is not None else
                          f" That line never reaches {trend['goal']:+.1f} %.")
        lines += [""]
    lines += ["| run | step | CPU-hours | BD-rate vs JPEG |", "|---|---|---|---|"]
    for r in result["rows"]:
        bd = "n/a" if r["bd_rate_vs_jpeg"] is None else f"{r['bd_rate_vs_jpeg']:+.1f} %"
        lines.append(f"| {r['run']} | {r['step']} | {r['cpu_hours']:.2f} | {bd} |")
    update_section(ROOT / "docs" / "benchmarks.md", "training-curve", "\n".join(lines))


def _trend(rows: list[dict], from_hours: float | None, goal: float | None) -> dict | None:
    """Least-squares line BD = a + b log2(hours) through the snapshots from ``from_hours`` on:
    b is the BD-rate change per doubling of CPU time; with ``goal``, the hours at which the
    line reaches it (None if the line does not head towards it)."""
    if from_hours is None:
        return None
    import numpy as np

    pts = [(r["cpu_hours"], r["bd_rate_vs_jpeg"]) for r in rows
           if r["bd_rate_vs_jpeg"] is not None and r["cpu_hours"] >= from_hours]
    if len(pts) < 3:
        raise SystemExit(f"--trend-from {from_hours}: fewer than 3 snapshots to fit")
    hours, bd = np.array(pts).T
    slope, intercept = np.polyfit(np.log2(hours), bd, 1)
    trend = {"from_hours": from_hours, "snapshots": len(pts), "per_doubling": float(slope),
             "intercept": float(intercept), "last_hours": float(hours.max()), "goal": goal, "goal_hours": None}
    if goal is not None and slope < 0:
        trend["goal_hours"] = float(2.0 ** ((goal - intercept) / slope))
    return trend


def _plot(rows, path, images, trend=None) -> None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for arch in sorted({r["architecture"] for r in rows}):
        pts = [(r["cpu_hours"], r["bd_rate_vs_jpeg"]) for r in rows if r["architecture"] == arch and r["bd_rate_vs_jpeg"] is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=arch)
    if trend is not None:
        import numpy as np

        end = trend["last_hours"] * 4
        xs = np.geomspace(trend["from_hours"], end, 50)
        ax.plot(xs, trend["intercept"] + trend["per_doubling"] * np.log2(xs), "k--", lw=1,
                label=f"trend {trend['per_doubling']:+.1f} points / doubling")
        if trend["goal"] is not None:
            ax.axhline(trend["goal"], color="red", lw=0.8, ls=":", label=f"goal {trend['goal']:+.1f} %")
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training CPU-hours (1 thread), log scale")
    ax.set_ylabel(f"BD-rate vs JPEG, % (first {images} Kodak images)")
    ax.grid(alpha=0.3)
    ax.legend()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")


if __name__ == "__main__":
    raise SystemExit(main())
