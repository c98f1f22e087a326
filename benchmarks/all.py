"""Regenerate every section of docs/benchmarks.md (and its plot) in one command.

Runs, one after another, each script that owns a section of the page:

* ``kodak.py``            rate-distortion on Kodak against JPEG, WebP, AVIF and published curves (+ plot)
* ``rate_control.py``     how close ``bpp=`` / ``psnr=`` targets land
* ``effort.py``           BD-rate gain and encode cost of ``effort=``
* ``fixed_point_cost.py`` BD-rate cost of the fixed-point prior and of PTQ
* ``speed.py``            encode / decode time against CompressAI (only with ``--compressai-python``:
  CompressAI needs its own venv, see that script)

About 1.5 hours on two free cores. ``--only kodak,rate_control`` runs a subset.

    python benchmarks/all.py --compressai-python .venv-cai/bin/python
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("kodak", "rate_control", "effort", "fixed_point_cost", "speed")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCRIPTS), help="comma-separated subset of: " + ", ".join(SCRIPTS))
    parser.add_argument("--compressai-python", default="",
                        help="interpreter of a venv with compressai 1.2.8 and neurocodec (for speed.py)")
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s]
    unknown = sorted(set(chosen) - set(SCRIPTS))
    if unknown:
        parser.error(f"unknown script(s) {unknown}; choose from {list(SCRIPTS)}")
    failed = []
    for name in chosen:
        cmd = [sys.executable, str(HERE / f"{name}.py")]
        if name == "speed":
            if not args.compressai_python:
                print("== speed: skipped (give --compressai-python)", flush=True)
                continue
            cmd += ["--python", args.compressai_python]
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        started = time.time()
        code = subprocess.call(cmd)
        print(f"== {name}: exit {code} after {(time.time() - started) / 60:.1f} min", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
