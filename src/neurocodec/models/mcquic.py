"""``block-mcquic``: the block transform of ``block-hyperprior`` with McQuic's cascaded
multi-codebook vector quantisation (:class:`neurocodec.entropy.vq.CascadedVQ`).

The 192 latent channels (DCT coefficients of 8x8 blocks) are coded as codeword indexes:
two coarse levels at 1/4 and 1/2 of the latent resolution (H/32 and H/16 of the image)
predict the latents, and residual VQ stages at H/8 refine them, their codebooks taking
the channels in DCT frequency order (lowest frequencies first). No scalar quantisation
and no context model: coding is a static-table entropy coder plus codebook lookups.

**Quality is structure.** The gains of the other architectures scale the latents
against a fixed quantisation step; a codebook has no step, so here one learned,
quality-independent per-channel scale normalises the latents, and quality selects how
many fine units (codebooks of the H/8 stages, low frequencies first) are coded. With the
default 2 stages of 4 codebooks (8 units) qualities 1..8 code 0, 1, 2, 3, 5, 6, 7, 8
units (``round(q)`` selects the entry); the coarse levels are always coded. The
decoder's per-quality modulations of the block model still adapt the synthesis to the
structure.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..entropy.vq import CascadedVQ
from .context import dct_frequency_order
from .hyperprior import BlockHyperprior

INITIAL_STEP = 0.25   # latents start scaled by 4: DC coefficients O(10), low AC O(1)


class BlockMcQuic(BlockHyperprior):
    """Block-transform codec with cascaded multi-codebook VQ.

    The transform (colour, DCT, refinements, pixel refiner, per-quality decoder
    modulations) is inherited from :class:`BlockHyperprior` with the same parameter
    names, so ``TrainConfig.init_from`` a ``block-hyperprior`` weight file warm-starts it;
    the latent scale and the VQ start fresh.

    Args:
      refine_blocks, refine_hidden, pixel_hidden: as for :class:`BlockHyperprior`.
      coarse_widths, coarse_codebooks: channels and codebooks of the coarse levels
        (strides 4 and 2 on the latents; one entry per level, coarsest first).
      fine_stages, fine_codebooks: residual VQ stages at the latent resolution and
        codebooks (channel groups) per stage.
      codebook_size: K, codewords per codebook.
      level_hidden: width of the coarse levels' heads.
      units_per_quality: fine units coded at qualities 1..8 (default: see
        :class:`~neurocodec.entropy.vq.CascadedVQ`).
      reseed_every: dead-codeword window, in training forwards.
    """

    architecture = "block-mcquic"
    warm_start_fresh = ("entropy_model.", "log_scale", "log_inverse_scale")

    def __init__(self, refine_blocks: int = 2, refine_hidden: int = 192, pixel_hidden: int = 48,
                 coarse_widths=(64, 128), coarse_codebooks=(2, 4), fine_stages: int = 2, fine_codebooks: int = 4,
                 codebook_size: int = 256, level_hidden: int = 96, units_per_quality=None, reseed_every: int = 50):
        if len(coarse_widths) > 2:
            raise ValueError(f"block-mcquic has at most 2 coarse levels (strides 4 and 2), got {len(coarse_widths)}")
        # read by make_entropy_model, which the parent's constructor calls
        self._vq_config = dict(
            coarse_widths=[int(w) for w in coarse_widths], coarse_codebooks=[int(m) for m in coarse_codebooks],
            fine_stages=int(fine_stages), fine_codebooks=int(fine_codebooks), codebook_size=int(codebook_size),
            level_hidden=int(level_hidden), reseed_every=int(reseed_every),
            units_per_quality=None if units_per_quality is None else [int(u) for u in units_per_quality])
        super().__init__(refine_blocks, refine_hidden, pixel_hidden)
        self._config = dict(refine_blocks=refine_blocks, refine_hidden=refine_hidden, pixel_hidden=pixel_hidden,
                            **self._vq_config)

    def make_entropy_model(self, hyper_channels: int = 0, hidden: int = 0) -> None:
        """Builds the :class:`CascadedVQ` (the hyperprior sizes are not used)."""
        cfg = self._vq_config
        strides = (4, 2)[2 - len(cfg["coarse_widths"]):]
        self.entropy_model = CascadedVQ(
            self.latent_channels, cfg["coarse_widths"], cfg["coarse_codebooks"], strides, cfg["fine_stages"],
            cfg["fine_codebooks"], cfg["codebook_size"], cfg["level_hidden"], dct_frequency_order(),
            cfg["units_per_quality"], cfg["reseed_every"])

    # -- one scale for every quality -----------------------------------------------------
    def init_gains(self, initial_steps: torch.Tensor | None = None) -> None:
        """Creates the quality-independent latent scale (the per-quality steps the parent
        passes are not used): ``log_scale`` and ``log_inverse_scale``, float32 (C,)."""
        self.log_scale = nn.Parameter(torch.full((self.latent_channels,), -math.log(INITIAL_STEP)))
        self.log_inverse_scale = nn.Parameter(torch.full((self.latent_channels,), math.log(INITIAL_STEP)))

    def gains(self, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """quality float (B,) -> (scale, inverse scale), float32 (B, C, 1, 1) each, equal for
        every quality."""
        b = quality.shape[0]
        gain = torch.exp(self.log_scale).view(1, -1, 1, 1).expand(b, -1, 1, 1)
        inverse = torch.exp(self.log_inverse_scale).view(1, -1, 1, 1).expand(b, -1, 1, 1)
        return gain, inverse

    def log2_gains(self, quality: torch.Tensor) -> torch.Tensor:
        """quality float (B,) -> log2 of the scale, float32 (B, C, 1, 1)."""
        return (self.log_scale / math.log(2.0)).view(1, -1, 1, 1).expand(quality.shape[0], -1, 1, 1)

    @torch.no_grad()
    def update_tables(self) -> None:
        """Build the VQ's index tables (no gains enter them)."""
        self.entropy_model.update_tables(None)

    def refine_latents(self, x: torch.Tensor, quality: float, steps: int, lr: float = 0.003,
                       seed: int = 0) -> torch.Tensor:
        """Not available: raises ValueError (encode-time optimisation of latents coded as
        codeword indexes is not implemented)."""
        raise ValueError("block-mcquic does not support effort > 0 (encode-time latent optimisation); use effort=0")
