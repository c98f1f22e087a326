"""Collection compression speed: images per second with 1 and 2 workers, on the local
process pool and on Ray, measured in the same run on the 24 Kodak images.

    python benchmarks/collection_speed.py                 # needs ../shared/data/kodak and ray
    python benchmarks/collection_speed.py --repeats 1 --engines local

Every configuration compresses the whole folder into a fresh destination with
``neurocodec.collection.encode_dir`` (default model, quality 4, one torch thread per
worker); the configurations are interleaved within each repeat so that changes in the
machine's load hit them alike, and the median over repeats is reported. The time of a
run includes starting the workers and loading the model in each (what a user waits for);
Ray's own start-up (``ray.init``, once for the whole benchmark, as on a running cluster)
is reported separately. Also reported: the median time to encode one image inside a
worker (from the manifests), which is free of start-up costs.

Writes ``benchmarks/results/collection_speed.json`` and the section of
``docs/scale-out.md`` between the ``collection_speed`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SECTION = "collection-speed"  # its part of the Markdown file (neurocodec.bench.report.update_section)


def _load() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kodak"), help="image folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--engines", default="local,ray", help="engines, comma-separated")
    parser.add_argument("--quality", type=float, default=4)
    parser.add_argument("--ray-attempts", type=int, default=5,
                        help="tries to start the local Ray runtime (its node has a fixed 30 s to come up)")
    parser.add_argument("--note", default="", help="a sentence about the machine's state, put in the report")
    parser.add_argument("--out-json", default=str(ROOT / "benchmarks" / "results" / "collection_speed.json"))
    parser.add_argument("--out-md", default=str(ROOT / "docs" / "scale-out.md"),
                        help="Markdown file whose generated section is replaced ('' for none)")
    parser.add_argument("--from-json", metavar="FILE",
                        help="measure nothing: rewrite the --out-md section from a results file of an earlier run")
    args = parser.parse_args(argv)
    if args.from_json:
        _write_markdown(Path(args.out_md), json.loads(Path(args.from_json).read_text()))
        print(f"updated {args.out_md} from {args.from_json}")
        return 0

    from neurocodec.collection import encode_dir, read_manifest

    data = Path(args.data)
    if not data.is_dir():
        print(f"collection_speed: {data}: no such folder (the Kodak set is expected at ../shared/data/kodak)",
              file=sys.stderr)
        return 1
    images = sorted(p for p in data.iterdir() if p.suffix.lower() == ".png")
    engines = [e for e in args.engines.split(",") if e]
    workers = [int(w) for w in args.workers.split(",") if w]
    ray_init_s, ray_failure = None, None
    if "ray" in engines:
        from neurocodec.collection import EngineUnavailableError
        from neurocodec.collection.engines import start_ray

        tic = time.perf_counter()
        try:
            start_ray(num_cpus=max(workers), attempts=args.ray_attempts)
            ray_init_s = time.perf_counter() - tic
        except EngineUnavailableError as exc:  # reported, and the local rows are still measured
            ray_failure = f"Ray could not start on this machine during the run ({args.ray_attempts} attempts): {exc}"
            print(f"collection_speed: {ray_failure}", file=sys.stderr)
            engines.remove("ray")

    load_before = _load()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="collection_speed.") as tmp:
        for repeat in range(args.repeats):
            for engine in engines:
                for n in workers:
                    dst = Path(tmp) / f"{engine}-{n}-{repeat}"
                    tic = time.perf_counter()
                    summary = encode_dir(data, dst, quality=args.quality, engine=engine, workers=n)
                    seconds = time.perf_counter() - tic
                    per_image = [r["seconds"] for r in read_manifest(dst) if r["status"] == "ok"]
                    if summary.ok != len(images):
                        print(f"collection_speed: {engine}/{n}: only {summary.ok} of {len(images)} images encoded: "
                              f"{summary.failures[:3]}", file=sys.stderr)
                        return 1
                    runs.append({"engine": engine, "workers": n, "repeat": repeat, "seconds": round(seconds, 3),
                                 "images_per_s": round(len(images) / seconds, 4),
                                 "median_encode_s": round(statistics.median(per_image), 4),
                                 "bpp": round(summary.bpp, 5), "psnr": round(summary.psnr, 4)})
                    print(f"{engine:5s} {n} worker(s), repeat {repeat}: {seconds:6.1f} s, "
                          f"{len(images) / seconds:.3f} images/s", flush=True)
    if "ray" in engines:
        import ray

        ray.shutdown()

    rows = []
    for engine in engines:
        for n in workers:
            mine = [r for r in runs if r["engine"] == engine and r["workers"] == n]
            rows.append({"engine": engine, "workers": n,
                         "images_per_s": round(statistics.median(r["images_per_s"] for r in mine), 4),
                         "seconds": round(statistics.median(r["seconds"] for r in mine), 2),
                         "median_encode_s": round(statistics.median(r["median_encode_s"] for r in mine), 3),
                         "runs": [r["images_per_s"] for r in mine]})
    result = {
        "benchmark": "collection_speed",
        "command": shlex.join(["python", "benchmarks/collection_speed.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "images": len(images), "data": str(data), "quality": args.quality, "repeats": args.repeats,
        "cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_before": load_before, "load_average_after": _load(),
        "python": platform.python_version(), "note": args.note.strip(),
        "ray_init_s": None if ray_init_s is None else round(ray_init_s, 2), "ray_failure": ray_failure,
        "rows": rows, "runs": runs,
    }
    out_json = Path(args.out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out_json}")
    if args.out_md:
        _write_markdown(Path(args.out_md), result)
        print(f"updated {args.out_md}")
    return 0


def _write_markdown(path: Path, result: dict) -> None:
    base = {r["engine"]: r["images_per_s"] for r in result["rows"] if r["workers"] == 1}
    lines = [
        f"Measured {result['date']} by `{result['command'].strip()}`: the {result['images']} images of "
        f"`{Path(result['data']).name}/` at quality {result['quality']:g} with the default model, one torch thread per worker, "
        f"median of {result['repeats']} runs per configuration, configurations interleaved. A run's time "
        "includes starting its workers and loading the model in each.",
        "",
        f"| engine | workers | images / s | speed-up vs 1 worker | seconds for {result['images']} images | "
        "encode time per image in a worker (median) | runs (images / s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        speedup = r["images_per_s"] / base[r["engine"]] if r["engine"] in base else float("nan")
        lines.append(f"| {r['engine']} | {r['workers']} | {r['images_per_s']:.3f} | {speedup:.2f}x | "
                     f"{r['seconds']:.1f} | {r['median_encode_s']:.2f} s | "
                     f"{', '.join(f'{v:.3f}' for v in r['runs'])} |")
    lines += [
        "",
        f"Machine: {result['cpus']} CPU cores ({result['usable_cpus']} usable), shared: load average "
        f"(1 / 5 / 15 min) {result['load_average_before']} before and {result['load_average_after']} after the "
        f"run. {result['note']} Where fewer cores are free than there are workers, the workers compete for "
        "them, and the 2-worker rows then measure that contention rather than the scaling a machine with free "
        "cores gives (there the workers are independent processes, and images / s grows with them until the "
        "cores or the disk run out).",
    ]
    if result.get("ray_failure"):
        lines += ["", f"**No Ray rows:** {result['ray_failure']}"]
    if result["ray_init_s"] is not None:
        lines.append("")
        lines.append(f"Starting the local Ray runtime (`ray.init`, once, not included above) took "
                     f"{result['ray_init_s']:.1f} s; on a cluster it is already running.")
    lines += ["", "Raw runs: `benchmarks/results/collection_speed.json`."]
    from neurocodec.bench.report import update_section

    update_section(path, SECTION, "\n".join(lines), header="")


if __name__ == "__main__":
    raise SystemExit(main())
