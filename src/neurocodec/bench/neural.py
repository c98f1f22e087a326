"""neurocodec models as codecs under test (the :class:`ImageCodec` protocol)."""

from __future__ import annotations

import numpy as np


class NeuralCodec:
    """A shipped model, measured through the public API: ``compress`` then ``decompress``.

    The rate is the size of the whole stream (header included); decoding goes through
    :func:`neurocodec.decompress`, so the model is read from the stream like a user would.
    The decoded image is also checked against the encoder's reconstruction, so a
    benchmark run doubles as a round-trip check.

    Args:
      model: shipped model name (None = default).
      threads: torch threads used while measuring.
      weights: a weight file instead of a shipped model (its streams then decode only
        through this object, since :func:`neurocodec.decompress` looks in the zoo).
      effort: encode-time latent optimisation steps (``Codec.compress(effort=...)``).
    """

    def __init__(self, model: str | None = None, threads: int | None = None, weights: str | None = None,
                 effort: int = 0):
        import torch

        from ..codec import Codec

        if threads:
            torch.set_num_threads(threads)
        self.codec = Codec(model, weights=weights)
        self._shipped = weights is None
        self.effort = effort
        self.name = self.codec.name + (f" effort {effort}" if effort else "")
        self._last_reconstruction: np.ndarray | None = None
        self.mismatches = 0

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        data, self._last_reconstruction = self.codec.compress_with_reconstruction(img, quality, effort=self.effort)
        return data

    def decode(self, data: bytes) -> np.ndarray:
        from ..codec import decompress

        out = decompress(data) if self._shipped else self.codec.decompress(data)
        if self._last_reconstruction is not None and not np.array_equal(out, self._last_reconstruction):
            self.mismatches += 1
        return out
