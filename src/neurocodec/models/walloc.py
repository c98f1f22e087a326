"""``walloc``: Wavelet Learned Lossy Compression (after Jacobellis & Yoon) on the shared hyperprior.

WaLLoC puts a small autoencoder between a fixed wavelet packet analysis and its inverse.
The wavelet packet (:class:`~neurocodec.transforms.WaveletPacket`, CDF 9/7) already
trades resolution for channels at no learned cost, so the learned encoder can be shallow
and nearly linear (cheap to run where images are captured), while the decoder, which
only runs where images are looked at, is deeper. The latents are few channels at low
resolution: a small, dense representation to learn on directly (compressed-domain
learning, see :meth:`neurocodec.Codec.encode_latents`).

Here (our own composition; the paper codes its latents with a simple lossless codec):

* analysis: wavelet packet of ``x - 0.5`` (``3 * 4**J`` bands at ``H / 2**J``), a 1x1
  projection to ``latent_channels`` and one zero-initialised residual block;
* the mean-scale hyperprior, gains and qualities every architecture here uses;
* synthesis: a 1x1 expansion back to the ``3 * 4**J`` bands, ``decoder_blocks``
  residual blocks at the wavelet resolution (per-quality scaled corrections), inverse
  wavelet packet.

Initialisation makes it a classical linear codec: the projection keeps, in YCbCr, the
packet bands of lowest frequency (luma first), and the expansion is its exact
pseudo-inverse; all nonlinear parts start at zero.
"""

from __future__ import annotations

import torch
from torch import nn

from ..transforms import ResidualBlock, WaveletPacket, sequency_order
from ..transforms.linear import YCBCR_FROM_RGB
from .base import LAMBDAS, VariableRateCodec, interpolate_qualities


def band_priority(levels: int) -> list[tuple[int, int]]:
    """(colour, band) pairs of the YCbCr wavelet packet, most important first.

    Ordered by the frequency diagonal of the band (:func:`sequency_order`), chroma
    counted ``2**J`` diagonals (half the grid) higher than luma, then by colour and by
    frequency along H. The chroma offset follows the energy of natural images: on Kodak
    the chroma detail bands hold less energy than all but the finest luma bands, so a
    16-of-48 selection (J = 2) keeps 14 luma bands and the two chroma averages.
    Returns all ``3 * 4**J`` pairs.
    """
    order = sequency_order(levels)
    pairs = [(c, b) for c in range(3) for b in range(4**levels)]
    offset = 2**levels
    return sorted(pairs, key=lambda p: (sum(order[p[1]]) + (offset if p[0] else 0), p[0], order[p[1]][0]))


