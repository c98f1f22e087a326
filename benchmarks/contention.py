"""Encode and decode speed under CPU contention: 1 thread, 2 threads and ``--threads auto``.

Issue 20: with the other core busy, the default model's encode at torch's default thread
count took 6x the time of one thread (torch's parallel regions wait for the thread whose
core is taken). The CLI now chooses its threads (``neurocodec.cli.threads``: ``auto`` = the
idle cores, at least 1). This measures one Kodak image (kodim01, 768x512) at 1, 2 and auto
threads, without and with a busy-loop process (started here) on another core, medians of
3 runs each, in one process (the same warm model for every row), and writes the section
``contention`` of docs/benchmarks.md.

    python benchmarks/contention.py [--image ../shared/data/kodak/kodim01.png] [--repeats 3]

The machine's other load (the 1-minute load average and the runnable tasks) is recorded
with every row: figures from a shared machine are noisy, so compare ratios within a run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "contention"
BUSY_LOOP = "while True: pass"


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        function()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def _load() -> str:
    from neurocodec.cli.threads import _runnable_others

    return f"{os.getloadavg()[0]:.2f} / {_runnable_others()}"


def measure(image_path: Path, repeats: int) -> list[dict]:
    import torch

    import neurocodec
    from neurocodec.cli.threads import auto_threads

    codec = neurocodec.Codec()
    image = neurocodec.codec.to_array(image_path)
    data = codec.compress(image)  # warm-up (and the stream decoded below)
    codec.decompress(data)
    rows = []
    for busy in (False, True):
        loop = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
        try:
            if loop is not None:
                time.sleep(1.0)  # let it take its core
            for setting in (1, 2, "auto"):
                threads, why = auto_threads() if setting == "auto" else (setting, "")
                torch.set_num_threads(threads)
                codec.compress(image)  # one untimed run at this thread count
                encode = _median_seconds(lambda: codec.compress(image), repeats)
                decode = _median_seconds(lambda: codec.decompress(data), repeats)
                rows.append({"busy_loop": busy, "setting": str(setting), "threads": threads, "why": why,
                             "encode_s": encode, "decode_s": decode, "load": _load()})
                print(rows[-1], flush=True)
        finally:
            if loop is not None:
                loop.kill()
                loop.wait()
    return rows


def report(rows: list[dict], image: Path, repeats: int) -> str:
    lines = [
        "## Threads under contention",
        "",
        f"`python benchmarks/contention.py` (issue 20): the default model on {image.name} "
        f"(768x512), median of {repeats} runs per row, one process; \"busy loop\" is a `{BUSY_LOOP}` "
        f"process started by the script. `auto` is `neurocodec --threads auto`, the CLI's default "
        f"(`neurocodec.cli.threads.auto_threads`: the idle cores, at least 1). Load: 1-minute load average "
        f"/ other runnable tasks when the row was measured ({os.cpu_count()} CPUs). The load shows the "
        f"machine's other work: near 1 or more, even the rows without the busy loop are contended (compare "
        f"within a table).",
        "",
        "| other core | --threads | threads used | encode s | decode s | encode vs 1 thread | decode vs 1 thread | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        base = next(r for r in rows if r["busy_loop"] == row["busy_loop"] and r["setting"] == "1")
        lines.append(f"| {'busy loop' if row['busy_loop'] else 'no busy loop'} | {row['setting']} | {row['threads']} "
                     f"| {row['encode_s']:.3f} | {row['decode_s']:.3f} | {row['encode_s'] / base['encode_s']:.2f}x "
                     f"| {row['decode_s'] / base['decode_s']:.2f}x | {row['load']} |")
    lines += ["", "The library never sets thread counts; the command, as the owner of its process, does."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", type=Path, default=ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    rows = measure(args.image, args.repeats)
    from neurocodec.bench.report import update_section

    update_section(args.out, SECTION, report(rows, args.image, args.repeats), header="")
    print(f"wrote section {SECTION!r} of {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
