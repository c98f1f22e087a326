"""Benchmark harness: run codecs on an image set, compare RD curves.

>>> from neurocodec.bench import load_images, JPEGCodec, evaluate, load_anchors, bd_table
>>> imgs = load_images("../shared/data/kodak")
>>> jpeg = evaluate(JPEGCodec(), imgs, range(5, 100, 5))
>>> vtm = load_anchors("../shared/anchors/kodak_published_rd.csv", "VTM")
>>> print(bd_table({"JPEG": jpeg, "VTM": vtm}, references=["VTM"]))

A codec under test is any object with ``name``, ``encode(img, quality) -> bytes`` and
``decode(bytes) -> img`` (see :class:`ImageCodec`). This package is a tool on top of
the library; the core layers never import it. matplotlib is needed by
:func:`plot_rd` only, and imported there.
"""

from .codecs import (
    CLASSICAL_CODECS,
    DEFAULT_QUALITIES,
    AVIFCodec,
    ImageCodec,
    JPEGCodec,
    PillowCodec,
    WebPCodec,
    make_classical,
)
from .report import bd_table, plot_rd, quality_values
from .runner import RDPoint, evaluate, load_anchors, load_images

__all__ = [
    "ImageCodec",
    "PillowCodec",
    "JPEGCodec",
    "WebPCodec",
    "AVIFCodec",
    "CLASSICAL_CODECS",
    "DEFAULT_QUALITIES",
    "make_classical",
    "RDPoint",
    "load_images",
    "evaluate",
    "load_anchors",
    "bd_table",
    "plot_rd",
    "quality_values",
]
