"""``block-walloc``: WaLLoC's split (Jacobellis & Yoon) on the trained default: a linear
encoder, the default's decoder and hyperprior.

WaLLoC's point is the asymmetry: a fixed invertible transform and a shallow, nearly linear
learned encoder (cheap where images are captured, and latents to learn on directly), with
the nonlinear work left to the decoder. Here that split is applied to ``block-hyperprior``:

    analysis:  block DCT of ``x - 0.5`` (3 x 64 coefficients at H/8) -> **one 1x1 projection** -> y
    synthesis: the default's, unchanged (refinement, inverse DCT, inverse colour, pixel refiner)

The default's colour transform and analysis refinement are gone: the projection is the
whole learned encoder (192 x 192 weights, 576 multiply-adds per pixel, against about 5,400
for the default's colour + DCT + refinement). The block DCT stands in for WaLLoC's wavelet
packet because it is the basis the default's decoder and hyperprior were trained on: a
1x1 map of a CDF 9/7 packet cannot express block-aligned DCT coefficients (least-squares
residual about 2.3 quantisation steps at quality 8, against 0.4 from the DCT; see
docs/transforms.md). The wavelet-packet ``walloc`` stays registered, untrained.

Start: ``warm_start_fresh`` is the projection, so a default weight file loads everything
else; the projection starts as the default's YCbCr matrix applied per DCT frequency (the
default without its analysis refinement). :mod:`neurocodec.train.encoder_fit` then sets it
to the least-squares fit of the default's latents, the closest linear encoder to the
default's, before training adapts encoder and decoder to each other.
"""

from __future__ import annotations

import torch
from torch import nn

from ..transforms.linear import YCBCR_FROM_RGB
from .hyperprior import BlockHyperprior


class BlockWaLLoC(BlockHyperprior):
    """Linear encoder (block DCT + 1x1 projection), ``block-hyperprior``'s decoder and prior.

    Args: as for :class:`BlockHyperprior` (``refine_blocks`` and ``refine_hidden`` size the
    synthesis refinement only; the encoder has none).
    """

    architecture = "block-walloc"
    # Parameters a block-hyperprior weight file lacks (kept at initialisation when
    # warm-starting from one; see neurocodec.zoo.weights.load_state_into).
    warm_start_fresh = ("encoder.",)

    def __init__(self, refine_blocks: int = 2, refine_hidden: int = 192, pixel_hidden: int = 48,
                 hyper_channels: int = 64, hyper_hidden: int = 128):
        super().__init__(refine_blocks, refine_hidden, pixel_hidden, hyper_channels, hyper_hidden)
        del self.colour, self.analysis_refine   # the encoder is the projection alone
        self.encoder = nn.Conv2d(self.latent_channels, self.latent_channels, 1)
        self._init_ycbcr_projection()

    @torch.no_grad()
    def _init_ycbcr_projection(self) -> None:
        """Projection = the YCbCr matrix per DCT frequency: colour and DCT commute (both
        linear, the DCT acts on each channel alone), so this is colour + DCT."""
        colour = torch.tensor(YCBCR_FROM_RGB, dtype=torch.float32)
        weight = torch.kron(colour, torch.eye(self.dct.size ** 2))
        self.encoder.weight.copy_(weight[:, :, None, None])
        self.encoder.bias.zero_()

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 192, H/8, W/8): a linear map of the pixels."""
        return self.encoder(self.dct(x - 0.5))
