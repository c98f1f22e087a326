"""Registered architectures built on the mean-scale hyperprior.

* ``block-hyperprior``: a linear-initialised codec. A learned colour transform (YCbCr at
  init) and an orthonormal 8x8 block DCT give 192 coefficient channels at H/8; residual
  refinements (zero-initialised, so the codec starts as a classical transform codec) act
  before quantisation and after dequantisation, and a pixel-domain refiner removes block
  artefacts. Quantisation steps start from the JPEG tables.
* ``conv-hyperprior``: the conv/GDN transform of Ballé et al. / Minnen et al. (2018).

Both use the same variable-rate gains and the same fixed-point mean-scale hyperprior.
"""

from __future__ import annotations

import torch
from torch import nn

from ..transforms import GDN, BlockDCT, ColourTransform, PixelRefiner, ResidualBlock
from .base import LAMBDAS, VariableRateCodec, interpolate_qualities

# JPEG (ITU-T T.81 Annex K) quantisation tables, for initialisation only.
JPEG_LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]
JPEG_CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32


def jpeg_like_steps(coarsest: float = 6.0, finest: float = 0.3) -> torch.Tensor:
    """Initial quantisation steps (8, 192): JPEG tables scaled geometrically per quality.

    The block DCT is orthonormal on pixels in [0, 1], so JPEG's step ``Q`` (on 0..255) is
    ``Q / 255`` here.
    """
    base = torch.tensor(JPEG_LUMA + JPEG_CHROMA + JPEG_CHROMA, dtype=torch.float32) / 255.0
    factors = torch.logspace(torch.log10(torch.tensor(coarsest)), torch.log10(torch.tensor(finest)), len(LAMBDAS))
    return factors[:, None] * base[None, :]


class BlockHyperprior(VariableRateCodec):
    """Linear-initialised block-transform codec with a mean-scale hyperprior.

    Args:
      refine_blocks: residual blocks on each side of quantisation (at H/8, 192 channels).
      refine_hidden: hidden channels of those blocks.
      pixel_hidden: hidden channels of the pixel refiner (0 disables it).
      hyper_channels, hyper_hidden: size of the hyperprior.
    """

    architecture = "block-hyperprior"

    def __init__(self, refine_blocks: int = 2, refine_hidden: int = 192, pixel_hidden: int = 48,
                 hyper_channels: int = 64, hyper_hidden: int = 128):
        super().__init__()
        self._config = dict(refine_blocks=refine_blocks, refine_hidden=refine_hidden, pixel_hidden=pixel_hidden,
                            hyper_channels=hyper_channels, hyper_hidden=hyper_hidden)
        self.latent_channels = 192
        self.pad_multiple = 32
        self.colour = ColourTransform()
        self.dct = BlockDCT(3, 8)
        self.analysis_refine = nn.Sequential(*[ResidualBlock(192, refine_hidden) for _ in range(refine_blocks)])
        self.synthesis_refine = nn.Sequential(*[ResidualBlock(192, refine_hidden) for _ in range(refine_blocks)])
        self.inverse_colour = ColourTransform(inverse=True)
        self.pixel_refine = PixelRefiner(pixel_hidden) if pixel_hidden else None
        # Per-quality scales of the decoder's corrections (1 at init): how much smoothing
        # or detail a reconstruction needs depends on how coarsely it was quantised.
        self.synthesis_modulation = nn.Parameter(torch.ones(len(LAMBDAS), 192 * refine_blocks))
        self.pixel_modulation = nn.Parameter(torch.ones(len(LAMBDAS), 12))
        self.init_gains(jpeg_like_steps())
        self.make_entropy_model(hyper_channels, hyper_hidden)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 192, H/8, W/8)."""
        return self.analysis_refine(self.dct(self.colour(x)))

    def synthesis(self, y_hat: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """(B, 192, H/8, W/8), quality (B,) -> (B, 3, H, W), not clamped."""
        modulation = interpolate_qualities(self.synthesis_modulation, quality)[:, :, None, None]
        for i, block in enumerate(self.synthesis_refine):
            y_hat = block(y_hat, modulation[:, 192 * i:192 * (i + 1)])
        x = self.inverse_colour(self.dct.inverse(y_hat))
        if self.pixel_refine is None:
            return x
        return self.pixel_refine(x, interpolate_qualities(self.pixel_modulation, quality)[:, :, None, None])


class ConvHyperprior(VariableRateCodec):
    """Conv/GDN transform (four stride-2 5x5 layers each side) with the mean-scale hyperprior.

    Args:
      channels: N, hidden channels of the transforms.
      latent_channels: M, channels of y (at H/16).
    """

    architecture = "conv-hyperprior"

    def __init__(self, channels: int = 64, latent_channels: int = 96, hyper_channels: int = 64):
        super().__init__()
        self._config = dict(channels=channels, latent_channels=latent_channels, hyper_channels=hyper_channels)
        self.latent_channels = latent_channels
        self.pad_multiple = 64
        n, m = channels, latent_channels

        def down(cin, cout):
            return nn.Conv2d(cin, cout, 5, stride=2, padding=2)

        def up(cin, cout):
            return nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)

        self.analysis_net = nn.Sequential(down(3, n), GDN(n), down(n, n), GDN(n), down(n, n), GDN(n), down(n, m))
        self.synthesis_net = nn.Sequential(up(m, n), GDN(n, inverse=True), up(n, n), GDN(n, inverse=True),
                                           up(n, n), GDN(n, inverse=True), up(n, 3))
        self.init_gains()
        self.make_entropy_model(hyper_channels, n)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, M, H/16, W/16)."""
        return self.analysis_net(x - 0.5)

    def synthesis(self, y_hat: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """(B, M, H/16, W/16), quality (B,) -> (B, 3, H, W), not clamped."""
        return self.synthesis_net(y_hat) + 0.5
