"""The contract every entropy model implements: :class:`EntropyModel`.

An entropy model sits between a transform's latents and the coder. It has two faces and
a saved state, and the model, the zoo and the codec use it only through this contract:

* **training face**: :meth:`EntropyModel.forward` -> :class:`EntropyOutput`
  (differentiable bits and the latents the decoder will see);
* **coding face**: :meth:`~EntropyModel.quantise` (latents -> symbols),
  :meth:`~EntropyModel.encode` (symbols -> ``num_segments`` byte strings) and
  :meth:`~EntropyModel.decode` (byte strings -> latents);
* **saved state**: :meth:`~EntropyModel.update_tables` builds the integer coding state
  once, at export; :meth:`~EntropyModel.coding_state` and
  :meth:`~EntropyModel.load_coding_state` are what a weight file stores and restores
  beside the parameters.

Shapes follow one convention (as in tensorflow-compression, stated relative to the
latents): ``y`` is (B, C, H, W), float32, already multiplied by the quality's gains
(the quantisation step is 1); the coding face takes a batch of one, B = 1. H and W are
multiples of :attr:`EntropyModel.latent_multiple`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..errors import FormatError

#: Training-face rate terms: ``"noise"`` (additive uniform noise, the usual relaxation) or
#: ``"round"`` (the bits of the symbols actually coded, straight-through).
RATE_PROXIES = ("noise", "round")


@dataclass(frozen=True)
class EntropyOutput:
    """What the training face returns.

    Attributes:
      y_hat: float32 (B, C, H, W), the latents the decoder reconstructs (rounded, or
        codewords), with a straight-through gradient.
      y_bits: float32 (B, C_y, H, W), bits of the latents (C_y = C for scalar models, 1
        when a model reports bits per position).
      z_bits: float32 (B, C_z, h, w), bits of the side information (hyper-latents, coarse
        levels; any shape with the batch first).
    """

    y_hat: torch.Tensor
    y_bits: torch.Tensor
    z_bits: torch.Tensor

    def bits(self) -> torch.Tensor:
        """float32 (B,): every bit of each sample, latents and side information."""
        return total_bits(self.y_bits, self.z_bits)


def total_bits(y_bits: torch.Tensor, z_bits: torch.Tensor) -> torch.Tensor:
    """float32 (B,): the bits of each sample, from bit maps of any shape with the batch first."""
    return y_bits.flatten(1).sum(1) + z_bits.flatten(1).sum(1)


class CodedSymbols(Protocol):
    """What :meth:`EntropyModel.quantise` returns; each model has its own dataclass with
    the symbols its coder needs, and all of them carry ``y_hat``: float32 (1, C, H, W),
    the latents the decoder will reconstruct from those symbols, bit for bit."""

    y_hat: torch.Tensor


def uniform_noise(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """U(-1/2, 1/2) noise shaped like ``like``, drawn from ``generator`` (default: torch's
    global generator): the ``"noise"`` rate proxy."""
    return torch.empty_like(like).uniform_(-0.5, 0.5, generator=generator)


class EntropyModel(nn.Module, abc.ABC):
    """The one contract of every entropy model.

    Guarantees (what an implementation must keep, what callers may rely on):

    1. **Same prior on both sides.** Encoder and decoder must use the same weights, coding
       state, quality and coder; given those, :meth:`decode` derives bit for bit the
       probabilities :meth:`encode` used, on any machine, thread count or convolution
       backend (everything that selects a table or a mean is integer arithmetic).
    2. **The encoder knows the reconstruction.** ``decode(encode(s), shape, q)`` equals
       ``s.y_hat`` for ``s = quantise(y, q)`` (the codec reconstructs the image from
       ``s.y_hat`` without decoding); exactly within a process, and across machines up to
       the rounding of float parts that decide no symbol (VQ's coarse heads).
    3. **Segments.** :meth:`encode` returns exactly :attr:`num_segments` byte strings per
       tile; :meth:`decode` raises :class:`~neurocodec.errors.FormatError` for another
       count, and for data that does not decode under this model. Decoding work is
       bounded by the latent shape, whatever the bytes.
    4. **Saved state is data.** :meth:`coding_state` returns integer tensors only, named
       apart from the parameters; ``load_coding_state(coding_state())`` on a model with
       the same parameters codes identically. Nothing in it is recomputed at load time.
    5. **Training matches coding.** With ``rate_proxy="round"``, ``forward(...).y_hat``
       equals ``quantise(...).y_hat`` for plainly rounded symbols (up to the training
       face's float gains), and its bits estimate the coded size.
    6. **No side effects beyond the model.** Noise comes from the ``generator`` passed
       in (or torch's global one); no call changes thread counts, ``requires_grad`` or
       global state. Training-only bookkeeping (e.g. VQ codebook usage) happens only in
       ``train()`` mode.

    Attributes an implementation sets:
      num_segments: byte strings per tile (the container checks it before decoding).
      rd_rounding: whether :meth:`quantise` accepts a ``distortion_weight``
        (rate-distortion rounding); a model without it raises ValueError when given one.
      latent_multiple: H and W of the latents must be multiples of it.
    """

    num_segments: int
    rd_rounding: bool = False
    latent_multiple: int = 1

    # -- training face -----------------------------------------------------------------
    @abc.abstractmethod
    def forward(self, y: torch.Tensor, log2_gain: torch.Tensor, quality: torch.Tensor,
                rate_proxy: str = "noise", generator: torch.Generator | None = None) -> EntropyOutput:
        """Differentiable rate of the latents.

        Args:
          y: float32 (B, C, H, W), latents scaled by the quality's gains.
          log2_gain: float32 (B, C, 1, 1), log2 of those gains (a prior that predicts
            unscaled distributions needs them).
          quality: float32 (B,) in [1, 8] (a model whose structure depends on the quality
            needs it; the others ignore it).
          rate_proxy: one of :data:`RATE_PROXIES`; ValueError otherwise.
          generator: source of the training noise (default: torch's global generator).
        Returns:
          :class:`EntropyOutput`.
        """

    # -- coding face -------------------------------------------------------------------
    @abc.abstractmethod
    def quantise(self, y: torch.Tensor, quality: float, distortion_weight: np.ndarray | None = None
                 ) -> CodedSymbols:
        """Encoder side: latents -> symbols.

        Args:
          y: float32 (1, C, H, W), latents scaled by the gains of ``quality``.
          quality: float in [1, 8], the quality the decoder will be told.
          distortion_weight: float64 (1, C, 1, 1), bits per unit of squared latent error
            per channel: choose symbols by rate-distortion rounding (only where
            :attr:`rd_rounding`; the decoder is the same either way).
        Returns:
          the model's symbols, with ``y_hat`` (see :class:`CodedSymbols`).
        """

    @abc.abstractmethod
    def encode(self, symbols: CodedSymbols, coder: str = "cpu") -> list[bytes]:
        """Symbols from :meth:`quantise` -> :attr:`num_segments` byte strings, with the
        coding backend ``coder`` (:func:`neurocodec.coding.get_backend`)."""

    @abc.abstractmethod
    def decode(self, segments: list[bytes], y_shape: tuple[int, int, int, int], quality: float,
               coder: str = "cpu") -> torch.Tensor:
        """Byte strings -> y_hat, float32 ``y_shape`` (1, C, H, W), scaled latents."""

    # -- saved state -------------------------------------------------------------------
    @abc.abstractmethod
    def update_tables(self, log_gain: torch.Tensor | None) -> None:
        """Build the integer coding state from the parameters (export time only).

        Args:
          log_gain: float (8, C), natural-log gains of the eight qualities, or None for a
            model whose state does not depend on them.
        """

    @abc.abstractmethod
    def coding_state(self) -> dict[str, torch.Tensor]:
        """The integer coding state as named tensors for a weight file (after
        :meth:`update_tables` or :meth:`load_coding_state`)."""

    @abc.abstractmethod
    def load_coding_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`coding_state`; ``tensors`` may hold other names (ignored).
        Raises ValueError if the state is missing or does not fit the model."""

    # -- helpers for implementations -----------------------------------------------------
    def check_segments(self, segments: list[bytes]) -> None:
        """Guarantee 3: FormatError unless there are :attr:`num_segments` segments."""
        if len(segments) != self.num_segments:
            raise FormatError(f"this model codes a tile in {self.num_segments} segments, got {len(segments)}")

    def check_distortion_weight(self, distortion_weight: np.ndarray | None) -> None:
        """ValueError for a distortion weight given to a model without :attr:`rd_rounding`."""
        if distortion_weight is not None and not self.rd_rounding:
            raise ValueError(f"{type(self).__name__} does not support rate-distortion rounding")
