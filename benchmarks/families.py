"""Every shipped model against the default, on Kodak and on the full-resolution development
set (issue 19): BD-rate against the default, against Pillow's JPEG, WebP and AVIF measured in
the same run and (Kodak) against the published VTM curve; encode and decode time against the
default in the same run; parameters; training CPU-hours. Writes the "families" section of
docs/benchmarks.md and benchmarks/results/families.json.

    python benchmarks/families.py                      # full run (about an hour on 2 cores)
    python benchmarks/families.py --images 2 --no-docs # quick check
    python benchmarks/families.py --timing-only        # redo only the timing pass (RD from families.json)
    python benchmarks/families.py --add NAME[,NAME]    # RD of new models only, merged into families.json

Coding times are not taken from the RD pass: there every model codes the whole set in turn, so
a load that changes during the run (the classical codecs' process, anything else on the
machine) lands on some models and not others. A separate pass times every model on a few
images at qualities 1, 4 and 8 in alternating rounds (the order rotated each round), in CPU
seconds of this process (one torch thread), and reports the median over images and qualities
of each model's ratio to the default on the same image and quality.

The development set is the photographs listed in benchmarks/data/devset.txt, read at full
resolution from ../shared/data/train and kept out of every training run since session 9.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = ROOT.parent / "shared"
DEVSET = ROOT / "benchmarks" / "data" / "devset.txt"
CLASSICAL = ("JPEG", "WebP", "AVIF")


def devset_names() -> list[str]:
    return [line.strip() for line in DEVSET.read_text().splitlines() if line.strip() and not line.startswith("#")]


def link_devset(train_dir: Path, into: Path) -> Path:
    """A folder of links to the development photographs (the data is never copied)."""
    missing = [n for n in devset_names() if not (train_dir / n).is_file()]
    if missing:
        raise SystemExit(f"development images not found in {train_dir}: {', '.join(missing)}")
    for name in devset_names():
        (into / name).symlink_to((train_dir / name).resolve())
    return into


def model_facts(name: str) -> dict:
    """Parameters and training CPU-hours of a shipped model (from its weights and card)."""
    from neurocodec.codec import Codec
    from neurocodec.zoo import model_info

    card = model_info(name).card
    params = sum(p.numel() for p in Codec(name).model.parameters())
    hours = card.get("total_cpu_hours", card.get("cpu_hours"))
    return {"params": params, "cpu_hours": hours}


def rising(points) -> bool:
    """PSNR and bpp both strictly increase with quality."""
    return all(b.bpp > a.bpp and b.psnr > a.psnr for a, b in zip(points, points[1:]))


TIMING_QUALITIES = (1.0, 4.0, 8.0)


def time_models(names: list[str], images: list, rounds: int = 3) -> dict:
    """CPU seconds (``time.process_time``, this process, one torch thread) to encode and to
    decode each ``(name, array)`` image at :data:`TIMING_QUALITIES` with every model, in
    ``rounds`` alternating rounds (model order rotated each round). Returns per model its
    median encode and decode seconds and its median ratios to ``names[0]`` (the default) over
    the (image, quality) pairs, each pair's time being its median over rounds."""
    from neurocodec.codec import Codec

    codecs = {n: Codec(n) for n in names}
    samples = {n: {} for n in names}           # name -> (image, quality) -> [(enc, dec), ...]
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for image_name, array in images:
            for q in TIMING_QUALITIES:
                for n in order:
                    t0 = time.process_time()
                    data = codecs[n].compress(array, quality=q)
                    t1 = time.process_time()
                    codecs[n].decompress(data)
                    t2 = time.process_time()
                    samples[n].setdefault((image_name, q), []).append((t1 - t0, t2 - t1))
    median = {n: {k: tuple(statistics.median(v[i] for v in runs) for i in (0, 1)) for k, runs in per.items()}
              for n, per in samples.items()}
    base = median[names[0]]
    out = {}
    for n in names:
        keys = list(median[n])
        out[n] = {"encode_s": statistics.median(median[n][k][0] for k in keys),
                  "decode_s": statistics.median(median[n][k][1] for k in keys),
                  "encode_ratio": statistics.median(median[n][k][0] / base[k][0] for k in keys),
                  "decode_ratio": statistics.median(median[n][k][1] / base[k][1] for k in keys)}
    return {"models": out, "images": [name for name, _ in images], "qualities": list(TIMING_QUALITIES),
            "rounds": rounds, "clock": "time.process_time, one torch thread"}


