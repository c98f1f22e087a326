"""neurocodec models as codecs under test (the :class:`ImageCodec` protocol)."""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (None: as they are), then restore the
    previous count: measuring one codec must not change the process for the others."""
    import torch

    if not threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class NeuralCodec:
    """A shipped model, measured through the public API: ``compress`` then ``decompress``.

    The rate is the size of the whole stream (header included); decoding goes through
    :func:`neurocodec.decompress`, so the model is read from the stream like a user would.
    The decoded image is also checked against the encoder's reconstruction, so a
    benchmark run doubles as a round-trip check.

    Args:
      model: shipped model name (None = default).
      threads: torch threads used while encoding and decoding (restored after each call).
      weights: a weight file instead of a shipped model (its streams then decode only
        through this object, since :func:`neurocodec.decompress` looks in the zoo).
      effort: encode-time latent optimisation steps (``Codec.compress(effort=...)``).
    """

    def __init__(self, model: str | None = None, threads: int | None = None, weights: str | None = None,
                 effort: int = 0):
        from ..codec import Codec

        self.threads = threads
        self.codec = Codec(model, weights=weights)
        self._shipped = weights is None
        self.effort = effort
        self.name = self.codec.name + (f" effort {effort}" if effort else "")
        self._last_reconstruction: np.ndarray | None = None
        self.mismatches = 0

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        with torch_threads(self.threads):
            data, self._last_reconstruction = self.codec.compress_with_reconstruction(img, quality,
                                                                                        effort=self.effort)
        return data

    def decode(self, data: bytes) -> np.ndarray:
        from ..codec import decompress

        with torch_threads(self.threads):
            out = decompress(data) if self._shipped else self.codec.decompress(data)
        if self._last_reconstruction is not None and not np.array_equal(out, self._last_reconstruction):
            self.mismatches += 1
        return out
