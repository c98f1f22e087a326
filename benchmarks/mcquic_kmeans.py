"""block-mcquic fitted by k-means on the default (no training): rate-distortion at every
rate, and coding time against the context model, in one run.

* RD: the first ``--images`` Kodak images at rates 1..8 through ``Codec(weights=...)``;
  bpp from the real stream sizes, PSNR (RGB, 8-bit) of what the decoder returns; means.
* Speed: one image, one torch thread; McQuic at rates 1, 4 and 8 against the shipped context
  model ``block-context-mse``, a step-0 ``block-context`` exported from the shipped default
  (:func:`neurocodec.train.warm_start.export_step_zero`, with the default's encoder hints)
  and the default, at quality 4; codecs in alternating rounds in one process; medians of
  the rounds; ratios are the shipped context model's time over each codec's.

    python benchmarks/mcquic_kmeans.py MCQUIC.safetensors --images 4 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
KODAK = ROOT.parent / "shared" / "data" / "kodak"
SHIPPED_CONTEXT = "block-context-mse"
CONTEXT = f"{SHIPPED_CONTEXT} (shipped), quality 4"


def rd_rows(codec, pictures) -> list[tuple[int, float, float]]:
    """(rate, mean bpp, mean PSNR) for rates 1..8."""
    import numpy as np

    rows = []
    for rate in range(1, 9):
        bpp, psnr = [], []
        for picture in pictures:
            data = codec.compress(picture, float(rate))
            decoded = codec.decompress(data).astype(np.float64)
            bpp.append(8.0 * len(data) / (picture.shape[0] * picture.shape[1]))
            psnr.append(10.0 * np.log10(255.0**2 / np.mean((decoded - picture) ** 2)))
        rows.append((rate, float(np.mean(bpp)), float(np.mean(psnr))))
    return rows


def timed(codec, picture, quality: float) -> tuple[float, float]:
    start = time.perf_counter()
    data = codec.compress(picture, quality)
    middle = time.perf_counter()
    codec.decompress(data)
    return middle - start, time.perf_counter() - middle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="the k-means block-mcquic weight file")
    parser.add_argument("--images", type=int, default=4, help="first N Kodak images for the RD table")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--speed-image", default=str(KODAK / "kodim01.png"))
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from neurocodec.codec import Codec
    from neurocodec.train.warm_start import export_step_zero
    from neurocodec.zoo import WEIGHTS_DIR

    torch.set_num_threads(1)
    mcquic = Codec(weights=args.weights)
    pictures = [np.asarray(Image.open(KODAK / f"kodim{i:02d}.png").convert("RGB")) for i in range(1, args.images + 1)]
    print(f"block-mcquic (k-means, no training), Kodak 1-{args.images}, 1 thread")
    print("| rate | bpp | PSNR (dB) |\n|---|---|---|")
    for rate, bpp, psnr in rd_rows(mcquic, pictures):
        print(f"| {rate} | {bpp:.3f} | {psnr:.2f} |", flush=True)
    if args.no_speed:
        return

    picture = np.asarray(Image.open(args.speed_image).convert("RGB"))
    default = Codec()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "block-context-step0.safetensors"
        export_step_zero("block-context", WEIGHTS_DIR / "block-hyperprior-mse.safetensors", path,
                         "block-context-step0")
        step0 = Codec(weights=str(path))
    step0.model.channel_energy = default.model.channel_energy
    runs = {"block-mcquic rate 1": (mcquic, 1.0), "block-mcquic rate 4": (mcquic, 4.0),
            "block-mcquic rate 8": (mcquic, 8.0), CONTEXT: (Codec(SHIPPED_CONTEXT), 4.0),
            "block-context (step 0 from the default), quality 4": (step0, 4.0),
            "block-hyperprior-mse (default), quality 4": (default, 4.0)}
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (codec, quality) in runs.items():
            times[name].append(timed(codec, picture, quality))
    medians = {name: tuple(statistics.median(t[i] for t in ts) for i in (0, 1)) for name, ts in times.items()}
    ctx = medians[CONTEXT]
    print(f"\n{Path(args.speed_image).name}, 1 thread, median of {args.rounds} alternating rounds")
    print("| codec | encode s | decode s | context / it, encode | context / it, decode |\n|---|---|---|---|---|")
    for name, (e, d) in medians.items():
        print(f"| {name} | {e:.2f} | {d:.2f} | {ctx[0] / e:.2f}x | {ctx[1] / d:.2f}x |")


if __name__ == "__main__":
    main()