def load_results(path: Path) -> dict:
    """The RD results of an earlier full run (``families.json``), curves as RDPoints."""
    from neurocodec.bench.runner import RDPoint

    if not path.is_file():
        raise SystemExit(f"{path} not found: run the whole command first")
    data = json.loads(path.read_text())
    for result in data.values():
        result["curves"] = {c: [RDPoint(**p) for p in points] for c, points in result["curves"].items()}
        result.setdefault("rd_date", "an earlier run")
    return data


def merge_added(earlier: dict, added: dict) -> dict:
    """``earlier`` (a set's stored results) with the models of ``added`` (a run of
    :func:`run_suite` on the same images, models only) put in: their curves and mismatches,
    and every BD-rate recomputed against the stored classical and published curves."""
    from neurocodec.bench.suite import compare_curves

    curves = {**earlier["curves"], **added["curves"]}
    models = [m for m in earlier["measured"] if m in earlier["mismatches"] and m not in added["mismatches"]]
    models += list(added["mismatches"])
    measured = models + [m for m in earlier["measured"] if m not in earlier["mismatches"]]
    bd, beats = compare_curves(curves, models)
    added_on = dict(earlier.get("added_on", {}), **{m: time.strftime("%Y-%m-%d") for m in added["mismatches"]})
    return {**earlier, "curves": curves, "bd": bd, "beats_jpeg": beats, "measured": measured,
            "mismatches": {**earlier["mismatches"], **added["mismatches"]}, "added_on": added_on}


def rd_date(results: dict) -> str:
    dates = sorted({r.get("rd_date", time.strftime("%Y-%m-%d")) for r in results.values()})
    added = sorted({f"{m} on {d}" for r in results.values() for m, d in r.get("added_on", {}).items()})
    return "RD pass on " + ", ".join(dates) + (f"; added with --add: {', '.join(added)}" if added else "")


