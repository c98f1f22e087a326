"""The benchmark suite: neurocodec models and classical codecs measured in one run.

``run_suite`` measures every chosen model at qualities 1..8 and Pillow's JPEG, WebP and
AVIF on one folder of images, adds the published anchors when the folder is Kodak, and
writes a Markdown report (RD tables, BD-rates, an RD plot) plus the raw points as JSON.
``benchmarks/kodak.py`` and ``neurocodec bench`` are thin wrappers around it.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from ..metrics import bd_rate
from .codecs import DEFAULT_QUALITIES, make_classical
from .runner import RDPoint, evaluate, load_anchors, load_images

NEURAL_QUALITIES = (1, 2, 3, 4, 5, 6, 7, 8)
ANCHORS = {"VTM": "VTM (VVC intra)", "BPG": "BPG 0.9.8 444 x265 ycbcr",
           "CompressAI hyperprior": "compressai-bmshj2018-hyperprior-mse [cpu]"}


def beats_reference(test: Sequence[RDPoint], reference: Sequence[RDPoint]) -> list[bool | None]:
    """For each test point: is its PSNR above the reference curve at the same bpp?

    The reference is interpolated linearly in (log bpp, PSNR); points outside the
    reference's bpp range give None (not comparable).
    """
    ref = sorted(reference, key=lambda p: p.bpp)
    xs = np.log([p.bpp for p in ref])
    ys = np.array([p.psnr for p in ref])
    out: list[bool | None] = []
    for p in test:
        x = math.log(p.bpp)
        out.append(None if not (xs[0] <= x <= xs[-1]) else bool(p.psnr > np.interp(x, xs, ys)))
    return out


def bd_or_none(test: Sequence[RDPoint], ref: Sequence[RDPoint]) -> float | None:
    """BD-rate of ``test`` against ``ref`` in %, or None where their PSNR ranges do not overlap."""
    try:
        return bd_rate([p.bpp for p in ref], [p.psnr for p in ref], [p.bpp for p in test], [p.psnr for p in test])
    except ValueError:
        return None


#: Curves every other curve's BD-rate is taken against, where present.
REFERENCES = ("JPEG", "WebP", "AVIF", "VTM (published)", "BPG (published)")


def compare_curves(curves: dict[str, list[RDPoint]], models: Sequence[str]) -> tuple[dict, dict]:
    """BD-rates of every curve against each of :data:`REFERENCES` present (label -> {reference:
    % or None}), and for each of ``models`` whether it beats JPEG at each quality (model ->
    list of bool/None; empty without a JPEG curve)."""
    references = [r for r in REFERENCES if r in curves]
    bd = {label: {ref: bd_or_none(curves[label], curves[ref]) for ref in references if ref != label} for label in curves}
    beats = {name: beats_reference(curves[name], curves["JPEG"]) for name in models if "JPEG" in curves}
    return bd, beats


def _classical_curves(folder: str, images: int | None, keys: tuple, progress: bool = False) -> dict:
    imgs = load_images(folder)[:images] if images else load_images(folder)
    curves = {}
    for key in keys:
        codec = make_classical(key)
        curves[codec.name] = evaluate(codec, imgs, DEFAULT_QUALITIES[key], progress=progress)
    return curves


def run_suite(folder: str | Path, models: Sequence[str | None] = (None,), classical: Sequence[str] = ("jpeg", "webp", "avif"),
              anchors_csv: str | Path | None = None, images: int | None = None, out_md: str | Path | None = None,
              out_png: str | Path | None = None, out_json: str | Path | None = None, threads: int = 1,
              command: str = "", progress: bool = True, workers: int = 2) -> dict:
    """Measure models and classical codecs on ``folder``; optionally write the report.

    ``workers`` = 2 measures the classical codecs in a second process meanwhile.
    Returns a dict: ``curves`` (label -> list of RDPoint), ``bd`` (label -> {reference: %}),
    ``beats_jpeg`` (model label -> list of bool/None per quality) and ``mismatches`` (model
    label -> number of images whose decode differed from the encoder's reconstruction).
    """
    from .neural import NeuralCodec

    imgs = load_images(folder)[:images] if images else load_images(folder)
    curves: dict[str, list[RDPoint]] = {}
    mismatches: dict[str, int] = {}
    started = time.time()
    # The classical codecs run in a second process while the models run here (same run,
    # half the wall time on two cores).
    pending = None
    if classical and workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=1)
        pending = pool.submit(_classical_curves, str(folder), images, tuple(classical))
    try:
        for model in models:
            codec = NeuralCodec(model, threads=threads)
            curves[codec.name] = evaluate(codec, imgs, NEURAL_QUALITIES, progress=progress)
            mismatches[codec.name] = codec.mismatches
        curves.update(pending.result() if pending is not None
                      else _classical_curves(str(folder), images, tuple(classical), progress))
    finally:
        if pending is not None:
            pool.shutdown(cancel_futures=True)
    measured = list(curves)
    if anchors_csv and Path(anchors_csv).is_file() and not images:
        for label, name in ANCHORS.items():
            try:
                curves[f"{label} (published)"] = load_anchors(anchors_csv, name)
            except ValueError:
                pass
    bd, beats = compare_curves(curves, list(mismatches))
    result = {"curves": curves, "bd": bd, "beats_jpeg": beats, "mismatches": mismatches, "measured": measured,
              "images": len(imgs), "folder": str(folder), "seconds": round(time.time() - started, 1),
              "command": command, "machine": f"{platform.machine()}, {platform.python_implementation()} "
                                             f"{platform.python_version()}, torch threads {threads}"}
    if out_json:
        Path(out_json).parent.mkdir(parents=True, exist_ok=True)
        Path(out_json).write_text(json.dumps(
            {**result, "curves": {k: [asdict(p) for p in v] for k, v in curves.items()}}, indent=1, default=str))
    if out_png:
        from .report import plot_rd

        plot_rd({k: v for k, v in curves.items()}, out_png, title=f"{Path(folder).name} ({len(imgs)} images)",
                xlim=(0, 2.5))
    if out_md:
        from .report import update_section

        update_section(out_md, "kodak-rd", render_markdown(result, out_png, out_md))
    return result


def render_markdown(result: dict, png: str | Path | None, md_path: str | Path) -> str:
    """The report as a Markdown section (see :func:`run_suite`)."""
    curves = result["curves"]
    lines = [
        f"## Rate-distortion on {Path(result['folder']).name}", "",
        f"Generated by `{result['command'] or 'neurocodec.bench.run_suite'}` on {time.strftime('%Y-%m-%d')} "
        f"({result['machine']}); {result['images']} images from `{Path(result['folder']).name}`, "
        f"{result['seconds'] / 60:.1f} minutes. Do not edit by hand: rerun the command.", "",
        "bpp = 8 x whole file size (header included) / pixels, averaged over images; PSNR on 8-bit RGB per image, "
        "averaged. BD-rate: Bjøntegaard, cubic fit of log-rate against PSNR over the overlapping PSNR range; "
        "negative = fewer bits than the reference. Published curves are taken from "
        "`shared/anchors/kodak_published_rd.csv`, not measured here.", "",
    ]
    if png:
        rel = Path(png).resolve().relative_to(Path(md_path).resolve().parent)
        lines += [f"![RD curves]({rel.as_posix()})", ""]
    references = sorted({r for row in result["bd"].values() for r in row}, key=list(curves).index)
    lines += ["### BD-rate (rows against columns)", "", "| codec | " + " | ".join(references) + " |",
              "|---|" + "---|" * len(references)]
    for label, row in result["bd"].items():
        cells = ["—" if ref == label else ("n/a" if row.get(ref) is None else f"{row[ref]:+.1f} %") for ref in references]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, beats in result["beats_jpeg"].items():
        verdict = ", ".join("yes" if b else ("no" if b is False else "n/a") for b in beats)
        lines += [f"{name}: point above the JPEG curve at the same bpp (qualities 1..8): {verdict}. "
                  f"Decoded images differing from the encoder's reconstruction: {result['mismatches'][name]}.", ""]
    lines += ["### Measured points", ""]
    for label in result["measured"]:
        lines += [f"#### {label}", "", "| quality | bpp | PSNR (dB) | MS-SSIM | encode s | decode s |",
                  "|---|---|---|---|---|---|"]
        for p in curves[label]:
            lines.append(f"| {p.quality} | {p.bpp:.4f} | {p.psnr:.3f} | {p.ms_ssim:.4f} | {p.enc_s:.3f} | {p.dec_s:.3f} |")
        lines.append("")
    return "\n".join(lines)
