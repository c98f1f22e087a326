"""Bjøntegaard delta rate and delta PSNR between two rate-distortion curves.

Each curve is given as two 1-D sequences of equal length (at least 4 points):
rates (any positive unit, e.g. bpp; only ratios matter) and PSNR in dB. Order does
not matter; points are sorted internally.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["bd_rate", "bd_psnr"]

_MIN_POINTS = 4


def _curve(rate, psnr, label: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate, dtype=np.float64).ravel()
    q = np.asarray(psnr, dtype=np.float64).ravel()
    if r.shape != q.shape:
        raise ValueError(f"{label} curve: {r.size} rates but {q.size} PSNR values")
    if r.size < _MIN_POINTS:
        raise ValueError(
            f"{label} curve has {r.size} points; Bjøntegaard's cubic fit needs at least {_MIN_POINTS}"
        )
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(q))):
        raise ValueError(f"{label} curve has non-finite values (rate {r.tolist()}, psnr {q.tolist()})")
    if np.any(r <= 0):
        raise ValueError(f"{label} curve has non-positive rates: {r.tolist()}")
    order = np.argsort(q)
    return np.log(r[order]), q[order]


def _avg_on_overlap(x1, y1, x2, y2, what: str) -> float:
    """Fit y = cubic(x) to both curves; mean of (fit2 - fit1) over the common x interval."""
    lo = max(x1.min(), x2.min())
    hi = min(x1.max(), x2.max())
    if not hi > lo:
        raise ValueError(
            f"the two curves do not overlap in {what}: reference spans "
            f"[{x1.min():.4g}, {x1.max():.4g}], test spans [{x2.min():.4g}, {x2.max():.4g}]"
        )
    p1 = np.polynomial.Polynomial.fit(x1, y1, 3).integ()
    p2 = np.polynomial.Polynomial.fit(x2, y2, 3).integ()
    i1 = p1(hi) - p1(lo)
    i2 = p2(hi) - p2(lo)
    return float((i2 - i1) / (hi - lo))


def bd_rate(rate_ref, psnr_ref, rate_test, psnr_test) -> float:
    """Bjøntegaard delta rate of the test curve against the reference, in percent.

    log(rate) is fitted as a cubic polynomial of PSNR for each curve; both fits are
    integrated over the PSNR interval the two curves share, and the mean difference
    d of log-rates gives ``(exp(d) - 1) * 100``.

    Args:
        rate_ref, psnr_ref: reference curve, 1-D sequences of equal length >= 4
            (rates > 0, e.g. bpp; PSNR in dB).
        rate_test, psnr_test: test curve, same conventions.

    Returns:
        Percent rate change at equal quality: negative means the test codec needs
        fewer bits than the reference (e.g. -50.0 = half the bits).

    Raises:
        ValueError: fewer than 4 points, mismatched lengths, non-finite or
            non-positive values, or PSNR ranges that do not overlap.
    """
    lr1, q1 = _curve(rate_ref, psnr_ref, "reference")
    lr2, q2 = _curve(rate_test, psnr_test, "test")
    d = _avg_on_overlap(q1, lr1, q2, lr2, "PSNR")
    return (math.exp(d) - 1.0) * 100.0


def bd_psnr(rate_ref, psnr_ref, rate_test, psnr_test) -> float:
    """Bjøntegaard delta PSNR of the test curve against the reference, in dB.

    PSNR is fitted as a cubic polynomial of log(rate) for each curve; the mean
    difference over the shared log-rate interval is returned (positive = the test
    codec has higher quality at equal rate). Arguments and errors as :func:`bd_rate`.
    """
    lr1, q1 = _curve(rate_ref, psnr_ref, "reference")
    lr2, q2 = _curve(rate_test, psnr_test, "test")
    o1 = np.argsort(lr1)
    o2 = np.argsort(lr2)
    return _avg_on_overlap(lr1[o1], q1[o1], lr2[o2], q2[o2], "log-rate")
