"""The entropy model of the overfitted codec: the integer tables it codes with, and the two
segments of an image (its networks' parameters; its latent pyramid).

Unlike the trained entropy models, this one holds no learned parameters: the context model
is learned per image and travels in the stream (:mod:`neurocodec.entropy.parameters`). What
the weight file holds is only its coding state, the integer Laplace tables
(:func:`~neurocodec.entropy.laplace.laplace_pmfs`) built once at export, named
``tables.pyramid.*``. It keeps the parts of the entropy-model contract the zoo uses
(``num_segments``, ``update_tables``, ``coding_state``, ``load_coding_state``); the
training and coding faces are functions of the per-image ARM instead
(:mod:`neurocodec.entropy.arm`, :mod:`neurocodec.entropy.wavefront`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

TABLES_PREFIX = "tables.pyramid."


class PyramidPrior(nn.Module):
    """Integer tables of the overfitted codec's latents and parameters.

    Attributes:
      num_segments: 2 per tile: the parameters, then the latent pyramid.
      tables: the :class:`~neurocodec.coding.IntTables` (None until built or loaded).
    """

    num_segments = 2
    rd_rounding = False
    latent_multiple = 1

    def __init__(self):
        super().__init__()
        self.tables = None

    @torch.no_grad()
    def update_tables(self, log_gain: torch.Tensor | None = None) -> None:
        """Build the integer tables (export time). ``log_gain`` is ignored (no gains here)."""
        from ..coding import build_tables
        from .laplace import PRECISION, laplace_pmfs

        pmfs, minima = laplace_pmfs()
        self.tables = build_tables(pmfs, minima, precision=PRECISION)

    def require_tables(self):
        """The tables; RuntimeError when neither built nor loaded."""
        if self.tables is None:
            raise RuntimeError("overfit prior has no tables: call update_tables() or load a weight file")
        return self.tables

    def coding_state(self) -> dict[str, torch.Tensor]:
        """``tables.pyramid.{freqs, offsets, minima, precision}``: integer tensors."""
        return {TABLES_PREFIX + k: torch.from_numpy(np.ascontiguousarray(a))
                for k, a in self.require_tables().to_arrays().items()}

    def load_coding_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`coding_state` (ValueError if the tensors are missing)."""
        from ..coding import IntTables

        found = {k[len(TABLES_PREFIX):]: v.numpy() for k, v in tensors.items() if k.startswith(TABLES_PREFIX)}
        if not found:
            raise ValueError(f"weight file has no {TABLES_PREFIX}* tensors")
        self.tables = IntTables.from_arrays(found)
