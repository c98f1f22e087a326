"""Realism decoder (issue 21): PSNR, MS-SSIM and texture measures against the realism value R.

Each Kodak image is encoded once per quality with the default model; the same stream is
decoded at every R (the realism decoder changes the decoder only). Per quality and R, means
over the images of: bpp (real file sizes), PSNR, MS-SSIM, the luma power-spectrum energy of
the reconstruction over the original's in the two highest radial bands (0.5-0.75 and
0.75-1 of Nyquist; 1 is the original's energy), and the total-variation distance between
gradient-magnitude histograms (0 = the original's distribution of edge strengths). Also a
gallery of crops (original, R = 0, 0.5, 1 at two qualities).

    python benchmarks/realism.py                 # writes its section of docs/benchmarks.md + the gallery
    python benchmarks/realism.py --images 2 --no-docs   # quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

GALLERY = ROOT / "docs" / "img" / "realism_gallery.png"
#: (image, top, left) of the gallery crops: texture (foliage, fabric, hair) where blur shows.
GALLERY_CROPS = (("kodim13", 60, 330), ("kodim08", 250, 380))
CROP = 192


def measure(codec, images, qualities, realisms):
    from neurocodec.metrics import band_energy_ratios, bits_per_pixel, gradient_histogram_distance, ms_ssim, psnr

    rows = {(q, r): [] for q in qualities for r in realisms}
    decoded = {}
    for name, image in images:
        for q in qualities:
            data = codec.compress(image, quality=q)
            bpp = bits_per_pixel(len(data), image.shape[0] * image.shape[1])
            for r in realisms:
                tic = time.perf_counter()
                out = codec.decompress(data, realism=r)
                seconds = time.perf_counter() - tic
                bands = band_energy_ratios(out, image)
                rows[(q, r)].append({"image": name, "bpp": bpp, "psnr": psnr(out, image), "ms_ssim": ms_ssim(out, image),
                                     "band_high": bands[-2], "band_top": bands[-1],
                                     "grad_tv": gradient_histogram_distance(out, image), "seconds": seconds})
                decoded[(name, q, r)] = out
    return rows, decoded


def gallery(images: dict, decoded: dict, qualities, realisms, path: Path) -> None:
    from PIL import Image, ImageDraw

    cells = []
    for name, top, left in GALLERY_CROPS:
        if name not in images:
            continue
        for q in qualities:
            row = [images[name][top:top + CROP, left:left + CROP]]
            row += [decoded[(name, q, r)][top:top + CROP, left:left + CROP] for r in realisms]
            cells.append((f"{name}  q{q:g}", row))
    if not cells:
        return
    label_h = 18
    width = CROP * (1 + len(realisms))
    canvas = Image.new("RGB", (width, len(cells) * (CROP + label_h) + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(["original"] + [f"R = {r:g}" for r in realisms]):
        draw.text((j * CROP + 4, 3), title, fill="black")
    for i, (label, row) in enumerate(cells):
        y = label_h + i * (CROP + label_h)
        draw.text((4, y + 3), label, fill="black")
        for j, crop in enumerate(row):
            canvas.paste(Image.fromarray(np.ascontiguousarray(crop)), (j * CROP, y + label_h))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--model", default=None, help="model with a realism decoder (default: the default model)")
    parser.add_argument("--qualities", default="1,2,3,4")
    parser.add_argument("--realisms", default="0,0.5,1")
    parser.add_argument("--images", type=int, default=0, help="first N Kodak images only (0: all 24)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/ and results/ alone")
    args = parser.parse_args(argv)

    import torch

    from neurocodec import Codec
    from neurocodec.bench import load_images
    from neurocodec.bench.report import update_section

    torch.set_num_threads(args.threads)
    images = load_images(args.kodak)
    if args.images:
        images = images[:args.images]
    if not images:
        raise SystemExit(f"no images in {args.kodak}")
    qualities = [float(q) for q in args.qualities.split(",")]
    realisms = [float(r) for r in args.realisms.split(",")]
    codec = Codec(args.model)
    from neurocodec.zoo.realism import find_realism
    from neurocodec.zoo.weights import read_metadata

    decoder_file = find_realism(codec.info)
    if decoder_file is None:
        raise SystemExit(f"model {codec.info.name} has no realism decoder")
    card = read_metadata(decoder_file)["card"]
    started = time.time()
    rows, decoded = measure(codec, images, qualities, realisms)
    minutes = (time.time() - started) / 60

    def mean(q, r, key):
        return float(np.mean([row[key] for row in rows[(q, r)]]))

    command = "python benchmarks/realism.py" + ("" if not argv else " " + " ".join(argv))
    lines = [
        "## Realism decoder", "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d')} ({minutes:.1f} min, {args.threads} "
        f"thread{'s' if args.threads != 1 else ''}): "
        f"model `{codec.info.name}` (weights {codec.info.weight_hash.hex()}) with its realism decoder "
        f"({card.get('steps', '?')} steps, {card.get('cpu_hours', '?')} CPU-hours), {len(images)} Kodak images. "
        "Each stream is encoded once and decoded at every R: the bits are the same at every R. "
        "Bands: the reconstruction's luma power-spectrum energy over the original's in the radial band "
        "0.5-0.75 and 0.75-1 of Nyquist (1 = the original's energy). Gradient TV: total-variation distance "
        "of the gradient-magnitude histograms (0 = the original's). Decode: median seconds per image.", "",
        "| quality | R | bpp | PSNR (dB) | MS-SSIM | band 0.5-0.75 | band 0.75-1 | gradient TV | decode (s) |",
        "|---|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for q in qualities:
        for r in realisms:
            lines.append(f"| {q:g} | {r:g} | {mean(q, r, 'bpp'):.4f} | {mean(q, r, 'psnr'):.2f} | "
                         f"{mean(q, r, 'ms_ssim'):.4f} | {mean(q, r, 'band_high'):.3f} | {mean(q, r, 'band_top'):.3f} | "
                         f"{mean(q, r, 'grad_tv'):.3f} | "
                         f"{float(np.median([row['seconds'] for row in rows[(q, r)]])):.2f} |")
        if 0.0 in realisms and 1.0 in realisms:
            closer = all(abs(np.log(mean(q, 1.0, k))) < abs(np.log(mean(q, 0.0, k))) for k in ("band_high", "band_top"))
            verdicts.append(f"quality {q:g}: high-frequency energy at R = 1 "
                            f"{'closer to' if closer else 'NOT closer to'} the original's than at R = 0 "
                            f"({mean(q, 0.0, 'band_top'):.3f} -> {mean(q, 1.0, 'band_top'):.3f} in the top band)")
    lines += ["", *[f"- {v}" for v in verdicts]]
    if any(name == n for n, _, _ in GALLERY_CROPS for name, _ in images):
        lines += ["", f"Gallery ({CROP}x{CROP} crops, qualities {qualities[0]:g} and {qualities[-1]:g}): "
                      f"`docs/img/{GALLERY.name}`", "", f"![realism gallery](img/{GALLERY.name})"]
    body = "\n".join(lines)
    print(body)
    if not args.no_docs:
        by_name = dict(images)
        gallery(by_name, decoded, [qualities[0], qualities[-1]], realisms, GALLERY)
        update_section(ROOT / "docs" / "benchmarks.md", "realism", body)
        results = ROOT / "benchmarks" / "results" / "realism.json"
        results.write_text(json.dumps({f"q{q:g}_r{r:g}": rows[(q, r)] for q in qualities for r in realisms},
                                      indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
