"""Equal-budget comparisons: several architectures trained the same way, measured on Kodak.

Two tables, each a section of docs/benchmarks.md:

* ``entropy`` (issue 5): every entropy model on the same block transform. All runs start
  from the same shipped ``block-hyperprior`` weight file (transform, gains and hyperprior
  warm-started; parameters the file lacks start from their initialisation) and train for
  the same steps with the same data, crops, batch, learning rate, seed and rate proxy. The
  hyperprior row is the control: the same fine-tuning without a new entropy model.
* ``transforms`` (issue 6): every transform with the same mean-scale hyperprior, trained
  from scratch with the same settings.

For each row: mean bpp (real file sizes) and PSNR on Kodak at the chosen qualities,
BD-rate against the table's first row and against the published VTM curve, encode and
decode time ratios against the first row (measured interleaved in one process, 1 thread,
medians), parameter count and training seconds per step (wall time of the training loop;
the machine is shared, so compare within a table). Every decoded image is checked against
the encoder's reconstruction.

Training is resumable: rerun the same command and finished runs are skipped. Runs can be
split over processes with ``--only`` (e.g. one per core) and evaluated afterwards:

    python benchmarks/equal_budget.py entropy --stage train --only hyperprior,context --runs runs/eq
    python benchmarks/equal_budget.py entropy --stage train --only mixture,mcquic --runs runs/eq
    python benchmarks/equal_budget.py entropy --stage eval --runs runs/eq

Training logs and configs are copied to docs/training/equal-budget/<table>/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHIPPED_BLOCK = ROOT / "src" / "neurocodec" / "zoo" / "weights" / "block-hyperprior-mse.safetensors"


@dataclass(frozen=True)
class Entry:
    """One row: a label, a registered architecture and its constructor arguments."""

    label: str
    architecture: str
    model_config: dict = field(default_factory=dict)


# The shipped block model uses one refinement block each side (its card's config).
BLOCK = dict(refine_blocks=1)
TABLES = {
    "entropy": dict(
        title="Entropy models at equal budget (block transform)",
        entries=[
            Entry("hyperprior", "block-hyperprior", BLOCK),
            Entry("context", "block-context", BLOCK),
            Entry("mixture", "block-mixture", BLOCK),
            Entry("mcquic", "block-mcquic", BLOCK),
        ],
        train=dict(lr=2e-4, rate_proxy="round", lr_drop_at=1.0, entropy_warmup=100),
        warm_start=True,
    ),
    "transforms": dict(
        title="Transforms at equal budget (mean-scale hyperprior)",
        entries=[
            Entry("conv", "conv-hyperprior"),
            Entry("walloc", "walloc"),
            Entry("swinv2", "swinv2-hyperprior"),
            Entry("region", "region-hyperprior"),
            Entry("block", "block-hyperprior", BLOCK),
        ],
        train=dict(lr=5e-4, rate_proxy="noise"),
    ),
}


def train_config(table: str, entry: Entry, args):
    from neurocodec.train import TrainConfig
    from neurocodec.zoo.weights import read_metadata

    init = args.init if TABLES[table].get("warm_start") else ""
    # a warm-started run has the widths of the file it starts from (e.g. a slimmer default)
    model_config = {**read_metadata(init)["config"], **entry.model_config} if init else dict(entry.model_config)
    return TrainConfig(data=args.data, architecture=entry.architecture, model_config=model_config,
                       steps=args.steps, batch=args.batch, crop=args.crop, seed=args.seed, threads=args.threads,
                       checkpoint_every=50, log_every=10, init_from=init, **TABLES[table]["train"])


def run_dir(args, table: str, entry: Entry) -> Path:
    return Path(args.runs) / table / entry.label


def last_log_record(run: Path) -> dict | None:
    """The run's last training-log record (step, seconds, ...), or None before the first."""
    from neurocodec.train.export import read_log

    records = read_log(run / "log.jsonl")
    return records[-1] if records else None


def finished_step(run: Path) -> int:
    record = last_log_record(run)
    return record["step"] if record else 0


def train_entries(table: str, entries: list[Entry], args) -> None:
    from neurocodec.train import train

    for entry in entries:
        run = run_dir(args, table, entry)
        if finished_step(run) >= args.steps:
            print(f"{entry.label}: trained ({args.steps} steps)", flush=True)
            continue
        print(f"{entry.label}: training {entry.architecture} in {run}", flush=True)
        train(train_config(table, entry, args), run, progress=not args.quiet)


