"""Codecs under test: a tiny protocol and the classical Pillow codecs.

A codec under test is any object with

* ``name: str``,
* ``encode(img, quality) -> bytes`` where ``img`` is a ``uint8`` array of shape
  ``(H, W, 3)`` (RGB) and ``quality`` is whatever the codec understands, and
* ``decode(data) -> np.ndarray``, the ``uint8`` ``(H, W, 3)`` reconstruction.

The bytes returned by ``encode`` must be the whole file (headers included):
the benchmark takes the rate from ``len(data)``.
"""

from __future__ import annotations

import io
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image, features

__all__ = [
    "ImageCodec",
    "PillowCodec",
    "JPEGCodec",
    "WebPCodec",
    "AVIFCodec",
    "CLASSICAL_CODECS",
    "DEFAULT_QUALITIES",
    "make_classical",
]


@runtime_checkable
class ImageCodec(Protocol):
    """What :func:`neurocodec.bench.evaluate` needs from a codec."""

    name: str

    def encode(self, img: np.ndarray, quality: Any) -> bytes: ...

    def decode(self, data: bytes) -> np.ndarray: ...


def _as_rgb_uint8(img) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB array, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a)


class PillowCodec:
    """In-memory codec through a Pillow image plugin.

    Args:
        name: label used in tables and plots.
        format: Pillow format name (``"JPEG"``, ``"WEBP"``, ``"AVIF"``).
        **options: fixed keyword arguments for ``Image.save`` (besides ``quality``).
    """

    def __init__(self, name: str, format: str, **options: Any) -> None:
        self.name = name
        self.format = format
        self.options = dict(options)

    def encode(self, img: np.ndarray, quality: Any) -> bytes:
        """``uint8 (H, W, 3)`` RGB array -> whole file as bytes."""
        buf = io.BytesIO()
        Image.fromarray(_as_rgb_uint8(img), "RGB").save(
            buf, format=self.format, quality=int(quality), **self.options
        )
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        """File bytes -> ``uint8 (H, W, 3)`` RGB array."""
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({self.name!r}, {self.format!r}{', ' if opts else ''}{opts})"


class JPEGCodec(PillowCodec):
    """Baseline JPEG through Pillow (libjpeg-turbo), Pillow's defaults otherwise.

    Args:
        subsampling: ``"4:2:0"`` (Pillow's default, used by the reference figures)
            or ``"4:4:4"`` / ``"4:2:2"``.
        optimize: optimised Huffman tables (off by default, as Pillow's default).
    """

    def __init__(self, subsampling: str = "4:2:0", optimize: bool = False, name: str | None = None):
        opts: dict[str, Any] = {}
        if subsampling != "4:2:0":
            opts["subsampling"] = subsampling
        if optimize:
            opts["optimize"] = True
        label = name or ("JPEG" if subsampling == "4:2:0" else f"JPEG {subsampling}")
        super().__init__(label, "JPEG", **opts)


class WebPCodec(PillowCodec):
    """Lossy WebP through Pillow (libwebp), ``method=6`` (slowest, best)."""

    def __init__(self, method: int = 6, name: str | None = None):
        super().__init__(name or "WebP", "WEBP", lossless=False, method=method)


class AVIFCodec(PillowCodec):
    """AVIF through Pillow's AVIF plugin (libavif), ``speed=4``, 4:4:4 chroma.

    Args:
        speed: libavif speed 0 (slowest) .. 10.
        subsampling: chroma subsampling, ``"4:4:4"`` by default.
        threads: encoder threads (1 by default: the machines are shared).
    """

    def __init__(self, speed: int = 4, subsampling: str = "4:4:4", threads: int = 1,
                 name: str | None = None):
        if not features.check("avif"):
            raise RuntimeError("this Pillow build has no AVIF support (Pillow >= 11.3 with libavif)")
        super().__init__(name or "AVIF", "AVIF", speed=speed, subsampling=subsampling,
                         max_threads=threads)


#: Quality grids for the classical curves. JPEG and WebP use Pillow qualities 5..95 in
#: steps of 5 (the grid of the published Pillow anchors); AVIF uses 5, 10..90, 95 (its
#: encoder is ~100x slower; q=100 is near-lossless at ~9 bpp and would distort the fit).
#: On Kodak they reach down to VTM's lowest published PSNR (~26 dB) or close to it, and
#: up to 40.6 (JPEG), 41.7 (WebP) and 45.0 dB (AVIF) of VTM's 46.6 dB. BD-rates of
#: partially overlapping curves depend on the grid by a few percent, so keep it fixed.
DEFAULT_QUALITIES: dict[str, list[int]] = {
    "jpeg": list(range(5, 100, 5)),
    "webp": list(range(5, 100, 5)),
    "avif": [5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95],
}

CLASSICAL_CODECS = {"jpeg": JPEGCodec, "webp": WebPCodec, "avif": AVIFCodec}


def make_classical(key: str) -> PillowCodec:
    """Build a classical codec by key: ``"jpeg"``, ``"webp"`` or ``"avif"``."""
    try:
        return CLASSICAL_CODECS[key.lower()]()
    except KeyError:
        raise ValueError(f"unknown classical codec {key!r}; choose from {sorted(CLASSICAL_CODECS)}") from None
