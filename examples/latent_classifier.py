"""Learning in the compressed domain: a classifier on codec latents against one on pixels.

We have no labelled data set offline, so the task is self-supervised: predict the
rotation (0, 90, 180 or 270 degrees) of an image crop. Each image is resized so its
shorter side is twice the crop, ``--crops`` (training) or ``--test-crops`` (test) random
crops are taken from it, and each crop is rotated four ways. Every rotated crop is then
coded as its own image by ``Codec.compress_with_latents``, which gives its latents (what
a decoder sees; ``Codec.encode_latents`` returns them alone) and its decoded pixels.
Training crops come from ``--train-dir``, test crops from the held-out images of
``--test-dir`` (Kodak by default), so the accuracy is on images never seen in training.

Three classifiers of one family are trained on exactly the same crops, for the same
steps, with the same seed:

* ``latents``: a 1x1 convolution stem on the latents (C channels at 1/s of the crop);
* ``decoded pixels``: a stride-s, s x s patch convolution stem on the decoded crop, so
  the rest of the network sees the same spatial grid as on latents;
* ``original pixels``: the same on the uncompressed crop (an upper reference).

After the stem: two 3x3 conv + ReLU layers (the second after a 2x2 average pool), an
adaptive average pool to 4x4 (keeps the coarse layout, which the task needs) and a
linear layer to 4 classes. Inputs are standardised per channel with training statistics.

    python examples/latent_classifier.py                 # shipped default model, ~10 minutes
    python examples/latent_classifier.py --weights w.safetensors --quality 6
    python examples/latent_classifier.py --tiny          # seconds: a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def load_crops(folder: str | Path, crop: int, per_image: int, rng: np.random.Generator,
               max_images: int = 0) -> list[np.ndarray]:
    """uint8 (crop, crop, 3) crops: each image resized to a shorter side of ``2 * crop``
    (Lanczos), then ``per_image`` uniformly placed crops. Sorted file order, so the same
    seed gives the same crops."""
    from PIL import Image

    from neurocodec.train.data import find_images

    crops = []
    files = find_images(folder)
    for path in files[:max_images or None]:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = 2 * crop / min(im.size)
            im = im.resize((max(crop, round(im.width * scale)), max(crop, round(im.height * scale))), Image.LANCZOS)
            array = np.asarray(im)
        for _ in range(per_image):
            top = int(rng.integers(0, array.shape[0] - crop + 1))
            left = int(rng.integers(0, array.shape[1] - crop + 1))
            crops.append(array[top:top + crop, left:left + crop])
    return crops


def rotations(crops: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Every crop rotated by 0, 90, 180, 270 degrees (counter-clockwise); labels int64 0..3."""
    images = [np.ascontiguousarray(np.rot90(c, k)) for c in crops for k in range(4)]
    labels = np.tile(np.arange(4, dtype=np.int64), len(crops))
    return images, labels


def encode_all(codec, images: list[np.ndarray], quality: float) -> dict[str, np.ndarray]:
    """Code every image once: latents float32 (N, C, h, w), decoded and original pixels
    float32 (N, 3, H, W) in [0, 1], and the stream sizes in bytes (N,)."""
    latents, decoded, sizes = [], [], []
    for image in images:
        data, recon, y_hat = codec.compress_with_latents(image, quality)
        latents.append(y_hat)
        decoded.append(recon)
        sizes.append(len(data))
    to_float = lambda arrays: np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # noqa: E731
    return {"latents": np.stack(latents), "decoded pixels": to_float(decoded),
            "original pixels": to_float(images), "bytes": np.array(sizes)}


