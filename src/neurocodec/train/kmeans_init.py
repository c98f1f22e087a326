"""``block-mcquic`` on the trained default, with no training: codebooks fitted by k-means.

The default (``block-hyperprior-mse``) is the transform; only the quantiser is new. Every
transform parameter is copied from the default's weight file (same names), and the
McQuic latent scale is the default's gain at one quality (:data:`SCALE_QUALITY`, see the
McQuic section of docs/entropy-models.md for why one is enough). Crops of training images
are encoded by the default's analysis transform and scaled by that gain; then each fine
stage's codebooks are fitted by k-means (k-means++ seeding from a local
``torch.Generator``, a few Lloyd iterations), one codebook per sub-vector group (DCT
frequency order), each stage on the residual that the stages before it leave (the
cascade). The index distributions are the k-means cluster shares, so the exported tables
code the indexes at their measured entropy. Rate r decodes with the default's decoder
modulations of quality r, inherited by name.

The model built here has no coarse levels: their heads are networks with no trained
counterpart in the default (random, they would cost bits and predict nothing), and every
rate codes at least one fine unit, so rate 1 is a working codec.

Run: ``python -m neurocodec.train.kmeans_init --init-from DEFAULT.safetensors --data FOLDER
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
from .data import find_images
from .export import export_fitted

SCALE_QUALITY = 4             # the default's gain used as block-mcquic's one latent scale
UNITS_PER_QUALITY = (1, 2, 3, 4, 5, 6, 7, 8)   # fine units of rates 1..8: every rate codes one at least
DECODER_QUALITIES = (1, 1, 1, 1, 1, 1, 2, 2)   # the default's modulations each rate decodes with
CODEBOOK_SIZE, FINE_STAGES, FINE_CODEBOOKS = 1024, 8, 1   # residual VQ of the whole 192-vector, 10 bits a stage
TRANSFORM_OPTIONS = ("refine_blocks", "refine_hidden", "pixel_hidden")


def kmeans(data: torch.Tensor, k: int, iterations: int, generator: torch.Generator
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means of ``data`` float32 (N, d) with k-means++ seeding.

    Returns (centroids float32 (k, d), counts int64 (k)). Randomness only from
    ``generator``; a cluster left empty by an iteration takes the point worst served.
    """
    n = data.shape[0]
    if n < k:
        raise ValueError(f"k-means needs at least {k} samples, got {n}")
    norms = (data * data).sum(1)

    def distances(c: torch.Tensor) -> torch.Tensor:
        return (norms.unsqueeze(1) + (c * c).sum(1).unsqueeze(0) - 2.0 * data @ c.t()).clamp_min(0.0)

    centroids = torch.empty(k, data.shape[1])
    centroids[0] = data[torch.randint(n, (1,), generator=generator)]
    closest = distances(centroids[:1]).squeeze(1)
    for i in range(1, k):   # k-means++: next centroid drawn in proportion to the squared distance
        weights = closest if float(closest.sum()) > 0 else torch.ones(n)
        pick = torch.multinomial(weights, 1, generator=generator)
        centroids[i] = data[pick]
        closest = torch.minimum(closest, distances(centroids[i:i + 1]).squeeze(1))
    assign = torch.zeros(n, dtype=torch.int64)
    for _ in range(iterations):
        d = distances(centroids)
        best, assign = d.min(1)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assign, data)
        centroids = torch.where(counts.unsqueeze(1) > 0, sums / counts.clamp_min(1).unsqueeze(1), centroids)
        empty = torch.nonzero(counts == 0).squeeze(1)
        if empty.numel():
            worst = best.topk(empty.numel()).indices
            centroids[empty] = data[worst]
    assign = distances(centroids).argmin(1)
    return centroids, torch.bincount(assign, minlength=k)


