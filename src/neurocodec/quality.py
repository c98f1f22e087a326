"""The quality scale every model shares: one number in [1, 8] chooses the rate.

Quality 1 gives the smallest files, 8 the best images; fractions interpolate between
the eight trained rate-distortion trade-offs (``neurocodec.models.LAMBDAS``). The scale,
its default and its check live here, below every layer and with no imports, so that
the models, the codec, collections and the CLI (which must not import torch to check
``--quality``) all read the same ones.
"""

from __future__ import annotations

import math
from typing import Any

MIN_QUALITY = 1.0
MAX_QUALITY = 8.0
#: Quality used when none is given (the API, the CLI and collections).
DEFAULT_QUALITY = 4

class QualityTypeError(TypeError, ValueError):
    """A quality given as a string (or bytes, or a bool) instead of a number. A TypeError,
    and a ValueError as every other bad quality is."""


_RANGE = f"[{MIN_QUALITY:g}, {MAX_QUALITY:g}]"


def check_quality(quality: Any) -> float:
    """Validate a quality (int or float in [1, 8]) and return it as float.

    Raises:
      QualityTypeError (a TypeError and a ValueError): a string, bytes or a bool; give the
        number itself, e.g. ``quality=4``.
      ValueError: not a number, NaN, or outside [1, 8].
    """
    if isinstance(quality, (str, bytes, bool)):
        raise QualityTypeError(f"quality must be a number in {_RANGE}, not a {type(quality).__name__} ({quality!r})")
    try:
        q = float(quality)
    except (TypeError, ValueError):
        raise ValueError(f"quality must be a number in {_RANGE}, got {quality!r}") from None
    if not (MIN_QUALITY <= q <= MAX_QUALITY) or math.isnan(q):
        raise ValueError(f"quality must be in {_RANGE}, got {quality!r}")
    return q