def export(table: str, entry: Entry, args) -> Path:
    """Export the run's final model once; returns the weight file."""
    import torch

    from neurocodec.models import build_model
    from neurocodec.zoo import export_weights

    run = run_dir(args, table, entry)
    if finished_step(run) < args.steps:
        raise SystemExit(f"{entry.label}: run {run} has not finished {args.steps} steps; train it first")
    out = run / "final.safetensors"
    ckpt = run / "checkpoint.pt"
    if not out.exists() or out.stat().st_mtime < ckpt.stat().st_mtime:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model = build_model(entry.architecture, **entry.model_config)
        model.load_state_dict(state["model"])
        export_weights(model, out, f"{table}-{entry.label}")
    return out


def seconds_per_step(run: Path) -> float:
    record = last_log_record(run)
    return record["seconds"] / record["step"]


def interleaved_times(codecs: dict, images, quality: float, rounds: int) -> dict[str, tuple[float, float]]:
    """Median encode / decode seconds per image of each codec, measured round-robin so that
    load changes on the machine affect every codec alike."""
    times = {label: ([], []) for label in codecs}
    for _ in range(rounds):
        for _, img in images:
            for label, codec in codecs.items():
                t0 = time.perf_counter()
                data = codec.encode(img, quality)
                t1 = time.perf_counter()
                codec.decode(data)
                t2 = time.perf_counter()
                times[label][0].append(t1 - t0)
                times[label][1].append(t2 - t1)
    return {label: (statistics.median(e), statistics.median(d)) for label, (e, d) in times.items()}


def evaluate_entries(table: str, entries: list[Entry], args, argv: list[str]) -> dict:
    import torch

    from neurocodec.bench import evaluate, load_anchors, load_images
    from neurocodec.bench.neural import NeuralCodec
    from neurocodec.metrics import bd_rate

    torch.set_num_threads(1)
    images = load_images(args.kodak)[: args.images or None]
    qualities = [float(q) for q in args.qualities.split(",")]
    vtm = load_anchors(args.anchors, "VTM")
    codecs, rows = {}, []
    for entry in entries:
        weights = export(table, entry, args)
        codec = NeuralCodec(weights=str(weights))
        points = evaluate(codec, images, qualities, progress=not args.quiet, with_ms_ssim=False)
        if codec.mismatches:
            raise SystemExit(f"{entry.label}: {codec.mismatches} decodes differ from the encoder's reconstruction")
        codecs[entry.label] = codec
        model = codec.codec.model
        rows.append(dict(label=entry.label, architecture=entry.architecture, config=entry.model_config,
                         params=sum(p.numel() for p in model.parameters()),
                         seconds_per_step=seconds_per_step(run_dir(args, table, entry)),
                         weight_hash=codec.codec.info.weight_hash.hex(),
                         points=[p.as_dict() for p in points]))
    times = interleaved_times(codecs, images[: args.timing_images], 4.0, args.timing_rounds)

    def curve(points):
        return [p["bpp"] for p in points], [p["psnr"] for p in points]

    base = rows[0]
    for row in rows:
        row["encode_s"], row["decode_s"] = times[row["label"]]
        for key, reference in (("bd_vs_first", curve(base["points"])),
                               ("bd_vs_vtm", ([p.bpp for p in vtm], [p.psnr for p in vtm]))):
            try:
                row[key] = bd_rate(*reference, *curve(row["points"]))
            except ValueError as exc:  # too few points, or curves that do not overlap
                row[key] = None
                row[key + "_error"] = str(exc)
    return dict(table=table, command="python benchmarks/equal_budget.py " + " ".join(argv),
                date=time.strftime("%Y-%m-%d"), images=len(images), qualities=qualities,
                timing=dict(images=min(args.timing_images, len(images)), rounds=args.timing_rounds, quality=4.0,
                            threads=1),
                train=dict(steps=args.steps, batch=args.batch, crop=args.crop, seed=args.seed, data=args.data,
                           **TABLES[table]["train"]),
                init_hash=_hash(Path(args.init)) if TABLES[table].get("warm_start") else None,
                rows=rows)


def _hash(path: Path) -> str:
    from neurocodec.zoo import weight_hash

    return weight_hash(path).hex()


def _pct(v) -> str:
    return "n/a" if v is None else f"{v:+.1f} %"


