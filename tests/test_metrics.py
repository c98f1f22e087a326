"""Tests for neurocodec.metrics: PSNR, MS-SSIM, Bjøntegaard deltas."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import neurocodec.metrics  # noqa: F401
except ImportError:  # running from a checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hypothesis import given, settings
from hypothesis import strategies as st

from neurocodec.metrics import bd_psnr, bd_rate, ms_ssim, psnr


def _smooth_image(h=192, w=208, seed=0) -> np.ndarray:
    """Deterministic natural-ish uint8 RGB test image (smooth gradients + texture)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack(
        [
            128 + 90 * np.sin(x / 17.0) * np.cos(y / 23.0),
            128 + 80 * np.cos((x + y) / 31.0),
            100 + 0.5 * x - 0.3 * y,
        ],
        axis=-1,
    )
    base += rng.normal(0, 6, size=base.shape)
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- PSNR


def test_psnr_identical_is_inf():
    a = _smooth_image()
    assert psnr(a, a.copy()) == math.inf


def test_psnr_known_values():
    a = np.zeros((4, 5, 3), np.uint8)
    b = a.copy()
    b[...] = 1  # MSE = 1 -> 20 log10(255)
    assert psnr(a, b) == pytest.approx(20 * math.log10(255), abs=1e-12)
    c = np.full((4, 5, 3), 255, np.uint8)  # MSE = 255^2 -> 0 dB
    assert psnr(a, c) == pytest.approx(0.0, abs=1e-12)
    # one channel of one pixel off by 10 in a 2x2x3 image: MSE = 100 / 12
    d = np.zeros((2, 2, 3), np.uint8)
    e = d.copy()
    e[0, 0, 1] = 10
    assert psnr(d, e) == pytest.approx(10 * math.log10(255**2 * 12 / 100), abs=1e-12)


def test_psnr_no_uint8_wraparound_and_data_range():
    a = np.full((3, 3, 3), 250, np.uint8)
    b = np.full((3, 3, 3), 5, np.uint8)  # |diff| = 245, not (5 - 250) mod 256
    assert psnr(a, b) == pytest.approx(20 * math.log10(255 / 245), abs=1e-12)
    f = np.zeros((2, 2)), np.full((2, 2), 0.1)
    assert psnr(*f, data_range=1.0) == pytest.approx(20.0, abs=1e-9)


def test_psnr_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


# ---------------------------------------------------------------- MS-SSIM


def test_ms_ssim_identical_is_one():
    a = _smooth_image()
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_decreases_with_noise():
    a = _smooth_image()
    rng = np.random.default_rng(1)
    vals = []
    for sigma in (2, 5, 10, 20, 40):
        n = rng.normal(0, sigma, size=a.shape)
        b = np.clip(np.rint(a + n), 0, 255).astype(np.uint8)
        vals.append(ms_ssim(a, b))
    assert all(0.0 < v < 1.0 for v in vals)
    assert all(x > y for x, y in zip(vals, vals[1:])), vals