def load_crops(folder: str | Path, images: int, crop: int, crops_per_image: int, scale: float,
               rng: np.random.Generator) -> torch.Tensor:
    """float32 (n, 3, crop, crop) in [0, 1]: random crops of the first ``images`` images
    (sorted names) at least ``crop`` pixels a side after scaling by ``scale``."""
    from PIL import Image

    out = []
    for path in find_images(folder):
        if len(out) >= images * crops_per_image:
            break
        with Image.open(path) as im:
            im = im.convert("RGB")
            if scale != 1.0:
                im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
            array = np.asarray(im, dtype=np.uint8)
        if min(array.shape[:2]) < crop:
            continue
        for _ in range(crops_per_image):
            top = int(rng.integers(0, array.shape[0] - crop + 1))
            left = int(rng.integers(0, array.shape[1] - crop + 1))
            out.append(array[top:top + crop, left:left + crop])
    if not out:
        raise ValueError(f"no image under {folder} is at least {crop}x{crop} pixels at scale {scale}")
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def build_from_default(init_from: str | Path, codebook_size: int = CODEBOOK_SIZE, fine_stages: int = FINE_STAGES,
                       fine_codebooks: int = FINE_CODEBOOKS, units_per_quality=UNITS_PER_QUALITY,
                       scale_quality: int = SCALE_QUALITY, decoder_qualities=DECODER_QUALITIES):
    """A ``block-mcquic`` (no coarse levels) with the default's transform and, as its one
    latent scale, the default's gain and inverse gain at ``scale_quality``; codebooks not
    fitted yet. Eval mode."""
    from safetensors.torch import load_file

    parent = read_metadata(init_from)
    config = {k: v for k, v in parent["config"].items() if k in TRANSFORM_OPTIONS}
    model = build_model("block-mcquic", **config, coarse_widths=[], coarse_codebooks=[], fine_stages=fine_stages,
                        fine_codebooks=fine_codebooks, codebook_size=codebook_size,
                        units_per_quality=list(units_per_quality))
    tensors = load_file(str(init_from))
    load_state_into(model, tensors)
    with torch.no_grad():
        if scale_quality:
            model.log_scale.copy_(tensors["log_gain"][scale_quality - 1].float())
            model.log_inverse_scale.copy_(tensors["log_inverse_gain"][scale_quality - 1].float())
        else:   # the unscaled latents (squared error in them is the pixels' MSE: orthonormal DCT)
            model.log_scale.zero_()
            model.log_inverse_scale.zero_()
        # rate r decodes with the default's decoder modulations of quality decoder_qualities[r - 1]
        rows = torch.tensor([int(q) - 1 for q in decoder_qualities])
        for name in ("synthesis_modulation", "pixel_modulation"):
            if name in tensors:
                getattr(model, name).copy_(tensors[name].float()[rows])
    return model.eval()


@torch.no_grad()
def fit_codebooks(model, x: torch.Tensor, iterations: int, max_samples: int, generator: torch.Generator) -> dict:
    """Fit every fine codebook of ``model`` by k-means on the scaled latents of ``x``
    (float32 (B, 3, H, W), H and W multiples of 8), cascaded: stage f on what stages < f
    leave. At most ``max_samples`` latent positions (drawn with ``generator``) per fit.
    Returns per-codebook statistics (mean squared residual before and after, in scaled
    units)."""
    vq = model.entropy_model
    gain, _ = model.gains(torch.ones(x.shape[0]))
    y = torch.cat([model.analysis(x[i:i + 1]) for i in range(x.shape[0])]) * gain
    residual = y.index_select(1, vq.order)
    b, c, h, w = residual.shape
    group = c // vq.fine_codebooks
    flat = residual.permute(0, 2, 3, 1).reshape(-1, c)          # (N, C), channels in frequency order
    n = flat.shape[0]
    sample = torch.randperm(n, generator=generator)[:max_samples] if n > max_samples else torch.arange(n)
    stats = []
    k = vq.codebook_size
    for f, quantizer in enumerate(vq.fine):
        for m in range(vq.fine_codebooks):
            part = flat[:, m * group:(m + 1) * group]
            data = part[sample]
            spread = data.std(0, unbiased=False)
            spread = spread.clamp_min(1e-3 * float(spread.max()) + 1e-8)
            # k-means in the latents' own metric (the coder's nearest-codeword metric); the
            # codebook stores codewords in units of the coordinates' spread
            centroids, _ = kmeans(data, k, iterations, generator)
            quantizer.spread[m] = spread
            quantizer.codebook[m] = centroids / spread
            codewords = quantizer.codewords()[m]
            # every position (not only the sample): the index shares of the whole set
            d = ((part * part).sum(1, keepdim=True) + (codewords * codewords).sum(1).unsqueeze(0)
                 - 2.0 * part @ codewords.t())
            index = d.argmin(1)
            counts = torch.bincount(index, minlength=k).double()
            quantizer.frequency[m] = ((counts + 0.5) / (counts.sum() + 0.5 * k)).float()
            error = (spread.pow(2).mean() * k ** (-2.0 / quantizer.dim)).clamp_min(1e-8)
            quantizer.log_sharpness[m] = -torch.log(2.0 * error)
            quantizer.seeded[m] = True
            before = float(part.pow(2).mean())
            flat[:, m * group:(m + 1) * group] = part - codewords[index]
            after = float(flat[:, m * group:(m + 1) * group].pow(2).mean())
            p = counts / counts.sum()
            entropy = float(-(p[p > 0] * torch.log2(p[p > 0])).sum())
            stats.append(dict(stage=f, codebook=m, mse_before=round(before, 4), mse_after=round(after, 4),
                              index_entropy_bits=round(entropy, 3), used=int((counts > 0).sum())))
    return dict(positions=n, fitted_on=int(sample.numel()), codebooks=stats)