class WaLLoC(VariableRateCodec):
    """Wavelet packet + shallow encoder / deeper decoder, mean-scale hyperprior.

    Args:
      levels: J, wavelet packet levels; the latents are at ``H / 2**J``.
      latent_channels: channels of the latents (at most ``3 * 4**J``).
      encoder_hidden: hidden channels of the encoder's residual block (0: purely linear).
      decoder_blocks: residual blocks of the decoder, at ``3 * 4**J`` channels.
      decoder_hidden: their hidden channels.
      hyper_channels, hyper_hidden: size of the hyperprior.
      boundary: wavelet boundary extension, ``"symmetric"`` or ``"periodic"``.

    ``pad_multiple`` is ``4 * 2**J``: the hyperprior downsamples the latents by 4.
    """

    architecture = "walloc"

    def __init__(self, levels: int = 2, latent_channels: int = 16, encoder_hidden: int = 32,
                 decoder_blocks: int = 3, decoder_hidden: int = 128, hyper_channels: int = 32,
                 hyper_hidden: int = 96, boundary: str = "symmetric"):
        super().__init__()
        bands = 3 * 4**levels
        if not 1 <= latent_channels <= bands:
            raise ValueError(f"latent_channels must be in [1, {bands}] for {levels} levels, got {latent_channels}")
        self._config = dict(levels=levels, latent_channels=latent_channels, encoder_hidden=encoder_hidden,
                            decoder_blocks=decoder_blocks, decoder_hidden=decoder_hidden,
                            hyper_channels=hyper_channels, hyper_hidden=hyper_hidden, boundary=boundary)
        self.latent_channels = latent_channels
        self.pad_multiple = 4 * 2**levels
        self.bands = bands
        self.wavelet = WaveletPacket(3, levels, boundary)
        self.project = nn.Conv2d(bands, latent_channels, 1)
        self.encoder_refine = ResidualBlock(latent_channels, encoder_hidden) if encoder_hidden else None
        self.expand = nn.Conv2d(latent_channels, bands, 1)
        self.decoder_refine = nn.ModuleList([ResidualBlock(bands, decoder_hidden) for _ in range(decoder_blocks)])
        # Per-quality scales of the decoder's corrections (1 at init), as in block-hyperprior.
        self.decoder_modulation = nn.Parameter(torch.ones(len(LAMBDAS), bands * decoder_blocks))
        kept = band_priority(levels)[:latent_channels]
        self._init_linear(kept)
        self.init_gains(initial_steps(kept, levels))
        self.make_entropy_model(hyper_channels, hyper_hidden)

    @torch.no_grad()
    def _init_linear(self, kept: list[tuple[int, int]]) -> None:
        """Projection = YCbCr colour transform restricted to the ``kept`` bands; expansion =
        the inverse colour transform of those bands, the others taken as zero *in YCbCr*
        (a dropped chroma band means grey detail, not the least-norm RGB a pseudo-inverse
        gives). Unquantised, on every third Kodak image, J = 2 with 16 channels: 41.1 dB
        (a PCA of the 48 bands, fitted on the training images, gives 41.2 dB; the
        pseudo-inverse 31.3 dB)."""
        ycbcr = torch.tensor(YCBCR_FROM_RGB, dtype=torch.float64)
        rgb_from_ycbcr = torch.linalg.inv(ycbcr)
        n = 4**self.wavelet.levels
        projection = torch.zeros(self.latent_channels, self.bands, dtype=torch.float64)
        expansion = torch.zeros(self.bands, self.latent_channels, dtype=torch.float64)
        for k, (colour, band) in enumerate(kept):
            for rgb in range(3):
                projection[k, rgb * n + band] = ycbcr[colour, rgb]
                expansion[rgb * n + band, k] = rgb_from_ycbcr[rgb, colour]
        self.project.weight.copy_(projection.float()[:, :, None, None])
        self.project.bias.zero_()
        self.expand.weight.copy_(expansion.float()[:, :, None, None])
        self.expand.bias.zero_()

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, latent_channels, H / 2**J, W / 2**J)."""
        y = self.project(self.wavelet(x - 0.5))
        return y if self.encoder_refine is None else self.encoder_refine(y)

    def synthesis(self, y_hat: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """(B, latent_channels, H / 2**J, W / 2**J), quality (B,) -> (B, 3, H, W), not clamped."""
        coefficients = self.expand(y_hat)
        modulation = interpolate_qualities(self.decoder_modulation, quality)[:, :, None, None]
        for i, block in enumerate(self.decoder_refine):
            coefficients = block(coefficients, modulation[:, self.bands * i:self.bands * (i + 1)])
        return self.wavelet.inverse(coefficients) + 0.5


def initial_steps(kept: list[tuple[int, int]], levels: int, coarsest: float = 6.0,
                  finest: float = 0.3) -> torch.Tensor:
    """Initial quantisation steps, float32 (8, len(kept)), on pixels in [0, 1].

    The wavelet packet is nearly orthonormal, so steps are on the scale of JPEG's for an
    orthonormal DCT: ``(8 + 4 * diagonal) / 255`` for luma (diagonal: the band's
    frequency diagonal scaled to an 8x8 grid), 1.5x that for chroma, times a factor
    falling geometrically from ``coarsest`` (quality 1) to ``finest`` (quality 8).
    """
    order = sequency_order(levels)
    scale = 8 / 2**levels
    base = torch.tensor([(8.0 + 4.0 * scale * sum(order[b])) * (1.5 if c else 1.0) / 255.0 for c, b in kept])
    factors = torch.logspace(torch.log10(torch.tensor(coarsest)), torch.log10(torch.tensor(finest)), len(LAMBDAS))
    return factors[:, None] * base[None, :]
