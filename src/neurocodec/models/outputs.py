"""What a model's training face returns: :class:`ModelOutput`, a typed result instead of
a string-keyed dict (a misspelt field fails where it is read, not later)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..entropy.base import total_bits


@dataclass(frozen=True)
class ModelOutput:
    """The training face of a model, for a batch (B, 3, H, W).

    Attributes:
      x_hat: float32 (B, 3, H, W), the reconstruction (not clamped).
      y_bits: float32 (B, C_y, H', W'), bits of the latents (shape: the entropy model's,
        see :class:`~neurocodec.entropy.base.EntropyOutput`).
      z_bits: float32 (B, ...), bits of the side information.
    """

    x_hat: torch.Tensor
    y_bits: torch.Tensor
    z_bits: torch.Tensor

    def bits(self) -> torch.Tensor:
        """float32 (B,): every bit of each sample."""
        return total_bits(self.y_bits, self.z_bits)
