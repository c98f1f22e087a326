"""Context probe against the shipped default: BD-rate of each snapshot of a block-context run
(warm-started from the default's weights) against the default, both with encoder hints
(rate-distortion rounding) and both with plain rounding, real files.

    python probe-eval.py runs/ctx-v11 --images 8

Snapshots are measured on the first N Kodak images at qualities 1, 3, 5, 8; the default is
measured in the same run on the same images.
"""
import argparse
import json
import tempfile
from pathlib import Path

import torch

from neurocodec.bench import evaluate, load_images
from neurocodec.bench.neural import NeuralCodec
from neurocodec.metrics import bd_rate
from neurocodec.train.export import load_trained, write_probe_hints
from neurocodec.zoo import export_weights

ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared

parser = argparse.ArgumentParser()
parser.add_argument("run")
parser.add_argument("--images", type=int, default=8)
parser.add_argument("--kodak", default=str(SHARED / "data" / "kodak"))
parser.add_argument("--only", default="", help="comma-separated snapshot steps (default: all)")
args = parser.parse_args()
torch.set_num_threads(1)
images = load_images(args.kodak)[: args.images]
qualities = [1.0, 3.0, 5.0, 8.0]
config = json.loads((Path(args.run) / "config.json").read_text())


def curves(codec_factory):
    out = {}
    for rd in (True, False):
        codec = codec_factory()
        if not rd:
            codec.codec.model.channel_energy = None
        assert (codec.codec.model.rd_weight(3.0) is not None) == rd
        points = evaluate(codec, images, qualities, progress=False, with_ms_ssim=False)
        assert not codec.mismatches
        out["rd" if rd else "plain"] = ([p.bpp for p in points], [p.psnr for p in points])
    return out


base = curves(lambda: NeuralCodec("block-hyperprior-mse"))
print(json.dumps({"default": base}), flush=True)
steps = {int(s) for s in args.only.split(",") if s}
for snap in sorted((Path(args.run) / "snapshots").glob("step*.pt")):
    if steps and int(snap.stem[4:]) not in steps:
        continue
    model, state = load_trained(snap, config)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"probe-{snap.stem}.safetensors"
        export_weights(model, path, path.stem)
        write_probe_hints(path, config["data"])
        result = curves(lambda: NeuralCodec(weights=str(path)))
    row = {"step": state["step"], **{f"bd_{k}": bd_rate(*base[k], *result[k]) for k in ("rd", "plain")},
           "points": result}
    print(json.dumps(row), flush=True)
