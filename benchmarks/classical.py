#!/usr/bin/env python
"""Measure the classical Pillow codecs (JPEG, WebP, AVIF) on Kodak; BD-rate vs VTM.

Follows "How results are measured" in the design notes: bpp from whole-file sizes
averaged over images, RGB PSNR / MS-SSIM per image then averaged, Bjøntegaard BD-rate
(cubic fit of log-rate against PSNR over the overlapping PSNR interval) against the
published VTM (VVC intra) curve.

    nice python benchmarks/classical.py                      # all 24 images (~15 min, AVIF dominates)
    python benchmarks/classical.py --images 4 --codecs jpeg  # quick look

Prints a markdown report (RD points + BD-rate table); --out-md / --out-png also write it
and an RD plot. --out-json saves the measured points for later combination.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
try:
    import neurocodec.bench  # noqa: F401
except ImportError:  # running from a checkout that is not pip-installed
    sys.path.insert(0, str(REPO / "src"))

from neurocodec.bench import (  # noqa: E402
    DEFAULT_QUALITIES,
    bd_table,
    evaluate,
    load_anchors,
    load_images,
    make_classical,
    plot_rd,
)

SHARED = REPO.parent / "shared"


def _parse_grid(s: str) -> list[int]:
    return [int(v) for v in s.split(",") if v.strip()]


def points_table(curves) -> str:
    lines = ["| codec | quality | bpp | PSNR (dB) | MS-SSIM | enc ms | dec ms |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, pts in curves.items():
        for p in pts:
            lines.append(
                f"| {name} | {p.quality} | {p.bpp:.4f} | {p.psnr:.3f} | {p.ms_ssim:.5f} | "
                f"{1e3 * p.enc_s:.1f} | {1e3 * p.dec_s:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kodak", type=Path, default=SHARED / "data" / "kodak", help="folder of Kodak PNGs")
    ap.add_argument("--anchors", type=Path, default=SHARED / "anchors" / "kodak_published_rd.csv",
                    help="published RD points CSV")
    ap.add_argument("--reference", default="VTM", help="anchor codec to compute BD-rates against (substring)")
    ap.add_argument("--extra-anchors", default="BPG",
                    help="comma-separated anchor codecs shown alongside (substrings; '' for none)")
    ap.add_argument("--codecs", default="jpeg,webp,avif", help="comma-separated subset of jpeg,webp,avif")
    ap.add_argument("--images", type=int, default=0, help="use only the first N images (0 = all)")
    for key in DEFAULT_QUALITIES:
        ap.add_argument(f"--{key}-q", type=_parse_grid, default=None,
                        help=f"quality grid for {key} (default {','.join(map(str, DEFAULT_QUALITIES[key]))})")
    ap.add_argument("--no-ms-ssim", action="store_true", help="skip MS-SSIM (faster)")
    ap.add_argument("--out-md", type=Path, help="also write the markdown report here")
    ap.add_argument("--out-png", type=Path, help="write an RD plot (PSNR vs bpp) here (needs matplotlib)")
    ap.add_argument("--out-json", type=Path, help="write the measured points as JSON here")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    images = load_images(args.kodak)
    if not images:
        ap.error(f"no PNG/JPEG images in {args.kodak}")
    if args.images:
        images = images[: args.images]

    ref = load_anchors(args.anchors, args.reference)
    ref_name = ref[0].codec
    curves = {}
    t0 = time.time()
    for key in [k.strip().lower() for k in args.codecs.split(",") if k.strip()]:
        codec = make_classical(key)
        grid = getattr(args, f"{key}_q") or DEFAULT_QUALITIES[key]
        t = time.time()
        curves[codec.name] = evaluate(codec, images, grid, progress=not args.quiet,
                                      with_ms_ssim=not args.no_ms_ssim)
        print(f"# measured {codec!r} at {len(grid)} qualities on {len(images)} images "
              f"in {time.time() - t:.0f} s", file=sys.stderr)
    wall = time.time() - t0

    published = {ref_name: ref}
    for sub in [s.strip() for s in args.extra_anchors.split(",") if s.strip()]:
        pts = load_anchors(args.anchors, sub)
        published[pts[0].codec] = pts

    all_curves = {**curves, **published}
    lo = min(p.psnr for p in ref)
    hi = max(p.psnr for p in ref)
    report = [
        "# Classical codecs on Kodak",
        "",
        f"{len(images)} images from `{args.kodak.name}`; measured with Pillow in this run ({wall:.0f} s); "
        f"reference: published `{ref_name}` ({lo:.1f}–{hi:.1f} dB). BD-rate: cubic fit of log-rate "
        "against PSNR over the overlapping PSNR interval; negative = fewer bits than the reference.",
        "",
        "## BD-rate vs " + ref_name,
        "",
        bd_table(all_curves, references=[ref_name]),
    ]
    for name, pts in all_curves.items():
        if name == ref_name:
            continue
        a = max(lo, min(p.psnr for p in pts))
        b = min(hi, max(p.psnr for p in pts))
        report.append(f"- {name}: PSNR overlap with the reference {a:.1f}–{b:.1f} dB")
    report += ["", "## Measured points", "", points_table(curves)]
    text = "\n".join(report)
    print(text)

    if args.out_md:
        args.out_md.parent.mkdir(parents=True, exist_ok=True)
        args.out_md.write_text(text, encoding="utf-8")
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps({k: [p.as_dict() for p in v] for k, v in curves.items()}, indent=1))
    if args.out_png:
        plot_rd(all_curves, args.out_png, title=f"Kodak ({len(images)} images)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
