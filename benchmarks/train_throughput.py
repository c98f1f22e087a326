"""Training throughput on this CPU: fp32 against bf16, one process against two, and the Kodak
RD each precision reaches after equal CPU time. Writes the ``train-throughput`` section of
docs/benchmarks.md and benchmarks/results/train_throughput.json.

    python benchmarks/train_throughput.py --pause-pid-file RUN/train.pid

Every run is the real command (``python -m neurocodec.train``: prefetching loop, torchrun for
two processes) on the shipped default's architecture and options, warm-started from its
weights, batch 8 of 128-pixel crops from ../shared/data/train, one torch thread per process:

1. **Speed**: each of fp32 x1, bf16 x1, fp32 x2, bf16 x2 processes trains ``--steps`` steps,
   twice, in the order A B C D D C B A (drift on a shared machine cancels). The step rate of
   a run is the median over its log windows of ``log_every`` steps after the first
   ``--skip`` steps (warm-up); CPU-seconds are wall seconds x processes (one thread each).
   Reported: steps/s, pixels/s, steps per CPU-second, the ratios within this run, and the
   share of the step time the loop waited for data (the logs' ``data_wait``).
2. **RD at equal CPU time**: fp32 and bf16 train side by side (one process and one core
   each) for ``--rd-seconds`` of wall time from the shipped weights (rate of the coded
   symbols, a quarter of the crops at integer qualities, lr ``--lr``); the results and the
   shipped model are measured with real files on the first ``--images`` Kodak images at
   qualities 1, 3, 5, 8, and BD-rates are taken against the shipped model and bf16 against fp32.

Both parts need the two cores to themselves: ``--pause-pid-file`` names a process to stop
(SIGSTOP) while they run and to continue (SIGCONT) as soon as they end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

CONFIGS = [("fp32", 1), ("bf16", 1), ("fp32", 2), ("bf16", 2)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    parser.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--speed-images", type=int, default=20,
                        help="training images of the speed runs (the first N: quicker start-up; default: 20)")
    parser.add_argument("--steps", type=int, default=40, help="steps of each speed run (default: 40)")
    parser.add_argument("--skip", type=int, default=10, help="warm-up steps left out of the rate (default: 10)")
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--rd-seconds", type=float, default=240.0, help="training time of each RD run (default: 240)")
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--images", type=int, default=6, help="Kodak images of the RD comparison (default: 6)")
    parser.add_argument("--qualities", default="1,3,5,8")
    parser.add_argument("--pause-pid-file", help="a process to pause while the timed runs need both cores")
    parser.add_argument("--work", help="folder for the runs (default: a temporary one)")
    parser.add_argument("--skip-rd", action="store_true", help="speed only")
    parser.add_argument("--reuse-timed", action="store_true",
                        help="take the timed runs' results from --work/timed.json (measure and write only)")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--render-only", action="store_true", help="only write the docs section from --out-json")
    parser.add_argument("--out-json", default=str(ROOT / "benchmarks" / "results" / "train_throughput.json"))
    args = parser.parse_args(argv)
    command = "python benchmarks/train_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.render_only:
        _write_docs(render(json.loads(Path(args.out_json).read_text())))
        return 0

    from neurocodec.zoo import model_info
    from neurocodec.zoo.weights import read_metadata

    shipped = model_info()
    options = [f"{k}={json.dumps(v)}" for k, v in read_metadata(shipped.path)["config"].items()]
    common = ["--init-from", str(shipped.path), "--rate-proxy", "round", "--integer-qualities", "0.25",
              "--lr", str(args.lr), "--batch", "8", "--crop", "128", "--threads", "1", "--quiet"]
    for option in options:
        common += ["--model-option", option]
    work = Path(args.work or tempfile.mkdtemp(prefix="train-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    result = {"command": command, "date": time.strftime("%Y-%m-%d"), "cpu": _cpu_name(),
              "model": shipped.name, "model_config": read_metadata(shipped.path)["config"], "batch": 8, "crop": 128,
              "speed_images": args.speed_images}

    timed = work / "timed.json"  # the timed parts' results, kept in case the measurement fails
    if args.reuse_timed:
        result.update(json.loads(timed.read_text()))
    else:
        with paused(args.pause_pid_file):
            result["speed"] = speed(args, common, work)
            if not args.skip_rd:
                result["rd_runs"] = rd_training(args, common, work)
        timed.write_text(json.dumps({k: result[k] for k in ("speed", "rd_runs") if k in result}, indent=1))
    print(json.dumps(result["speed"], indent=1), flush=True)
    if not args.skip_rd:
        result["rd"] = rd_measure(args, work, result["rd_runs"])
    Path(args.out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out_json).write_text(json.dumps(result, indent=1))
    text = render(result)
    print(text)
    if not args.no_docs:
        _write_docs(text)
    return 0


def _write_docs(text: str) -> None:
    from neurocodec.bench.report import update_section

    update_section(ROOT / "docs" / "benchmarks.md", "train-throughput", text)


@contextmanager
def paused(pid_file: str | None):
    """SIGSTOP the process in ``pid_file`` for the duration; SIGCONT it on the way out, also
    on an exception, Ctrl-C or SIGTERM."""
    pid = int(Path(pid_file).read_text().split()[0]) if pid_file else None
    if pid is None:
        yield
        return
    started = time.monotonic()

    def resume(*_):
        os.kill(pid, signal.SIGCONT)

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    for s in previous:
        signal.signal(s, lambda signum, frame: (resume(), sys.exit(128 + signum)))
    os.kill(pid, signal.SIGSTOP)
    print(f"paused process {pid}", flush=True)
    try:
        yield
    finally:
        resume()
        for s, handler in previous.items():
            signal.signal(s, handler)
        print(f"resumed process {pid} after {time.monotonic() - started:.0f} s", flush=True)


def _train(args, common: list[str], run: Path, precision: str, nproc: int, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, "-m", "neurocodec.train", args.data, str(run), *common, "--precision", precision,
            "--nproc", str(nproc), *extra]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> float:
    """Wait for ``proc``; returns its CPU seconds (user + system, children included)."""
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"training failed:\n{output[-3000:]}")
    return usage.ru_utime + usage.ru_stime


def speed(args, common: list[str], work: Path) -> list[dict]:
    """Steps/s of each configuration, two runs each in A B C D D C B A order."""
    from neurocodec.train.data import find_images
    from neurocodec.train.export import read_log

    subset = work / "speed-images"
    subset.mkdir(exist_ok=True)
    for i, path in enumerate(find_images(args.data)[:args.speed_images]):
        link = subset / f"{i:03d}{path.suffix}"
        if not link.exists():
            link.symlink_to(path)
    args = argparse.Namespace(**{**vars(args), "data": str(subset)})
    windows: dict[tuple, list[float]] = {c: [] for c in CONFIGS}
    waits: dict[tuple, list[float]] = {c: [] for c in CONFIGS}
    for i, (precision, nproc) in enumerate(CONFIGS + CONFIGS[::-1]):
        run = work / f"speed-{precision}-x{nproc}-{i}"
        proc = _train(args, common, run, precision, nproc,
                      ["--steps", str(args.steps), "--log-every", str(args.log_every), "--checkpoint-every", "100000"])
        _finish(proc)
        rows = read_log(run / "log.jsonl")
        for a, b in zip(rows, rows[1:]):
            if a["step"] >= args.skip:
                windows[(precision, nproc)].append((b["step"] - a["step"]) / (b["seconds"] - a["seconds"]))
                waits[(precision, nproc)].append(b["data_wait"])
        print(f"{precision} x{nproc}: {statistics.median(windows[(precision, nproc)]):.3f} steps/s so far", flush=True)
    out = []
    for precision, nproc in CONFIGS:
        rate = statistics.median(windows[(precision, nproc)])
        out.append({"precision": precision, "processes": nproc, "steps_per_s": round(rate, 4),
                    "pixels_per_s": round(rate * 8 * 128 * 128), "steps_per_cpu_s": round(rate / nproc, 4),
                    "windows": len(windows[(precision, nproc)]),
                    "data_wait": round(statistics.mean(waits[(precision, nproc)]), 5)})
    return out


def rd_training(args, common: list[str], work: Path) -> dict:
    """fp32 and bf16 side by side, one core each, for the same wall time."""
    from neurocodec.train.export import read_log

    procs = {}
    for precision in ("fp32", "bf16"):
        run = work / f"rd-{precision}"
        procs[precision] = (run, _train(args, common, run, precision, 1,
                                        ["--steps", "1000000", "--lr-drop-at", "1.0", "--log-every", "20",
                                         "--checkpoint-every", "100000", "--time-limit", str(args.rd_seconds)]))
    runs = {}
    for precision, (run, proc) in procs.items():
        cpu = _finish(proc)
        last = read_log(run / "log.jsonl")[-1]
        runs[precision] = {"run": str(run), "steps": last["step"], "train_seconds": last["seconds"],
                           "process_cpu_seconds": round(cpu, 1), "data_wait": last["data_wait"]}
    return runs


def rd_measure(args, work: Path, runs: dict) -> dict:
    """Export each RD run and measure it and the shipped model on Kodak (real files)."""
    from gpu_recipe import bd_against, kodak_images, measure_rd

    from neurocodec.train.export import export_run

    models = {"shipped": None}
    for precision, info in runs.items():
        path = work / f"rd-{precision}.safetensors"
        export_run(info["run"], path, f"rd-{precision}")
        models[precision] = str(path)
    images = kodak_images(args.kodak, args.images)
    curves = measure_rd(models, images, [float(q) for q in args.qualities.split(",")], workers=1)
    return {"images": [n for n, _ in images], "curves": curves,
            "bd_fp32_vs_shipped": bd_against(curves["shipped"], curves["fp32"]),
            "bd_bf16_vs_shipped": bd_against(curves["shipped"], curves["bf16"]),
            "bd_bf16_vs_fp32": bd_against(curves["fp32"], curves["bf16"])}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return "unknown CPU"


def render(result: dict) -> str:
    speed = {(r["precision"], r["processes"]): r for r in result["speed"]}
    lines = ["## Training throughput (issue 18)", "",
             f"Generated by `{result['command']}` on {result['date']} ({result['cpu']}; the background job paused "
             f"during the timed runs). Model: the shipped `{result['model']}`'s architecture and options "
             f"({', '.join(f'{k}={v}' for k, v in result['model_config'].items())}), warm-started from its weights; "
             f"batch {result['batch']} of {result['crop']}-pixel crops (speed runs: the first {result['speed_images']} "
             "training images, for a quicker start; RD runs: all of them), one torch thread per process, the real "
             "`python -m neurocodec.train` loop. Rates are medians over the log windows after warm-up of two runs "
             "per configuration (A B C D D C B A order); CPU-seconds are wall seconds x processes."
             + (" With `--reuse-timed` the timed runs are those of the previous invocation with the same `--work` "
                "(only the Kodak measurement and this section were redone)." if "--reuse-timed" in result["command"]
                else ""), "",
             "| precision | processes | steps/s | pixels/s | steps per CPU-second | waiting for data |",
             "|---|---|---|---|---|---|"]
    for r in result["speed"]:
        lines.append(f"| {r['precision']} | {r['processes']} | {r['steps_per_s']:.3f} | {r['pixels_per_s']:,} | "
                     f"{r['steps_per_cpu_s']:.3f} | {100 * r['data_wait']:.2f} % |")
    bf16_gain = speed[("bf16", 1)]["steps_per_cpu_s"] / speed[("fp32", 1)]["steps_per_cpu_s"]
    two = speed[("bf16", 2)]["steps_per_s"] / speed[("bf16", 1)]["steps_per_s"]
    two_fp32 = speed[("fp32", 2)]["steps_per_s"] / speed[("fp32", 1)]["steps_per_s"]
    lines += ["", f"- bf16 against fp32, one process: **{bf16_gain:.2f}x** the steps per CPU-second "
              f"(goal: at least 1.3x).",
              f"- two processes against one: **{two:.2f}x** the steps per second in bf16, {two_fp32:.2f}x in fp32 "
              f"(so {two / 2:.2f}x and {two_fp32 / 2:.2f}x the steps per CPU-second; below 1x, the gloo all-reduce "
              "of the gradients and the memory bandwidth the two cores share are the cost). Log seconds are rounded "
              "to 0.01 s, so a rate of one 5-step window is good to about 1 %.",
              f"- waiting for data: at most {100 * max(r['data_wait'] for r in result['speed']):.2f} % of the step "
              "time (batches are drawn a step ahead in a background thread)."]
    if "rd" in result:
        rd, runs = result["rd"], result["rd_runs"]
        bd = lambda v: "n/a" if v is None else f"{v:+.2f} %"  # noqa: E731
        lines += ["", "### RD at equal CPU time", "",
                  f"fp32 and bf16 trained side by side (one process, one core each) for "
                  f"{runs['fp32']['train_seconds']:.0f} s of training-loop wall time from the shipped weights (the "
                  "same conditions for both; other work on the machine can take a share of both cores, so the CPU "
                  "time of each is at most that; bf16 made "
                  f"{runs['bf16']['steps'] / runs['fp32']['steps']:.2f}x the steps), then both "
                  f"and the shipped model measured with real files on {len(rd['images'])} Kodak images "
                  f"({', '.join(rd['images'])}) at qualities "
                  f"{', '.join(f'{row[0]:g}' for row in rd['curves']['shipped'])}.", "",
                  "| run | steps | loop seconds | process CPU-seconds | BD-rate vs shipped |", "|---|---|---|---|---|"]
        for precision in ("fp32", "bf16"):
            r = runs[precision]
            cpu = "n/a" if r["process_cpu_seconds"] is None else f"{r['process_cpu_seconds']:.0f}"
            lines.append(f"| {precision} | {r['steps']} | {r['train_seconds']:.0f} | {cpu} | "
                         f"{bd(rd[f'bd_{precision}_vs_shipped'])} |")
        if any(runs[p]["process_cpu_seconds"] is None for p in runs):
            lines += ["", "n/a: not recorded for these runs (their results were rebuilt from the run logs)."]
        lines += ["", f"bf16 against fp32 at equal CPU time: **{bd(rd['bd_bf16_vs_fp32'])}** BD-rate "
                  "(negative: bf16 better). Minutes of fine-tuning move a converged model little; read the sign "
                  "and the size against the noise of a few images, not the last digit.", "",
                  "| quality | shipped bpp / PSNR | fp32 bpp / PSNR | bf16 bpp / PSNR |", "|---|---|---|---|"]
        for s, f, b in zip(rd["curves"]["shipped"], rd["curves"]["fp32"], rd["curves"]["bf16"]):
            lines.append(f"| {s[0]:g} | {s[1]:.4f} / {s[2]:.3f} | {f[1]:.4f} / {f[2]:.3f} | {b[1]:.4f} / {b[2]:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
