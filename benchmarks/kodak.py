"""Kodak RD benchmark: shipped models against JPEG, WebP, AVIF (measured in the same run)
and the published VTM / BPG curves; writes docs/benchmarks.md and docs/img/kodak_rd.png.

    python benchmarks/kodak.py                       # full run, writes the docs
    python benchmarks/kodak.py --images 4 --codecs jpeg --no-docs   # quick check
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main(argv=None) -> int:
    from neurocodec.bench.suite import run_suite

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"), help="image folder")
    parser.add_argument("--anchors", default=str(ROOT.parent / "shared" / "anchors" / "kodak_published_rd.csv"))
    parser.add_argument("--models", default="", help="comma-separated shipped models (default: the default model)")
    parser.add_argument("--codecs", default="jpeg,webp,avif", help="classical codecs to measure ('' for none)")
    parser.add_argument("--images", type=int, default=0, help="use only the first N images (no docs, no anchors)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-docs", action="store_true", help="print only; do not write docs/benchmarks.md")
    args = parser.parse_args(argv)

    models = [m for m in args.models.split(",") if m] or [None]
    codecs = [c for c in args.codecs.split(",") if c]
    write = not args.no_docs and not args.images
    command = "python benchmarks/kodak.py" + (f" --models {args.models}" if args.models else "")
    result = run_suite(args.kodak, models, codecs, args.anchors, images=args.images or None,
                       out_md=ROOT / "docs" / "benchmarks.md" if write else None,
                       out_png=ROOT / "docs" / "img" / "kodak_rd.png" if write else None,
                       out_json=ROOT / "benchmarks" / "results" / "kodak.json" if write else None,
                       threads=args.threads, command=command)
    for label in result["measured"]:
        print(f"\n{label}")
        for p in result["curves"][label]:
            print(f"  q={p.quality!s:>3}  bpp={p.bpp:.4f}  PSNR={p.psnr:.3f}  MS-SSIM={p.ms_ssim:.4f}  "
                  f"enc={p.enc_s:.3f}s  dec={p.dec_s:.3f}s")
    print("\nBD-rate (row vs column):")
    for label, row in result["bd"].items():
        print(f"  {label}: " + ", ".join(f"{ref} {v:+.1f}%" if v is not None else f"{ref} n/a" for ref, v in row.items()))
    for name, beats in result["beats_jpeg"].items():
        print(f"\n{name} above JPEG at each quality: {beats}; decode mismatches: {result['mismatches'][name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