def render(result: dict) -> str:
    t = result["train"]
    spec = TABLES[result["table"]]
    start = (f"all start from the same `block-hyperprior` weights {result['init_hash']}"
             if result["init_hash"] else "all from scratch")
    lines = [
        f"## {spec['title']}", "",
        f"Generated by `{result['command']}` on {result['date']}. Training: {t['steps']} steps each, batch {t['batch']}, "
        f"random {t['crop']}x{t['crop']} crops of `{Path(t['data']).name}` (105 images, rescaled by 0.5 or 0.75), "
        f"Adam lr {t['lr']}, rate term `{t['rate_proxy']}`, seed {t['seed']}, random quality per sample in [1, 8]"
        + (f", only the entropy model trained for the first {t['entropy_warmup']} steps" if t.get("entropy_warmup") else "")
        + "; "
        f"{start}. Measured on {result['images']} Kodak images at qualities "
        f"{', '.join(f'{q:g}' for q in result['qualities'])} (real file sizes, every decode checked against the "
        f"encoder's reconstruction). Times: quality 4, {result['timing']['images']} images x "
        f"{result['timing']['rounds']} rounds, interleaved, 1 thread, medians. Seconds per training step are wall "
        f"time on a shared 2-core machine.", "",
        f"| model | architecture | params | s / train step | BD-rate vs {result['rows'][0]['label']} | "
        f"BD-PSNR vs {result['rows'][0]['label']} | BD-rate vs VTM | encode ratio | decode ratio | "
        "bpp / PSNR per quality |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = result["rows"][0]
    for row in result["rows"]:
        pts = ", ".join(f"{p['bpp']:.3f}/{p['psnr']:.2f}" for p in row["points"])
        lines.append(
            f"| {row['label']} | `{row['architecture']}` | {row['params'] / 1e6:.2f} M | {row['seconds_per_step']:.2f} | "
            f"{_pct(row['bd_vs_first'])} | {_db(bd_psnr_against(base, row))} | {_pct(row['bd_vs_vtm'])} | "
            f"{row['encode_s'] / base['encode_s']:.2f} | {row['decode_s'] / base['decode_s']:.2f} | {pts} |")
    lines += ["", f"First-row times: encode {base['encode_s']:.3f} s, decode {base['decode_s']:.3f} s per image. "
              "BD-rate compares bits over the PSNR range two curves share, BD-PSNR compares dB over the rate "
              "range they share; either is n/a where the curves share no range (or a curve has too few points)."]
    return "\n".join(lines)


def bd_psnr_against(base: dict, row: dict) -> float | None:
    """BD-PSNR (dB) of a row's points against the first row's, or None where undefined."""
    from neurocodec.metrics import bd_psnr

    try:
        return bd_psnr([p["bpp"] for p in base["points"]], [p["psnr"] for p in base["points"]],
                       [p["bpp"] for p in row["points"]], [p["psnr"] for p in row["points"]])
    except ValueError:   # too few points, or no shared rate range
        return None


def _db(v) -> str:
    return "n/a" if v is None else f"{v:+.2f} dB"


def copy_logs(table: str, entries: list[Entry], args) -> None:
    dest = ROOT / "docs" / "training" / "equal-budget" / table
    dest.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        run = run_dir(args, table, entry)
        for name in ("log.jsonl", "config.json"):
            if (run / name).exists():
                shutil.copyfile(run / name, dest / f"{entry.label}.{name}")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", choices=sorted(TABLES))
    parser.add_argument("--stage", choices=("train", "eval", "all", "render"), default="all",
                        help="render: rewrite the docs section from the last eval's results file, measuring nothing")
    parser.add_argument("--only", default="", help="comma-separated row labels (default: all rows)")
    parser.add_argument("--runs", required=True, help="folder for the training runs (large checkpoints)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    parser.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--anchors", default=str(ROOT.parent / "shared" / "anchors" / "kodak_published_rd.csv"))
    parser.add_argument("--init", default=str(SHIPPED_BLOCK),
                        help="block-hyperprior weights every warm-started row starts from (default: the shipped ones)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training")
    parser.add_argument("--images", type=int, default=24, help="Kodak images for RD (0 = all)")
    parser.add_argument("--qualities", default="1,3,5,8")
    parser.add_argument("--timing-images", type=int, default=4)
    parser.add_argument("--timing-rounds", type=int, default=3)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    entries = TABLES[args.table]["entries"]
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {e.label for e in entries}
        if unknown:
            parser.error(f"unknown rows {sorted(unknown)}; table {args.table} has {[e.label for e in entries]}")
        entries = [e for e in entries if e.label in wanted]
    if args.stage in ("train", "all"):
        train_entries(args.table, entries, args)
    out = ROOT / "benchmarks" / "results" / f"equal_budget_{args.table}.json"
    if args.stage in ("eval", "all"):
        result = evaluate_entries(args.table, entries, args, argv)
        out.write_text(json.dumps(result, indent=2))
    elif args.stage == "render":
        if not out.exists():
            parser.error(f"no results to render: {out} (run --stage eval first)")
        result = json.loads(out.read_text())
    if args.stage in ("eval", "all", "render"):
        print(render(result))
        if not args.no_docs:
            from neurocodec.bench.report import update_section

            update_section(ROOT / "docs" / "benchmarks.md", f"equal-budget-{args.table}", render(result))
            if args.stage != "render":
                copy_logs(args.table, entries, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