def make_classifier(in_channels: int, stem: int, width: int):
    """The classifier family: stem (kernel = stride = ``stem``), two 3x3 convolutions, a
    4x4 adaptive pool and a linear layer to 4 logits."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(in_channels, width, stem, stride=stem), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(16 * width, 4),
    )


def train_and_test(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   stem: int, width: int, steps: int, batch: int, lr: float, seed: int) -> dict[str, float]:
    """Train one classifier (Adam, cross-entropy, standardised inputs); returns train and
    test accuracy in [0, 1] and the training seconds."""
    import torch
    import torch.nn.functional as F

    mean = train_x.mean(axis=(0, 2, 3), keepdims=True)
    std = train_x.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    xs = torch.from_numpy((train_x - mean) / std).float()
    xt = torch.from_numpy((test_x - mean) / std).float()
    ys, yt = torch.from_numpy(train_y), torch.from_numpy(test_y)
    torch.manual_seed(seed)
    net = make_classifier(xs.shape[1], stem, width)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    tic = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:  # cosine decay: no tuning of a drop point per input
            group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        idx = torch.randint(0, len(xs), (min(batch, len(xs)),), generator=generator)
        loss = F.cross_entropy(net(xs[idx]), ys[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - tic

    def accuracy(x, y):
        with torch.no_grad():
            predictions = torch.cat([net(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)])
        return float((predictions == y).float().mean())

    return {"train_accuracy": accuracy(xs, ys), "test_accuracy": accuracy(xt, yt), "train_seconds": seconds}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-dir", default=str(DATA / "train"), help="training images")
    parser.add_argument("--test-dir", default=str(DATA / "kodak"), help="held-out test images")
    parser.add_argument("--weights", default=None, help="a weight file (default: the shipped default model)")
    parser.add_argument("--model", default=None, help="a shipped model name (ignored with --weights)")
    parser.add_argument("--quality", type=float, default=4.0)
    parser.add_argument("--crop", type=int, default=64, help="crop side; a multiple of the model's pad_multiple")
    parser.add_argument("--crops", type=int, default=1, help="crops per training image (each in 4 rotations)")
    parser.add_argument("--test-crops", type=int, default=3, help="crops per test image")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=32, help="channels of the classifier")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="2 crops of at most 4 images per folder, 30 steps")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    import neurocodec

    torch.set_num_threads(args.threads)
    if args.tiny:
        args.crops, args.test_crops = min(args.crops, 2), min(args.test_crops, 2)
        args.steps, args.batch = min(args.steps, 30), min(args.batch, 16)
    max_images = 4 if args.tiny else 0
    codec = neurocodec.Codec(args.model, weights=args.weights)
    multiple = codec.model.pad_multiple
    if args.crop % multiple:
        parser.error(f"--crop must be a multiple of {multiple} for model {codec.name} (its padding)")
    stride = multiple // 4

    rng = np.random.default_rng(args.seed)
    tic = time.perf_counter()
    sets = {}
    for split, folder, per_image in (("train", args.train_dir, args.crops), ("test", args.test_dir, args.test_crops)):
        images, labels = rotations(load_crops(folder, args.crop, per_image, rng, max_images))
        sets[split] = (encode_all(codec, images, args.quality), labels)
    encode_seconds = time.perf_counter() - tic
    (train, train_y), (test, test_y) = sets["train"], sets["test"]

    results = {
        "model": codec.name, "architecture": codec.model.architecture, "quality": args.quality,
        "crop": args.crop, "train_samples": len(train_y), "test_samples": len(test_y),
        "latent_shape": list(train["latents"].shape[1:]),
        "bpp": float(8 * np.concatenate([train["bytes"], test["bytes"]]).mean() / args.crop**2),
        "steps": args.steps, "encode_seconds": round(encode_seconds, 1), "classifiers": {},
    }
    for name in ("latents", "decoded pixels", "original pixels"):
        stem = 1 if name == "latents" else stride
        outcome = train_and_test(train[name], train_y, test[name], test_y, stem, args.width, args.steps, args.batch,
                                 args.lr, args.seed)
        results["classifiers"][name] = {k: round(v, 4) for k, v in outcome.items()}

    print(f"model {results['model']} ({results['architecture']}), quality {args.quality}, "
          f"{args.crop}x{args.crop} crops at {results['bpp']:.3f} bpp, latents {tuple(results['latent_shape'])}")
    print(f"{results['train_samples']} training / {results['test_samples']} test samples (4 rotations each), "
          f"{args.steps} steps; chance = 0.25")
    for name, r in results["classifiers"].items():
        print(f"  {name:16s} test accuracy {r['test_accuracy']:.3f}  (train {r['train_accuracy']:.3f}, "
              f"{r['train_seconds']:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