def kmeans_init(init_from: str | Path, data: str | Path, out: str | Path, images: int = 16, seed: int = 0,
                crop: int = 256, crops_per_image: int = 3, scale: float = 0.5, iterations: int = 10,
                max_samples: int = 12288, codebook_size: int = CODEBOOK_SIZE, fine_stages: int = FINE_STAGES,
                fine_codebooks: int = FINE_CODEBOOKS,
                units_per_quality=UNITS_PER_QUALITY, scale_quality: int = SCALE_QUALITY,
                decoder_qualities=DECODER_QUALITIES,
                name: str = "block-mcquic-kmeans") -> bytes:
    """Build :func:`build_from_default`'s model, fit its codebooks on crops of ``data``
    (:func:`fit_codebooks`) and export it to ``out`` (tables built, a card saying how it
    was made). Returns the weight hash."""
    start = time.process_time()
    generator = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng(int(seed))
    model = build_from_default(init_from, codebook_size, fine_stages, fine_codebooks, units_per_quality,
                               scale_quality, decoder_qualities)
    x = load_crops(data, images, crop, crops_per_image, scale, rng)
    stats = fit_codebooks(model, x, iterations, max_samples, generator)
    return export_fitted(
        model, out, name, init_from, data, x.shape[0],
        dict(method="k-means initialisation, no training (neurocodec.train.kmeans_init)",
             transform="the parent's, unchanged; latent scale = the parent's gain at quality "
                       f"{scale_quality}; rates 1..8 decode with the parent's modulations of qualities "
                       f"{list(decoder_qualities)}",
             data=dict(images=images, crop=crop, crops_per_image=crops_per_image, scale=scale),
             kmeans=dict(seed=int(seed), iterations=iterations, init="k-means++ (torch.Generator)",
                         max_samples=max_samples, codebook_size=codebook_size, fine_stages=fine_stages,
                         fine_codebooks=fine_codebooks, units_per_quality=list(units_per_quality), **stats)),
        command=(f"python -m neurocodec.train.kmeans_init --init-from {Path(init_from).name} --data "
                 f"{Path(data).name} {Path(out).name} --images {images} --seed {seed} --fine-stages {fine_stages} "
                 f"--fine-codebooks {fine_codebooks} --codebook-size {codebook_size} --scale-quality {scale_quality} "
                 f"--units-per-quality {','.join(str(u) for u in units_per_quality)} "
                 f"--decoder-qualities {','.join(str(q) for q in decoder_qualities)}"),
        cpu_start=start,
        description=f"block-mcquic with codebooks fitted by k-means on the latents of {Path(init_from).name} "
                    "(no training)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurocodec.train.kmeans_init", description=__doc__.split("\n\n")[0])
    parser.add_argument("--init-from", required=True, help="the default's weight file (block-hyperprior)")
    parser.add_argument("--data", required=True, help="folder of training images")
    parser.add_argument("out", help="weight file to write")
    for flag, kind, default, text in (
            ("--images", int, 16, "images to take crops from"),
            ("--seed", int, 0, "seed of the crops and of k-means"),
            ("--crop", int, 256, "crop side in pixels"),
            ("--crops-per-image", int, 3, "random crops of each image"),
            ("--scale", float, 0.5, "images are shrunk by this first"),
            ("--iterations", int, 10, "Lloyd iterations"),
            ("--max-samples", int, 12288, "latent positions per k-means fit"),
            ("--codebook-size", int, CODEBOOK_SIZE, "codewords per codebook"),
            ("--fine-stages", int, FINE_STAGES, "residual VQ stages (cascade levels)"),
            ("--fine-codebooks", int, FINE_CODEBOOKS, "codebooks (sub-vector groups) per stage"),
            ("--scale-quality", int, SCALE_QUALITY,
             "the default's quality whose gain is the latent scale (0: unscaled latents)")):
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    parser.add_argument("--units-per-quality", type=lambda t: [int(u) for u in t.split(",")],
                        default=list(UNITS_PER_QUALITY), help="fine units of rates 1..8, comma-separated")
    parser.add_argument("--decoder-qualities", type=lambda t: [int(u) for u in t.split(",")],
                        default=list(DECODER_QUALITIES),
                        help="the default's quality whose decoder modulations each rate 1..8 uses, comma-separated")
    parser.add_argument("--name", default="block-mcquic-kmeans")
    args = parser.parse_args(argv)
    digest = kmeans_init(args.init_from, args.data, args.out, images=args.images, seed=args.seed, crop=args.crop,
                         crops_per_image=args.crops_per_image, scale=args.scale, iterations=args.iterations,
                         max_samples=args.max_samples, codebook_size=args.codebook_size,
                         fine_stages=args.fine_stages, fine_codebooks=args.fine_codebooks,
                         units_per_quality=args.units_per_quality, scale_quality=args.scale_quality,
                         decoder_qualities=args.decoder_qualities,
                         name=args.name)
    print(json.dumps(dict(out=str(args.out), weight_hash=digest.hex() if isinstance(digest, bytes) else str(digest))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
