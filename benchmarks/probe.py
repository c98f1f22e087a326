"""A training run's snapshot against the shipped default, on a few Kodak images and a few
full-resolution development photographs (issue 19): is a run worth continuing or shipping?

Exports the run's checkpoint (or ``snapshots/stepN.pt``) with encoder hints measured on the
training folder, then measures it and the default in the same run, real files, both with
their encoder hints (rate-distortion rounding): BD-rate against the default per set, and
encode / decode time ratios. The full table of a shipped model is ``benchmarks/families.py``.

    python benchmarks/probe.py RUN --train-data DATA --kodak-images 6 --dev-images 2
    python benchmarks/probe.py RUN --step 8000 --train-data DATA
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = ROOT.parent / "shared"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="training run folder (config.json, checkpoint.pt, snapshots/)")
    parser.add_argument("--step", type=int, default=None, help="a snapshot step (default: the checkpoint)")
    parser.add_argument("--train-data", type=Path, required=True, help="training folder (encoder hints probe)")
    parser.add_argument("--kodak", type=Path, default=SHARED / "data" / "kodak")
    parser.add_argument("--kodak-images", type=int, default=6, help="every 24/N-th Kodak image, N of them")
    parser.add_argument("--dev-images", type=int, default=2, help="the first N development photographs")
    parser.add_argument("--qualities", default="1,3,5,8")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--default-hints", action="store_true",
                        help="code the snapshot with the shipped default's encoder hints instead of hints measured "
                             "for it (same latent channels): separates the hints from the weights")
    args = parser.parse_args(argv)

    import torch

    from neurocodec.bench import evaluate, load_images
    from neurocodec.bench.neural import NeuralCodec
    from neurocodec.bench.suite import bd_or_none
    from neurocodec.train.export import load_trained, write_probe_hints
    from neurocodec.zoo import export_weights

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from families import devset_names  # noqa: E402  (the one list of development photographs)

    torch.set_num_threads(args.threads)
    config = json.loads((args.run / "config.json").read_text())
    state = args.run / ("checkpoint.pt" if args.step is None else f"snapshots/step{args.step:07d}.pt")
    model, saved = load_trained(state, config)
    qualities = [float(q) for q in args.qualities.split(",")]
    kodak = load_images(args.kodak)
    kodak = kodak[:: max(1, len(kodak) // max(1, args.kodak_images))][: args.kodak_images]
    dev = []
    if args.dev_images:
        from PIL import Image
        import numpy as np

        for name in devset_names()[: args.dev_images]:
            with Image.open(SHARED / "data" / "train" / name) as im:
                dev.append((name, np.asarray(im.convert("RGB"))))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.safetensors"
        export_weights(model, path, "probe", description=f"{state.name} of {args.run.name}")
        write_probe_hints(path, args.train_data)
        rows = []
        for label, images in (("Kodak", kodak), ("dev", dev)):
            if not images:
                continue
            curves, times = {}, {}
            for who in ("default", "probe"):
                codec = NeuralCodec(threads=args.threads, weights=None if who == "default" else str(path))
                if who == "probe" and args.default_hints:
                    from neurocodec.zoo import load_model

                    codec.codec.model.channel_energy = load_model().channel_energy
                curves[who] = evaluate(codec, images, qualities, with_ms_ssim=False)
                times[who] = (statistics.median(p.enc_s for p in curves[who]),
                              statistics.median(p.dec_s for p in curves[who]))
                if codec.mismatches:
                    raise SystemExit(f"{who}: {codec.mismatches} decodes differ from the encoder's reconstruction")
            bd = bd_or_none(curves["probe"], curves["default"])
            rows.append(f"| {label} ({len(images)} images) | {'n/a' if bd is None else f'{bd:+.2f} %'} | "
                        f"{times['probe'][0] / times['default'][0]:.2f} | {times['probe'][1] / times['default'][1]:.2f} |")
    hints = "the snapshot with the default's hints" if args.default_hints else "each with its own encoder hints"
    print(f"{args.run.name} at step {saved['step']} ({config['architecture']}) against the shipped default, "
          f"qualities {args.qualities}, {hints}:")
    print("| set | BD-rate vs default | encode / default | decode / default |\n|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
