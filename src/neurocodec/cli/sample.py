"""A synthetic test picture for demos: ``neurocodec roundtrip --sample``.

neurocodec ships no photographs (their licences would travel with the package), so the
demo image is drawn in code: a landscape with a graded sky, a sun, layered hills, a
small house, a lake with ripples, grass texture and a little sensor noise. It has what
makes photographs hard and easy to compress: large smooth areas, sharp edges, fine
texture and noise. numpy only; the same seed gives the same pixels.

>>> from neurocodec.cli.sample import sample_image
>>> sample_image().shape
(512, 768, 3)
"""

from __future__ import annotations

import numpy as np

SAMPLE_HEIGHT = 512
SAMPLE_WIDTH = 768


def _value_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a random ``cells``-wide lattice, bilinearly interpolated."""
    gh = max(2, round(cells * height / width) + 1)
    gw = cells + 1
    grid = rng.random((gh, gw))
    ys = np.linspace(0, gh - 1, height)
    xs = np.linspace(0, gw - 1, width)
    y0 = np.minimum(ys.astype(int), gh - 2)
    x0 = np.minimum(xs.astype(int), gw - 2)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    # smoothstep, so the lattice does not show as creases
    fy = fy * fy * (3 - 2 * fy)
    fx = fx * fx * (3 - 2 * fx)
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _fractal_noise(rng: np.random.Generator, height: int, width: int, base_cells: int = 4,
                   octaves: int = 5) -> np.ndarray:
    """Sum of value-noise octaves (each twice as fine, half as strong), scaled to [0, 1]."""
    total = np.zeros((height, width))
    weight = 1.0
    norm = 0.0
    for k in range(octaves):
        total += weight * _value_noise(rng, height, width, base_cells * 2**k)
        norm += weight
        weight *= 0.5
    return total / norm


def _blend(canvas: np.ndarray, mask: np.ndarray, colour) -> None:
    """In place: canvas = canvas * (1 - mask) + colour * mask; mask float (H, W) in [0, 1]."""
    m = mask[:, :, None]
    canvas *= 1 - m
    canvas += m * np.asarray(colour, dtype=np.float64)


def _soft(distance: np.ndarray, width: float = 1.0) -> np.ndarray:
    """Anti-aliased inside mask from a signed distance (negative = inside)."""
    return np.clip(0.5 - distance / width, 0.0, 1.0)


def sample_image(height: int = SAMPLE_HEIGHT, width: int = SAMPLE_WIDTH, seed: int = 2024) -> np.ndarray:
    """A deterministic, natural-looking test picture.

    Args:
      height, width: size in pixels (default 512 x 768, the size of a Kodak picture
        in landscape orientation). Everything scales with the size.
      seed: seed of the noise; the same arguments always give the same image.

    Returns:
      uint8 array (height, width, 3).
    """
    if height < 1 or width < 1:
        raise ValueError(f"sample size must be positive, got {height} x {width}")
    rng = np.random.default_rng(seed)
    h, w = height, width
    y = (np.arange(h)[:, None] + 0.5) / h   # 0 at the top, 1 at the bottom
    x = (np.arange(w)[None, :] + 0.5) / w
    ones = np.ones((h, w))
    img = np.empty((h, w, 3))

    # Sky: deep blue at the top to a warm haze at the horizon, with soft clouds.
    horizon = 0.55
    t = np.clip(y / horizon, 0, 1)[:, :, None] * ones[:, :, None]
    top = np.array([40.0, 85.0, 165.0])
    low = np.array([225.0, 200.0, 170.0])
    img[:] = top * (1 - t) + low * t
    clouds = _fractal_noise(rng, h, w, base_cells=3, octaves=5)
    cloud_mask = np.clip((clouds - 0.52) * 4.0, 0, 1) * np.clip(1.2 - y / horizon, 0, 1)
    _blend(img, 0.85 * cloud_mask, (245, 243, 238))

    # Sun with a glow.
    sx, sy, sr = 0.78, 0.22, 0.055
    dist = np.hypot((x - sx) * w, (y - sy) * h) / min(h, w)
    _blend(img, 0.5 * np.exp(-((dist / (3 * sr)) ** 2)), (255, 230, 180))
    _blend(img, _soft((dist - sr) * min(h, w), 1.5), (255, 246, 214))

    # Two ranges of hills: far (bluish, hazy) and near (green, textured).
    ridge_noise = _fractal_noise(rng, 1, w, base_cells=6, octaves=4)[0]
    far_ridge = horizon - 0.13 + 0.06 * np.sin(2 * np.pi * (x[0] * 1.3 + 0.1)) + 0.05 * (ridge_noise - 0.5)
    _blend(img, _soft((far_ridge[None, :] - y) * h, 1.2), (105, 125, 150))
    near_ridge = horizon - 0.02 + 0.05 * np.sin(2 * np.pi * (x[0] * 0.7 + 0.6)) + 0.04 * (ridge_noise[::-1] - 0.5)
    near = _soft((near_ridge[None, :] - y) * h, 1.0)
    grass = _fractal_noise(rng, h, w, base_cells=24, octaves=4)
    shade = (0.75 + 0.5 * (grass - 0.5))[:, :, None] * (0.8 + 0.35 * y[:, :, None])
    green = np.array([70.0, 120.0, 45.0]) * shade
    m = near[:, :, None]
    img = img * (1 - m) + green * m

    # A lake in the lower left: reflected sky colour with horizontal ripples.
    lake = ((x - 0.25) / 0.22) ** 2 + ((y - 0.83) / 0.09) ** 2 - 1
    ripples = 0.5 + 0.5 * np.sin(2 * np.pi * (y * h / 5.0) + 3 * _value_noise(rng, h, w, 8))
    water = np.stack([60 + 25 * ripples, 100 + 30 * ripples, 150 + 35 * ripples], axis=2)
    lm = _soft(lake * min(h, w) * 0.1, 1.0)[:, :, None]
    img = img * (1 - lm) + water * lm

    # A house: walls, a darker side, a roof, a door and two windows (hard edges).
    def rect(x0, y0, x1, y1):
        dx = np.maximum(x0 * w - (x * w), (x * w) - x1 * w)
        dy = np.maximum(y0 * h - (y * h), (y * h) - y1 * h)
        return _soft(np.maximum(dx, dy), 1.0)

    _blend(img, rect(0.58, 0.60, 0.72, 0.74), (214, 196, 160))
    _blend(img, rect(0.72, 0.62, 0.77, 0.74), (160, 142, 112))
    # roof: a triangle with its apex at (0.65, 0.50) and its base on y = 0.61
    slope = (0.11 * h) / (0.09 * w)
    edge = (0.50 * h + slope * np.abs(x - 0.65) * w - y * h) / np.hypot(1.0, slope)
    _blend(img, _soft(np.maximum(edge, (y - 0.61) * h), 1.0), (150, 55, 40))
    _blend(img, rect(0.635, 0.665, 0.665, 0.74), (90, 60, 40))
    for x0 in (0.595, 0.685):
        _blend(img, rect(x0, 0.64, x0 + 0.025, 0.68), (250, 235, 150))

    # Three round bushes with their own texture.
    leaves = _fractal_noise(rng, h, w, base_cells=48, octaves=2)
    for bx, by, br in ((0.52, 0.72, 0.035), (0.80, 0.73, 0.03), (0.88, 0.70, 0.045)):
        d = np.hypot((x - bx) * w, (y - by) * h) - br * min(h, w) * 1.4
        bush = np.stack([30 + 40 * leaves, 70 + 60 * leaves, 25 + 25 * leaves], axis=2)
        bm = _soft(d, 1.5)[:, :, None]
        img = img * (1 - bm) + bush * bm

    # Vignetting and a little sensor noise.
    vignette = 1 - 0.18 * (((x - 0.5) * 2) ** 2 + ((y - 0.5) * 2) ** 2) / 2
    img *= vignette[:, :, None]
    img += rng.normal(0.0, 2.0, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


__all__ = ["SAMPLE_HEIGHT", "SAMPLE_WIDTH", "sample_image"]
