"""Bits per pixel: the rate every figure and report of neurocodec uses.

bpp = 8 x (whole file size in bytes, header included) / (H x W). One function, so the
codec's rate control, the CLI, collections and benchmarks count the same bits.
"""

from __future__ import annotations


def bits_per_pixel(n_bytes: int, pixels: int) -> float:
    """``8 * n_bytes / pixels``: the rate of ``n_bytes`` (a whole stream, or the total of
    several) over ``pixels`` (``H * W``, or the total over the same images)."""
    return 8.0 * n_bytes / pixels
