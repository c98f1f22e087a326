"""Run codecs over an image set and load published rate-distortion points.

Conventions (docs: "How results are measured"):

* bpp = 8 * len(whole file bytes) / (H * W), averaged over images;
* PSNR and MS-SSIM on the 8-bit RGB reconstruction, per image, then averaged;
* times: median over images of the per-image median over ``repeats`` runs.
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image

from ..metrics import bits_per_pixel
from ..metrics import ms_ssim as _ms_ssim
from ..metrics import psnr as _psnr
from .codecs import ImageCodec

__all__ = ["RDPoint", "load_images", "evaluate", "load_anchors", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class RDPoint:
    """One operating point of a codec, averaged over an image set.

    Attributes:
        codec: codec label.
        quality: the codec's own quality parameter (int, or a string such as ``"QP=32"``).
        bpp: mean bits per pixel over images (whole file).
        psnr: mean RGB PSNR in dB over images.
        ms_ssim: mean RGB MS-SSIM (linear) over images; ``nan`` if not measured.
        enc_s, dec_s: seconds per image (median over images); ``nan`` if unknown.
        n_images: number of images averaged (0 for published points where unknown).
    """

    codec: str
    quality: Any
    bpp: float
    psnr: float
    ms_ssim: float = math.nan
    enc_s: float = math.nan
    dec_s: float = math.nan
    n_images: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def load_images(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """Load every PNG / JPEG file of a folder, sorted by file name.

    Returns:
        list of ``(stem, array)`` where ``array`` is ``uint8`` of shape ``(H, W, 3)`` (RGB;
        grey or RGBA inputs are converted to RGB).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    out = []
    for p in files:
        with Image.open(p) as im:
            out.append((p.stem, np.asarray(im.convert("RGB"), dtype=np.uint8)))
    return out


def _images_list(images) -> list[tuple[str, np.ndarray]]:
    out = []
    for i, item in enumerate(images):
        if isinstance(item, np.ndarray):
            out.append((f"image{i:03d}", item))
        else:
            name, arr = item
            out.append((str(name), np.asarray(arr)))
    if not out:
        raise ValueError("no images to evaluate")
    return out


def evaluate(
    codec: ImageCodec,
    images: Iterable,
    qualities: Sequence[Any],
    progress: bool = True,
    repeats: int = 1,
    with_ms_ssim: bool = True,
) -> list[RDPoint]:
    """Measure a codec at several qualities over a set of images.

    Args:
        codec: an object following :class:`~neurocodec.bench.ImageCodec`.
        images: ``(name, uint8 (H, W, 3) array)`` pairs as returned by :func:`load_images`
            (bare arrays are accepted too).
        qualities: quality values passed to ``codec.encode``.
        progress: show a tqdm progress bar (on stderr).
        repeats: encode / decode each image this many times for timing (the median
            is kept; the rate and quality come from the first run).
        with_ms_ssim: also compute MS-SSIM (the slowest part of the measurement).

    Returns:
        one :class:`RDPoint` per quality, in the given order.

    Raises:
        ValueError: a decoder returned an array of the wrong shape or dtype.
    """
    imgs = _images_list(images)
    qualities = list(qualities)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(imgs) * len(qualities), desc=codec.name, unit="img", leave=False)
    points = []
    try:
        for q in qualities:
            bpps, psnrs, ssims, encs, decs = [], [], [], [], []
            for name, img in imgs:
                enc_t, dec_t = [], []
                data = rec = None
                for r in range(max(1, repeats)):
                    t0 = time.perf_counter()
                    d = codec.encode(img, q)
                    t1 = time.perf_counter()
                    x = codec.decode(d)
                    t2 = time.perf_counter()
                    enc_t.append(t1 - t0)
                    dec_t.append(t2 - t1)
                    if r == 0:
                        data, rec = d, np.asarray(x)
                if rec.shape != img.shape or rec.dtype != np.uint8:
                    raise ValueError(
                        f"{codec.name} at quality {q!r} decoded {name} to {rec.dtype} {rec.shape}, "
                        f"expected uint8 {img.shape}"
                    )
                bpps.append(bits_per_pixel(len(data), img.shape[0] * img.shape[1]))
                psnrs.append(_psnr(img, rec))
                if with_ms_ssim:
                    ssims.append(_ms_ssim(img, rec))
                encs.append(statistics.median(enc_t))
                decs.append(statistics.median(dec_t))
                if bar is not None:
                    bar.update(1)
            points.append(
                RDPoint(
                    codec=codec.name,
                    quality=q,
                    bpp=float(np.mean(bpps)),
                    psnr=float(np.mean(psnrs)),
                    ms_ssim=float(np.mean(ssims)) if ssims else math.nan,
                    enc_s=float(statistics.median(encs)),
                    dec_s=float(statistics.median(decs)),
                    n_images=len(imgs),
                )
            )
    finally:
        if bar is not None:
            bar.close()
    return points


def _float_or_nan(s: str | None) -> float:
    if s is None or not str(s).strip():
        return math.nan
    return float(s)


def load_anchors(csv_path: str | Path, codec_substring: str) -> list[RDPoint]:
    """Published RD points of one codec from the anchors CSV, sorted by bpp.

    The CSV has columns ``codec,source_file,quality,bpp,psnr,ms_ssim,enc_time_s,dec_time_s``.
    ``codec_substring`` selects the codec: an exact (case-insensitive) codec name wins;
    otherwise it must be a case-insensitive substring of exactly one codec name
    (e.g. ``"VTM"`` -> ``"VTM (VVC intra)"``, ``"BPG"`` -> ``"BPG 0.9.8 444 x265 ycbcr"``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: no codec or several codecs match (the message lists the candidates).
    """
    path = Path(csv_path)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    names = list(dict.fromkeys(r["codec"] for r in rows))
    key = codec_substring.lower()
    exact = [n for n in names if n.lower() == key]
    matches = exact or [n for n in names if key in n.lower()]
    if not matches:
        raise ValueError(f"no codec in {path.name} matches {codec_substring!r}; available: {names}")
    if len(matches) > 1:
        raise ValueError(f"{codec_substring!r} matches several codecs in {path.name}: {matches}")
    name = matches[0]
    pts = [
        RDPoint(
            codec=name,
            quality=r["quality"],
            bpp=float(r["bpp"]),
            psnr=float(r["psnr"]),
            ms_ssim=_float_or_nan(r.get("ms_ssim")),
            enc_s=_float_or_nan(r.get("enc_time_s")),
            dec_s=_float_or_nan(r.get("dec_time_s")),
        )
        for r in rows
        if r["codec"] == name
    ]
    return sorted(pts, key=lambda p: p.bpp)
