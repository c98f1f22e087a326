"""Encode / decode time of the families warm-started from the default, against the default.

Each architecture is taken at step 0 of its warm start from the shipped
``block-hyperprior-mse`` (:func:`neurocodec.train.warm_start.export_step_zero`: the stages
are the identity, so the bytes are the default's and only the time differs: the stages
still run). One Kodak image, one torch thread, the codecs in alternating rounds in one
process; reported: the median of the rounds per codec and the ratio to the default.

    python benchmarks/block_stages_speed.py                       # kodim01, quality 4, 3 rounds
    python benchmarks/block_stages_speed.py --image PATH --rounds 5 block-swinv2
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("architectures", nargs="*", default=["block-swinv2", "block-region"])
    parser.add_argument("--image", default=str(ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png"))
    parser.add_argument("--quality", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from neurocodec.codec import Codec
    from neurocodec.train.warm_start import export_step_zero
    from neurocodec.zoo import WEIGHTS_DIR

    torch.set_num_threads(1)
    picture = np.asarray(Image.open(args.image).convert("RGB"))
    shipped = WEIGHTS_DIR / "block-hyperprior-mse.safetensors"
    codecs = {"block-hyperprior (default)": Codec()}
    with tempfile.TemporaryDirectory() as folder:
        for architecture in args.architectures:
            path = Path(folder) / f"{architecture}-step0.safetensors"
            export_step_zero(architecture, shipped, path, f"{architecture}-step0")
            codecs[architecture] = Codec(weights=str(path))
            codecs[architecture].model.channel_energy = codecs["block-hyperprior (default)"].model.channel_energy
    times = {name: ([], []) for name in codecs}
    for _ in range(args.rounds):
        for name, codec in codecs.items():
            start = time.perf_counter()
            data = codec.compress(picture, args.quality)
            middle = time.perf_counter()
            codec.decompress(data)
            times[name][0].append(middle - start)
            times[name][1].append(time.perf_counter() - middle)
    base = [statistics.median(t) for t in times["block-hyperprior (default)"]]
    print(f"{Path(args.image).name}, quality {args.quality:g}, 1 thread, median of {args.rounds}")
    print("| architecture | encode s | decode s | encode / default | decode / default |")
    print("|---|---|---|---|---|")
    for name, (encode, decode) in times.items():
        e, d = statistics.median(encode), statistics.median(decode)
        print(f"| {name} | {e:.2f} | {d:.2f} | {e / base[0]:.2f} | {d / base[1]:.2f} |")


if __name__ == "__main__":
    main()