def test_ms_ssim_symmetric_and_grey():
    a = _smooth_image()
    b = np.clip(a.astype(int) + 7 * ((np.arange(a.size) % 3) - 1).reshape(a.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(a, b) == pytest.approx(ms_ssim(b, a), abs=1e-12)
    # per-channel average: an RGB image with identical channels equals the grey value
    g1, g2 = a[..., 0], b[..., 0]
    rgb1 = np.repeat(g1[..., None], 3, axis=2)
    rgb2 = np.repeat(g2[..., None], 3, axis=2)
    assert ms_ssim(rgb1, rgb2) == pytest.approx(ms_ssim(g1, g2), abs=1e-12)


def test_ms_ssim_too_small_raises():
    a = np.zeros((160, 300, 3), np.uint8)
    with pytest.raises(ValueError, match="too small"):
        ms_ssim(a, a)
    b = np.zeros((161, 161, 3), np.uint8)
    assert ms_ssim(b, b) == pytest.approx(1.0)


# Reference values from pytorch-msssim 1.0.0 (what CompressAI reports), computed once on
# float64 NCHW tensors with data_range=255:
#   "default": pm.ms_ssim(X, Y, data_range=255)  (its float32 Gaussian window)
#   "win64":   the same with win= an exact float64 Gaussian window (sigma 1.5, 11 taps)
# Our implementation equals "win64" to ~1e-15; the float32 window alone moves the
# value by a few 1e-6, hence the looser tolerance against "default".
_FROZEN = {
    (192, 208, 0, 12.0): {"default": 0.8971499760569923, "win64": 0.8971484558292996},
    (177, 250, 3, 25.0): {"default": 0.7259941369254488, "win64": 0.7259912034030425},
}


def _noisy_pair(h, w, seed, sigma):
    a = _smooth_image(h, w, seed)
    rng = np.random.default_rng(seed + 100)
    b = np.clip(np.rint(a + rng.normal(0, sigma, size=a.shape)), 0, 255).astype(np.uint8)
    return a, b


@pytest.mark.parametrize("case", sorted(_FROZEN))  # the odd height exercises padded pooling
def test_ms_ssim_matches_frozen_reference(case):
    a, b = _noisy_pair(*case)
    got = ms_ssim(a, b)
    assert got == pytest.approx(_FROZEN[case]["win64"], abs=1e-10)
    assert got == pytest.approx(_FROZEN[case]["default"], abs=1e-5)


@pytest.mark.parametrize("case", sorted(_FROZEN))
def test_ms_ssim_matches_pytorch_msssim(case):
    torch = pytest.importorskip("torch")
    pm = pytest.importorskip("pytorch_msssim", reason="pytorch-msssim not installed")
    a, b = _noisy_pair(*case)

    def t(x):
        return torch.from_numpy(x.astype(np.float64)).permute(2, 0, 1)[None]

    k = np.arange(11, dtype=np.float64) - 5
    g = np.exp(-(k * k) / (2 * 1.5**2))
    win = torch.from_numpy(g / g.sum()).reshape(1, 1, 1, 11).repeat(3, 1, 1, 1)
    assert ms_ssim(a, b) == pytest.approx(float(pm.ms_ssim(t(a), t(b), data_range=255, win=win)), abs=1e-10)
    assert ms_ssim(a, b) == pytest.approx(float(pm.ms_ssim(t(a), t(b), data_range=255)), abs=1e-5)


# ---------------------------------------------------------------- Bjøntegaard

R = [0.1, 0.25, 0.5, 1.0, 2.0]
P = [27.0, 30.5, 33.6, 36.9, 40.2]


def test_bd_identical_curves_zero():
    assert bd_rate(R, P, R, P) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(R, P, R, P) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_sign_convention():
    # the test codec reaches each PSNR with 20 % fewer bits -> negative BD-rate
    assert bd_rate(R, P, [0.8 * r for r in R], P) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(R, P, [1.5 * r for r in R], P) == pytest.approx(50.0, abs=1e-9)
    # +1 dB everywhere -> BD-PSNR = +1 dB
    assert bd_psnr(R, P, R, [p + 1 for p in P]) == pytest.approx(1.0, abs=1e-9)


def test_bd_rate_point_order_irrelevant():
    r2 = [0.12, 0.3, 0.55, 1.1, 2.5]
    p2 = [27.5, 30.8, 33.7, 37.2, 40.9]
    a = bd_rate(R, P, r2, p2)
    b = bd_rate(R[::-1], P[::-1], [r2[i] for i in (3, 0, 4, 2, 1)], [p2[i] for i in (3, 0, 4, 2, 1)])
    assert a == pytest.approx(b, abs=1e-9)


def test_bd_rate_matches_textbook_polyfit():
    """Same number as the usual np.polyfit / np.polyint formulation."""
    r2 = [0.12, 0.3, 0.55, 1.1, 2.5, 3.3]
    p2 = [27.5, 30.8, 33.7, 37.2, 40.9, 42.0]
    l1, l2 = np.log(R), np.log(r2)
    f1, f2 = np.polyint(np.polyfit(P, l1, 3)), np.polyint(np.polyfit(p2, l2, 3))
    lo, hi = max(min(P), min(p2)), min(max(P), max(p2))
    d = ((np.polyval(f2, hi) - np.polyval(f2, lo)) - (np.polyval(f1, hi) - np.polyval(f1, lo))) / (hi - lo)
    assert bd_rate(R, P, r2, p2) == pytest.approx((math.exp(d) - 1) * 100, rel=1e-9)


@st.composite
def _monotone_curve(draw):
    n = draw(st.integers(4, 9))
    steps_r = draw(st.lists(st.floats(0.1, 1.0), min_size=n - 1, max_size=n - 1))
    steps_p = draw(st.lists(st.floats(0.3, 4.0), min_size=n - 1, max_size=n - 1))
    lr0 = draw(st.floats(-3.0, 0.5))
    p0 = draw(st.floats(20.0, 35.0))
    lr = np.concatenate([[lr0], lr0 + np.cumsum(steps_r)])
    p = np.concatenate([[p0], p0 + np.cumsum(steps_p)])
    return np.exp(lr), p


@settings(max_examples=60, deadline=None, derandomize=True)
@given(_monotone_curve(), st.floats(0.05, 20.0))
def test_bd_rate_scaled_rates(curve, k):
    rate, p = curve
    assert bd_rate(rate, p, rate * k, p) == pytest.approx((k - 1) * 100, rel=1e-6, abs=1e-6)
    assert bd_rate(rate, p, rate / 2, p) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(rate, p, rate, p) == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(_monotone_curve(), st.floats(-3.0, 3.0))
def test_bd_psnr_shifted(curve, dq):
    rate, p = curve
    assert bd_psnr(rate, p, rate, p + dq) == pytest.approx(dq, abs=1e-6)


def test_bd_errors():
    with pytest.raises(ValueError, match="at least 4"):
        bd_rate(R[:3], P[:3], R, P)
    with pytest.raises(ValueError, match="at least 4"):
        bd_psnr(R, P, R[:2], P[:2])
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate(R, P, R, [p + 20 for p in P])
    with pytest.raises(ValueError, match="do not overlap"):
        bd_psnr(R, P, [r * 100 for r in R], P)
    with pytest.raises(ValueError, match="points|rates"):
        bd_rate(R, P, R[:4], P)
    with pytest.raises(ValueError, match="non-finite"):
        bd_rate(R, P, R, P[:-1] + [math.inf])
    with pytest.raises(ValueError, match="non-positive"):
        bd_rate(R, P, [0.0] + R[1:], P)
