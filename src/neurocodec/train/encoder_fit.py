"""``block-walloc`` from the trained default, with no training: its linear encoder fitted
to the default's latents by least squares.

``block-walloc`` keeps the default's decoder, hyperprior and gains (loaded by name) and
replaces the default's nonlinear analysis with one 1x1 projection of the block DCT. The
projection closest to the default's encoder is the least-squares solution
``W = argmin |[d, 1] W - y|^2`` over latent positions, where ``d`` are the DCT coefficients
(192) of ``x - 0.5`` and ``y`` the default's latents (192) of the same crops. Each output
channel is its own regression, so weighting channels by their quantisation steps would not
change the solution. The normal equations are accumulated in float64 (193 x 193), with a
small ridge for the rare all-flat crop sets.

Run: ``python -m neurocodec.train.encoder_fit --init-from DEFAULT.safetensors --data FOLDER
OUT.safetensors [--images N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..models import build_model
from ..zoo.weights import load_state_into, read_metadata
from .export import export_fitted
from .kmeans_init import load_crops

RIDGE = 1e-6   # relative to the mean diagonal of the normal matrix


@torch.no_grad()
def fit_projection(teacher, student, crops: torch.Tensor, batch: int = 8) -> dict:
    """Set ``student.encoder`` (1x1, 192 -> 192) to the least-squares fit that makes
    ``student.analysis`` approximate ``teacher.analysis`` on ``crops`` float32 (N, 3, S, S),
    S a multiple of 8.

    Returns statistics: positions, and the residual's RMS in units of the teacher's
    quantisation step at qualities 1, 4 and 8 (from the same sums as the fit, one pass).
    """
    c = teacher.latent_channels
    normal = torch.zeros(c + 1, c + 1, dtype=torch.float64)
    cross = torch.zeros(c + 1, c, dtype=torch.float64)
    y_energy = torch.zeros(c, dtype=torch.float64)
    positions = 0
    for start in range(0, crops.shape[0], batch):
        x = crops[start:start + batch]
        d = student.dct(x - 0.5).permute(0, 2, 3, 1).reshape(-1, c).double()
        d = torch.cat([d, torch.ones(d.shape[0], 1, dtype=torch.float64)], 1)
        y = teacher.analysis(x).permute(0, 2, 3, 1).reshape(-1, c).double()
        normal += d.t() @ d
        cross += d.t() @ y
        y_energy += (y * y).sum(0)
        positions += y.shape[0]
    ridge = RIDGE * normal.diagonal().mean()
    weight = torch.linalg.solve(normal + ridge * torch.eye(c + 1, dtype=torch.float64), cross)
    student.encoder.weight.copy_(weight[:-1].t().float()[:, :, None, None])
    student.encoder.bias.copy_(weight[-1].float())
    # Residual energy per channel from the same sums: |DW - Y|^2 = W'NW - 2 W'C + |Y|^2.
    residual = ((weight * (normal @ weight)).sum(0) - 2 * (weight * cross).sum(0) + y_energy).clamp_min(0) / positions
    gains = torch.exp(teacher.log_gain.detach().double())   # (8, C): 1 / step
    rms = {f"q{q}": round(float((residual * gains[q - 1] ** 2).mean().sqrt()), 4) for q in (1, 4, 8)}
    return dict(positions=positions, residual_rms_steps=rms)


def encoder_fit(init_from: str | Path, data: str | Path, out: str | Path, images: int = 48, seed: int = 0,
                crop: int = 256, crops_per_image: int = 2, scale: float = 0.5,
                name: str = "block-walloc-fit") -> bytes:
    """Build ``block-walloc`` on the default's weights, fit its projection on crops of
    ``data`` (:func:`fit_projection`) and export it to ``out`` with a card.
    Returns the weight hash."""
    start = time.process_time()
    parent = read_metadata(init_from)
    if parent["architecture"] != "block-hyperprior":
        raise ValueError(f"--init-from must be a block-hyperprior weight file, got {parent['architecture']!r}")
    teacher = build_model("block-hyperprior", **parent["config"]).eval()
    load_state_into(teacher, init_from, allow_missing=())
    student = build_model("block-walloc", **parent["config"]).eval()   # the same constructor options
    load_state_into(student, init_from)
    crops = load_crops(data, images, crop, crops_per_image, scale, np.random.default_rng(int(seed)))
    stats = fit_projection(teacher, student, crops)
    return export_fitted(
        student, out, name, init_from, data, crops.shape[0],
        dict(method="least-squares fit of the linear encoder to the parent's latents, no training "
                    "(neurocodec.train.encoder_fit)",
             decoder="the parent's, unchanged (synthesis, hyperprior, gains)",
             data=dict(images=images, crop=crop, crops_per_image=crops_per_image, scale=scale),
             fit=dict(seed=int(seed), ridge=RIDGE, **stats)),
        command=(f"python -m neurocodec.train.encoder_fit --init-from {Path(init_from).name} --data "
                 f"{Path(data).name} {Path(out).name} --images {images} --seed {seed} --crop {crop} "
                 f"--crops-per-image {crops_per_image} --scale {scale}"),
        cpu_start=start,
        description=f"block-walloc with its linear encoder fitted to the latents of {Path(init_from).name} "
                    "(no training)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurocodec.train.encoder_fit",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--init-from", required=True, help="the default's weight file (block-hyperprior)")
    parser.add_argument("--data", required=True, help="folder of training images")
    parser.add_argument("out", help="weight file to write")
    for flag, kind, default, text in (
            ("--images", int, 48, "images to take crops from"),
            ("--seed", int, 0, "seed of the crops"),
            ("--crop", int, 256, "crop side in pixels (a multiple of 8)"),
            ("--crops-per-image", int, 2, "random crops of each image"),
            ("--scale", float, 0.5, "images are shrunk by this first")):
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    parser.add_argument("--name", default="block-walloc-fit")
    args = parser.parse_args(argv)
    if args.crop % 8:
        parser.error(f"--crop must be a multiple of 8, got {args.crop}")
    digest = encoder_fit(args.init_from, args.data, args.out, images=args.images, seed=args.seed, crop=args.crop,
                         crops_per_image=args.crops_per_image, scale=args.scale, name=args.name)
    print(json.dumps(dict(out=str(args.out), weight_hash=digest.hex())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