def table(result: dict, default: str, facts: dict, with_vtm: bool) -> list[str]:
    from neurocodec.bench.suite import bd_or_none

    curves, bd = result["curves"], result["bd"]

    refs = ["default", *[c for c in CLASSICAL if c in curves]] + (["VTM (published)"] if with_vtm else [])
    head = ["model", *[f"BD vs {r}" for r in refs], "encode / decode time vs default", "parameters",
            "training CPU-hours", "PSNR and bpp rise with quality"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = curves[default]
    timing = result["timing"]["models"]

    def cell(v):
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.1f} %"

    for label in result["measured"]:
        if label not in facts:
            continue
        points = curves[label]
        row = [label, "—" if label == default else cell(bd_or_none(points, base))]
        row += [cell(bd[label].get(r)) for r in refs[1:]]
        enc, dec = timing[label]["encode_ratio"], timing[label]["decode_ratio"]
        f = facts[label]
        row += [f"{enc:.2f} / {dec:.2f}", f"{f['params'] / 1e6:.2f} M",
                "n/a" if f["cpu_hours"] is None else f"{f['cpu_hours']:.2f}", "yes" if rising(points) else "**no**"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def main(argv=None) -> int:
    from neurocodec.bench.report import update_section
    from neurocodec.bench.runner import load_images
    from neurocodec.bench.suite import run_suite
    from neurocodec.zoo import DEFAULT_MODEL, list_models

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", type=Path, default=SHARED / "data" / "kodak")
    parser.add_argument("--train", type=Path, default=SHARED / "data" / "train", help="folder holding the dev set")
    parser.add_argument("--anchors", type=Path, default=SHARED / "anchors" / "kodak_published_rd.csv")
    parser.add_argument("--models", default="", help="comma-separated shipped models (default: all)")
    parser.add_argument("--images", type=int, default=0, help="only the first N images of each set (no docs)")
    parser.add_argument("--sets", default="kodak,dev", help="which sets to measure: kodak, dev or both")
    parser.add_argument("--timing-images", default="4,1",
                        help="images of each set (Kodak, dev) the timing pass uses (default: 4,1)")
    parser.add_argument("--timing-rounds", type=int, default=3)
    parser.add_argument("--timing-only", action="store_true",
                        help="take the RD results from benchmarks/results/families.json and redo only the timing pass")
    parser.add_argument("--add", default="",
                        help="comma-separated shipped models to measure and merge into the stored RD results "
                             "(the other models' and the classical codecs' curves are kept; timing is redone)")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    if args.add and (args.timing_only or args.models or args.images):
        parser.error("--add takes the stored results as they are: not with --timing-only, --models or --images")

    import torch

    torch.set_num_threads(1)
    # A codec that learns per image at encode time (overfit-cc: minutes per image) has its own
    # RD-against-encode-time benchmark, benchmarks/overfit.py.
    from neurocodec.models import ARCHITECTURES

    names = [m for m in args.models.split(",") if m] or [
        m.name for m in list_models() if not ARCHITECTURES[m.architecture].learns_per_image]
    names = [DEFAULT_MODEL] + [n for n in names if n != DEFAULT_MODEL]
    added = [m for m in args.add.split(",") if m]
    unknown = [m for m in added if m not in names]
    if unknown:
        parser.error(f"--add: not a shipped model: {', '.join(unknown)}")
    facts = {n: model_facts(n) for n in names}
    write = not args.no_docs and not args.images
    command = "python benchmarks/families.py" + (f" --models {args.models}" if args.models else "")
    results, sections = {}, []
    started = time.time()
    out = ROOT / "benchmarks" / "results" / "families.json"
    earlier = load_results(out) if args.timing_only or added else {}
    timing_images = dict(zip(("kodak", "dev"), (int(n) for n in args.timing_images.split(","))))
    with tempfile.TemporaryDirectory() as tmp:
        folders = {"kodak": args.kodak, "dev": None}
        for which in [s for s in args.sets.split(",") if s]:
            folder = folders[which] or link_devset(args.train, Path(tmp))
            if args.timing_only or added:
                missing = [n for n in names if n not in earlier[which]["curves"] and n not in added]
                if missing:
                    raise SystemExit(f"{out.name} has no {which} RD results for {', '.join(missing)}: run the whole "
                                     "command, or --add them")
            if args.timing_only:
                result = earlier[which]
            elif added:
                result = merge_added(earlier[which], run_suite(
                    folder, added, (), args.anchors if which == "kodak" else None, command=command,
                    progress=sys.stderr.isatty()))
            else:
                result = run_suite(folder, names, ("jpeg", "webp", "avif"),
                                   args.anchors if which == "kodak" else None, images=args.images or None,
                                   command=command, progress=sys.stderr.isatty())
            result["timing"] = time_models(names, load_images(folder)[:timing_images[which]], args.timing_rounds)
            results[which] = result
            title = ("24 Kodak images (768x512)" if which == "kodak"
                     else f"the development set ({len(devset_names())} full-resolution photographs, about 2048x1365)")
            sections += [f"### On {title}", "", *table(result, DEFAULT_MODEL, facts, which == "kodak"), ""]
            bad = {k: v for k, v in result["mismatches"].items() if v}
            timed = ", ".join(result["timing"]["images"])
            sections += [f"Decodes differing from the encoder's reconstruction: {bad or 'none'}. Times from the "
                         f"timing pass on {timed}.", ""]
            print("\n".join(sections[-6 - len(names):]), flush=True)
    if write:
        body = [
            "## Shipped models: every family against the default", "",
            f"Generated by `{command}` ({rd_date(results)}; the timing pass on {time.strftime('%Y-%m-%d')}, "
            f"{(time.time() - started) / 60:.0f} minutes"
            f"{' with --timing-only' if args.timing_only else ''}{' with --add ' + args.add if added else ''}; "
            "one torch thread, the classical codecs in a second process). Do not edit by hand: rerun the command.",
            "",
            "Each shipped model at qualities 1-8; Pillow's JPEG, WebP (method 6) and AVIF (speed 4, 4:4:4) "
            "measured on the same images in the same run; VTM from the published Kodak curve. BD-rate: negative = "
            "fewer bits than the column's codec. Time ratios: from a separate pass (CPU seconds of encode and of "
            "decode, qualities 1, 4 and 8, alternating rounds; the median over images and qualities of each "
            "model's ratio to the default on the same image), because in the RD pass each model codes the whole "
            "set in turn and a load that changes during the run lands on some models only. Real file sizes, every decode checked against the encoder's "
            "reconstruction.", "",
            "The development set is held out of training from session 9 on; the default (and the context model's "
            "session-8 probe) trained on all 105 photographs, these four included, at 0.5 and 0.75 scale, so on it "
            "the default is, if anything, flattered.", "", *sections]
        update_section(ROOT / "docs" / "benchmarks.md", "families", "\n".join(body))
        out.parent.mkdir(parents=True, exist_ok=True)
        from dataclasses import asdict

        portable = {"kodak": "../shared/data/kodak", "dev": "development set (benchmarks/data/devset.txt)"}
        out.write_text(json.dumps({k: {**r, "folder": portable[k], "rd_date": r.get("rd_date", time.strftime("%Y-%m-%d")),
                                       "curves": {c: [asdict(p) for p in v] for c, v in r["curves"].items()}}
                                   for k, r in results.items()}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
