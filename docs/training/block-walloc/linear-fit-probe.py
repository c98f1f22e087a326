"""Which fixed transform lets a *linear* encoder reproduce the default's latents?

For each candidate feature map F(x) (block DCT of x - 0.5, or a 3-level CDF 9/7 wavelet
packet, each with a 1x1 or a 3x3 linear map on top), fit y ~ [F(x), 1] W by least squares
on crops of training images (80 % of the positions) and report the residual on the other
20 % in units of the default's quantisation step at qualities 1, 4 and 8 (quantisation
noise itself is 0.29 steps RMS). Multiply-adds per pixel of the linear map are given too.

    python docs/training/block-walloc/linear-fit-probe.py DATA   # DATA: training images (not Kodak)

Session 12 (51 images of DATA, two 256-pixel crops each at scale 0.5 or 1; 91,800 positions):

| features | map | MACs/px of the map | q1 | q4 | q8 |
|---|---|---|---|---|---|
| block DCT | 1x1 | 576 | 0.050 | 0.099 | 0.397 |
| wavelet packet (J = 3) | 1x1 | 576 | 0.171 | 0.458 | 2.294 |
| wavelet packet (J = 3) | 3x3 | 5184 | 0.048 | 0.106 | 0.496 |
| block DCT | 3x3 | 5184 | 0.030 | 0.041 | 0.114 |

The default's own colour + DCT + refinement costs about 5,400 multiply-adds per pixel.
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import neurocodec
from neurocodec.train.data import find_images
from neurocodec.transforms import WaveletPacket


def crops(folder: Path, rng: np.random.Generator, size: int = 256):
    for path in find_images(folder)[::2]:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = rng.choice([0.5, 1.0])
            im = im.resize((int(im.width * scale), int(im.height * scale)), Image.BICUBIC)
            a = torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255
        for _ in range(2):
            i, j = rng.integers(0, a.shape[1] - size), rng.integers(0, a.shape[2] - size)
            yield a[:, i:i + size, j:j + size][None]


def main(folder: Path) -> None:
    torch.set_num_threads(2)
    model = neurocodec.Codec("block-hyperprior-mse").model.eval()
    wavelet = WaveletPacket(3, 3)
    features = {("block DCT", 1): [], ("wavelet packet", 1): [], ("wavelet packet", 3): [], ("block DCT", 3): []}
    targets = []
    with torch.no_grad():
        for x in crops(folder, np.random.default_rng(0)):
            targets.append(model.analysis(x)[0, :, 1:-1, 1:-1].reshape(192, -1).T)
            bases = {"block DCT": model.dct(x - 0.5), "wavelet packet": wavelet(x - 0.5)}
            for (name, k), out in features.items():
                base = bases[name]
                out.append(base[0, :, 1:-1, 1:-1].reshape(192, -1).T if k == 1 else F.unfold(base, 3)[0].T)
    y = torch.cat(targets).double()
    n, train = y.shape[0], int(y.shape[0] * 0.8)
    steps = torch.exp(-model.log_gain.detach().double())
    print(f"positions: {n}")
    for (name, k), out in features.items():
        x = torch.cat([torch.cat(out).double(), torch.ones(n, 1, dtype=torch.float64)], 1)
        a = x[:train]
        w = torch.linalg.solve(a.T @ a + 1e-6 * torch.eye(a.shape[1], dtype=torch.float64), a.T @ y[:train])
        err = x[train:] @ w - y[train:]
        rms = [float((err / steps[q - 1]).pow(2).mean().sqrt()) for q in (1, 4, 8)]
        print(f"| {name} | {k}x{k} | {192 * 192 * k * k // 64} | " + " | ".join(f"{r:.3f}" for r in rms) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
