"""Tables and plots from rate-distortion curves.

A *curve* is a list of :class:`~neurocodec.bench.RDPoint`; ``curves`` maps a label to
a curve (``dict[str, list[RDPoint]]``, insertion order is kept in tables and legends).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..metrics import bd_psnr, bd_rate
from .runner import RDPoint

__all__ = ["bd_table", "plot_rd", "quality_values"]

_METRICS = ("psnr", "ms_ssim_db")


def quality_values(points: Sequence[RDPoint], metric: str = "psnr") -> np.ndarray:
    """Quality axis of a curve: ``"psnr"`` (dB) or ``"ms_ssim_db"`` = -10 log10(1 - MS-SSIM)."""
    if metric == "psnr":
        return np.array([p.psnr for p in points], dtype=np.float64)
    if metric == "ms_ssim_db":
        m = np.array([p.ms_ssim for p in points], dtype=np.float64)
        with np.errstate(divide="ignore"):
            return -10.0 * np.log10(1.0 - m)
    raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")


def _fmt(v: float, digits: int, unit: str) -> str:
    return f"{v:+.{digits}f}{unit}"


def bd_table(
    curves: Mapping[str, Sequence[RDPoint]],
    references: Sequence[str] | None = None,
    metric: str = "psnr",
    kind: str = "rate",
    digits: int = 1,
) -> str:
    """Markdown table of Bjøntegaard deltas: each row's curve against each column's.

    Args:
        curves: label -> list of RDPoint.
        references: labels used as columns (reference curves); default: every curve.
        metric: quality axis, ``"psnr"`` or ``"ms_ssim_db"``.
        kind: ``"rate"`` for BD-rate in percent (negative = fewer bits than the
            reference) or ``"psnr"`` for BD-PSNR / BD-quality in dB.
        digits: decimals shown.

    Returns:
        A GitHub-flavoured markdown table (a string ending with a newline). A cell is
        ``—`` on the diagonal and ``n/a`` when the delta cannot be computed (fewer than
        4 points, or no overlap); the reason is given in a footnote list.
    """
    if kind not in ("rate", "psnr"):
        raise ValueError(f"kind must be 'rate' or 'psnr', got {kind!r}")
    names = list(curves)
    refs = list(references) if references is not None else names
    for r in refs:
        if r not in curves:
            raise KeyError(f"reference {r!r} is not among the curves {names}")
    unit = " %" if kind == "rate" else " dB"
    what = "BD-rate" if kind == "rate" else ("BD-PSNR" if metric == "psnr" else "BD-quality")
    header = f"| {what} vs → | " + " | ".join(refs) + " |"
    sep = "|---|" + "---:|" * len(refs)
    lines = [header, sep]
    notes: list[str] = []
    for n in names:
        cells = []
        rate_t = [p.bpp for p in curves[n]]
        q_t = quality_values(curves[n], metric)
        for r in refs:
            if r == n:
                cells.append("—")
                continue
            rate_r = [p.bpp for p in curves[r]]
            q_r = quality_values(curves[r], metric)
            try:
                if kind == "rate":
                    v = bd_rate(rate_r, q_r, rate_t, q_t)
                else:
                    v = bd_psnr(rate_r, q_r, rate_t, q_t)
                cells.append(_fmt(v, digits, unit))
            except ValueError as e:
                cells.append("n/a")
                notes.append(f"{n} vs {r}: {e}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if notes:
        text += "\n" + "\n".join(f"- n/a: {s}" for s in notes) + "\n"
    return text


def plot_rd(
    curves: Mapping[str, Sequence[RDPoint]],
    path: str | Path,
    metric: str = "psnr",
    title: str | None = "Kodak",
    xlim: tuple[float, float] | None = None,
    dpi: int = 120,
) -> Path:
    """Plot quality against bpp for every curve and save it as a PNG.

    matplotlib is imported here only (install the ``bench`` extra); the figure is
    drawn with the Agg canvas directly, so the global pyplot backend is not touched.

    Args:
        curves: label -> list of RDPoint (sorted by bpp for drawing).
        path: output PNG path (parent folders are created).
        metric: ``"psnr"`` or ``"ms_ssim_db"``.
        title: figure title, or None.
        xlim: optional bpp range.

    Returns:
        the path written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plot_rd needs matplotlib: pip install 'neurocodec[bench]'") from e

    fig = Figure(figsize=(7.0, 5.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, pts in curves.items():
        pts = sorted(pts, key=lambda p: p.bpp)
        x = [p.bpp for p in pts]
        y = quality_values(pts, metric)
        ok = np.isfinite(y)
        ax.plot(np.asarray(x)[ok], y[ok], marker="o", markersize=3, linewidth=1.2, label=label)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("RGB PSNR (dB)" if metric == "psnr" else "MS-SSIM (dB)")
    if xlim is not None:
        ax.set_xlim(*xlim)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


DOC_HEADER = ("# Benchmarks\n\nEvery section below is written by the script it names (between its "
              "`BEGIN`/`END` markers); do not edit them by hand: rerun the script.\n")


def update_section(md_path: str | Path, key: str, body: str, header: str = DOC_HEADER) -> None:
    """Write ``body`` as the section ``key`` of a Markdown file, keeping every other section.

    A section is the text between ``<!-- BEGIN key -->`` and ``<!-- END key -->``; if the file
    has no such section it is appended (the file is created with ``header`` if missing). This
    lets several benchmark scripts own one part each of ``docs/benchmarks.md``. The file is
    replaced atomically.
    """
    import os

    path = Path(md_path)
    begin, end = f"<!-- BEGIN {key} -->", f"<!-- END {key} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else header
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
