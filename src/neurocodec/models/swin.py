"""``swinv2-hyperprior``: the conv/GDN codec with residual SwinV2 stages (after S2LIC).

S2LIC (Wang et al., "S2LIC: Learned image compression with the SwinV2 block, Adaptive
Channel-wise and Global-inter Attention Context") builds its transforms from strided
convolutions with groups of SwinV2 blocks between them. Here the transforms of
``conv-hyperprior`` (four stride-2 5x5 convolutions with GDN each side, latents at H/16)
get a residual group of SwinV2 blocks (:class:`~neurocodec.transforms.swin.ResidualSwinStage`)
at chosen resolutions, at the mirrored places in analysis and synthesis; the entropy
model is the same fixed-point mean-scale hyperprior (S2LIC's channel-wise and global
attention context models are not part of this architecture).

:class:`~neurocodec.models.staged.StagedConvHyperprior` inserts the stages (shared with
``region-hyperprior``).

``block-swinv2`` (:class:`BlockSwinV2`) puts SwinV2 stages into the trained default
instead: ``block-hyperprior`` with a zero-initialised residual SwinV2 stage on each side of
quantisation, so that it starts exactly as the default and training adds only what the
wider receptive field brings.
"""

from __future__ import annotations

from ..transforms.swin import ResidualSwinStage
from .block_staged import StagedBlockHyperprior
from .staged import SCALES, StagedConvHyperprior


def _depth_table(depths) -> dict[int, int]:
    depths = [int(d) for d in depths]
    if len(depths) != len(SCALES) or min(depths) < 0:
        raise ValueError(f"depths must be {len(SCALES)} non-negative block counts, for the resolutions "
                         f"H/{', H/'.join(map(str, SCALES))}; got {depths}")
    return dict(zip(SCALES, depths))


class SwinV2Hyperprior(StagedConvHyperprior):
    """Conv/GDN transforms with residual SwinV2 stages, and the mean-scale hyperprior.

    Args:
      channels: N, channels of the hidden feature maps.
      latent_channels: M, channels of y (at H/16).
      hyper_channels: channels of z.
      depths: SwinV2 blocks of the stage at H/2, H/4, H/8, H/16 (0: no stage there), in
        analysis and, mirrored, in synthesis. Blocks alternate regular / shifted windows.
      heads: attention heads (divides N, and M if there is a stage at H/16).
      window: window side in feature positions (maps of any size are padded inside a block).
      mlp_ratio: MLP width of a block in units of its channels.
      cpb_hidden: hidden width of the continuous position-bias MLP.

    Images are padded to multiples of 64 (the H/16 latents and the hyperprior's further
    H/64), not of the window: the blocks pad their maps themselves.
    """

    architecture = "swinv2-hyperprior"

    def __init__(self, channels: int = 64, latent_channels: int = 96, hyper_channels: int = 64,
                 depths: tuple[int, ...] = (0, 0, 2, 2), heads: int = 4, window: int = 8, mlp_ratio: float = 2.0,
                 cpb_hidden: int = 64):
        super().__init__(channels, latent_channels, hyper_channels)
        table = _depth_table(depths)
        self._config.update(depths=[table[s] for s in SCALES], heads=int(heads), window=int(window),
                            mlp_ratio=float(mlp_ratio), cpb_hidden=int(cpb_hidden))
        for scale, depth in table.items():
            if depth:
                dim = self.stage_channels(scale)
                if dim % heads:
                    raise ValueError(f"heads ({heads}) must divide the {dim} channels of the stage at H/{scale}")
                for stages in (self.analysis_stages, self.synthesis_stages):
                    stages[str(scale)] = ResidualSwinStage(dim, depth, heads, window, mlp_ratio, cpb_hidden)


class BlockSwinV2(StagedBlockHyperprior):
    """``block-hyperprior`` with a zero-initialised residual SwinV2 stage on each side.

    The stages (:class:`~neurocodec.transforms.swin.ResidualSwinStage`: scaled cosine
    attention, log-spaced continuous position bias, regular and shifted windows) run on the
    192 DCT channels at H/8, after the analysis refinement and before the synthesis
    refinement (:class:`~neurocodec.models.block_staged.StagedBlockHyperprior`). A window
    of 8 latents spans 64 x 64 pixels, eight blocks of the DCT a side: the support beyond
    the 8x8 block (and the 3x3 refinement) that smooth areas and long edges need.

    Args:
      refine_blocks, refine_hidden, pixel_hidden, hyper_channels, hyper_hidden: as for
        :class:`~neurocodec.models.hyperprior.BlockHyperprior` (give the parent weight
        file's values to warm-start from it).
      depth: SwinV2 blocks per stage (alternating regular / shifted windows).
      width: channels the blocks run at (a 1x1 projection from the 192 latent channels).
      heads: attention heads (divides ``width``).
      window: window side in latent positions.
      mlp_ratio, cpb_hidden: as for :class:`~neurocodec.transforms.swin.SwinV2Block`.
    """

    architecture = "block-swinv2"

    def __init__(self, refine_blocks: int = 2, refine_hidden: int = 192, pixel_hidden: int = 48,
                 hyper_channels: int = 64, hyper_hidden: int = 128, depth: int = 2, width: int = 96,
                 heads: int = 3, window: int = 8, mlp_ratio: float = 2.0, cpb_hidden: int = 64):
        super().__init__(refine_blocks, refine_hidden, pixel_hidden, hyper_channels, hyper_hidden)
        self._config.update(depth=int(depth), width=int(width), heads=int(heads), window=int(window),
                            mlp_ratio=float(mlp_ratio), cpb_hidden=int(cpb_hidden))
        self.add_stages(lambda: ResidualSwinStage(self.latent_channels, int(depth), int(heads), int(window),
                                                  float(mlp_ratio), int(cpb_hidden), width=int(width)))
