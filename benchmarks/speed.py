"""Encode / decode speed per Kodak image against CompressAI's bmshj2018-hyperprior.

The peer is CompressAI 1.2.8's ``bmshj2018-hyperprior`` at its quality-3 architecture
(``ScaleHyperprior(N=128, M=192)``; untrained weights: the issue allows them for timing,
and its entropy tables are built with ``update(force=True)``). Both codecs run on the same
images in the same run, each in its own worker process (so peak memory is per codec), in
alternating rounds, with the same number of torch threads. Reported: the median over
images of each image's median time, the ratio neurocodec / CompressAI, and each worker's
peak RSS (and its RSS after loading the model, so the coding's own memory is visible).
Times are wall-clock, and also CPU time of the worker process (user + system, all
threads): on a shared, loaded machine the CPU time measures the work and the wall time
also the waiting; with more than one thread the CPU time includes the threads' spinning.
``--threads 1`` writes the section ``speed`` of docs/benchmarks.md, ``--threads N`` the
section ``speed-N-threads``.

CompressAI is not a dependency. It needs torchvision at import, and PyPI's torchvision
does not load beside the CPU torch 2.13 wheel used here, so the run uses a separate venv
(``--python``) holding both codecs::

    python3 -m venv .venv-cai
    .venv-cai/bin/pip install torch==2.14.1 torchvision==0.29.1 compressai==1.2.8
    .venv-cai/bin/pip install -e .
    python benchmarks/speed.py --python .venv-cai/bin/python          # writes docs
    python benchmarks/speed.py --python .venv-cai/bin/python --threads 2
    python benchmarks/speed.py --python .venv-cai/bin/python --images 2 --no-docs
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DEFAULT_KODAK = ROOT.parent / "shared" / "data" / "kodak"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class NeurocodecWorker:
    """The default shipped model through the public API."""

    def __init__(self, quality: float, model: str | None):
        from neurocodec import Codec

        self.codec = Codec.from_pretrained(model, quality=quality)
        self.label = f"neurocodec {self.codec.name} q{quality:g}"

    def encode(self, img):
        return self.codec.compress(img)

    def decode(self, data):
        return self.codec.decompress(data)


class CompressAIWorker:
    """CompressAI's ScaleHyperprior (N=128, M=192), untrained, compress/decompress on tensors."""

    def __init__(self, quality: float, model: str | None):
        import torch
        from compressai.models import ScaleHyperprior

        torch.manual_seed(0)
        self.net = ScaleHyperprior(N=128, M=192).eval()
        self.net.update(force=True)
        self.label = "CompressAI 1.2.8 bmshj2018-hyperprior (N=128, M=192, untrained)"

    def _pad(self, img):
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float() / 255.0
        h, w = x.shape[2:]
        ph, pw = (64 - h % 64) % 64, (64 - w % 64) % 64
        return F.pad(x, (0, pw, 0, ph), mode="replicate"), (h, w)

    def encode(self, img):
        import torch

        x, size = self._pad(img)
        with torch.no_grad():
            out = self.net.compress(x)
        return out, size

    def decode(self, data):
        import torch

        out, (h, w) = data
        with torch.no_grad():
            x_hat = self.net.decompress(out["strings"], out["shape"])["x_hat"]
        return (x_hat[0, :, :h, :w].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


WORKERS = {"neurocodec": NeurocodecWorker, "compressai": CompressAIWorker}


def run_worker(kind: str, folder: str, images: int, repeats: int, threads: int, quality: float,
               model: str | None) -> dict:
    """Time one codec in this process: per image, the median of ``repeats`` encodes and decodes."""
    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(threads)
    paths = sorted(Path(folder).glob("*.png"))[: images or None]
    worker = WORKERS[kind](quality, model)
    loaded_rss = _current_rss_mb()
    times = {key: [] for key in ("encode_s", "decode_s", "encode_cpu_s", "decode_cpu_s")}
    for path in paths:
        img = np.asarray(Image.open(path).convert("RGB")).copy()
        worker.decode(worker.encode(img))  # warm-up (first-call allocations, lazy imports)
        runs = {key: [] for key in times}
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            data = worker.encode(img)
            t1, c1 = time.perf_counter(), time.process_time()
            worker.decode(data)
            t2, c2 = time.perf_counter(), time.process_time()
            for key, value in (("encode_s", t1 - t0), ("decode_s", t2 - t1), ("encode_cpu_s", c1 - c0),
                               ("decode_cpu_s", c2 - c1)):
                runs[key].append(value)
        for key in times:
            times[key].append(statistics.median(runs[key]))
    return {"label": worker.label, **times, "loaded_rss_mb": loaded_rss,
            "peak_rss_mb": _rss_mb(), "torch": torch.__version__, "threads": threads}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", default=str(DEFAULT_KODAK))
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter whose environment has both neurocodec and compressai")
    parser.add_argument("--images", type=int, default=0, help="first N images (default all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per image (median kept)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the two workers")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quality", type=float, default=4.0, help="neurocodec quality (rate does change speed)")
    parser.add_argument("--model", default=None, help="neurocodec model (default: the default model)")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_worker(args.worker, args.kodak, args.images, args.repeats, args.threads,
                                    args.quality, args.model)))
        return 0

    started = time.time()
    runs: dict[str, list[dict]] = {k: [] for k in WORKERS}
    for _ in range(args.rounds):
        for kind in ("compressai", "neurocodec"):
            cmd = [args.python, __file__, "--worker", kind, "--kodak", args.kodak, "--images", str(args.images),
                   "--repeats", str(args.repeats), "--threads", str(args.threads), "--quality", str(args.quality)]
            if args.model:
                cmd += ["--model", args.model]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"{kind} worker failed (exit {proc.returncode}); see above")
            runs[kind].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    summary = {}
    for kind, results in runs.items():
        summary[kind] = {"label": results[0]["label"], "loaded_rss_mb": max(r["loaded_rss_mb"] for r in results),
                         "peak_rss_mb": max(r["peak_rss_mb"] for r in results), "torch": results[0]["torch"]}
        for key in ("encode_s", "decode_s", "encode_cpu_s", "decode_cpu_s"):
            # Per image, the fastest round's median: the rounds differ only by machine load.
            per_image = [min(r[key][i] for r in results) for i in range(len(results[0][key]))]
            summary[kind][key] = statistics.median(per_image)
            summary[kind]["per_image_" + key] = per_image
    n, c = summary["neurocodec"], summary["compressai"]
    ratios = {"encode": n["encode_s"] / c["encode_s"], "decode": n["decode_s"] / c["decode_s"],
              "encode_cpu": n["encode_cpu_s"] / c["encode_cpu_s"], "decode_cpu": n["decode_cpu_s"] / c["decode_cpu_s"]}
    images = len(n["per_image_encode_s"])
    minutes = (time.time() - started) / 60
    title = "## Speed against CompressAI" + ("" if args.threads == 1 else f", {args.threads} threads")
    options = (f"{' --images ' + str(args.images) if args.images else ''}"
               f"{' --threads ' + str(args.threads) if args.threads != 1 else ''}")
    lines = [
        title, "",
        f"Generated by `python benchmarks/speed.py --python <venv with compressai>{options}` on "
        f"{time.strftime('%Y-%m-%d')}: "
        f"{images} Kodak images, {args.threads} torch thread(s), torch {n['torch']} in both workers, "
        f"{args.rounds} alternating rounds x {args.repeats} repeats (per image: median of the repeats, fastest "
        f"round; then the median over images), {minutes:.1f} minutes. Each codec runs in its own process; "
        "peak RSS is that process's maximum resident set (it includes torch itself; 'after load' is the "
        "resident set once the model is loaded). The machine is shared: compare the ratios, not the seconds. "
        "Wall-clock time, then CPU time of the process (all threads; on a loaded machine the steadier "
        "measure of the work).", "",
        "| codec | encode s | decode s | encode ratio | decode ratio | encode CPU s | decode CPU s | "
        "CPU ratio encode / decode | RSS after load MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {c['label']} | {c['encode_s']:.3f} | {c['decode_s']:.3f} | 1 | 1 | {c['encode_cpu_s']:.3f} | "
        f"{c['decode_cpu_s']:.3f} | 1 / 1 | {c['loaded_rss_mb']:.0f} | {c['peak_rss_mb']:.0f} |",
        f"| {n['label']} | {n['encode_s']:.3f} | {n['decode_s']:.3f} | {ratios['encode']:.2f} | "
        f"{ratios['decode']:.2f} | {n['encode_cpu_s']:.3f} | {n['decode_cpu_s']:.3f} | "
        f"{ratios['encode_cpu']:.2f} / {ratios['decode_cpu']:.2f} | {n['loaded_rss_mb']:.0f} | "
        f"{n['peak_rss_mb']:.0f} |",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_docs:
        from neurocodec.bench.report import update_section

        suffix = "" if args.threads == 1 else f"-{args.threads}-threads"
        update_section(ROOT / "docs" / "benchmarks.md", "speed" + suffix, text)
        (ROOT / "benchmarks" / "results" / f"speed{suffix}.json").write_text(
            json.dumps({"summary": summary, "runs": runs, "ratios": ratios, "threads": args.threads}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
