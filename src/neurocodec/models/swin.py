"""``swinv2-hyperprior``: the conv/GDN codec with residual SwinV2 stages (after S2LIC).

S2LIC (Wang et al., "S2LIC: Learned image compression with the SwinV2 block, Adaptive
Channel-wise and Global-inter Attention Context") builds its transforms from strided
convolutions with groups of SwinV2 blocks between them. Here the transforms of
``conv-hyperprior`` (four stride-2 5x5 convolutions with GDN each side, latents at H/16)
get a residual group of SwinV2 blocks (:class:`~neurocodec.transforms.swin.ResidualSwinStage`)
at chosen resolutions, at the mirrored places in analysis and synthesis; the entropy
model is the same fixed-point mean-scale hyperprior (S2LIC's channel-wise and global
attention context models are not part of this architecture).

:class:`StagedConvHyperprior` is the shared mechanism: ``conv-hyperprior``'s layers, with
their parameter names, and a stage (any module) inserted per resolution. ``region-hyperprior``
uses it too.
"""

from __future__ import annotations

import torch
from torch import nn

from ..transforms.swin import ResidualSwinStage
from .hyperprior import ConvHyperprior

# Resolutions (downsampling factors) a stage can sit at, and where they are in the layer
# lists of ConvHyperprior: analysis_net[i] ends at H / ANALYSIS_POINTS[i] (after its GDN,
# or after the last convolution at H/16); synthesis stages run on the input at H/16 and
# after synthesis_net[i] (after its inverse GDN).
SCALES = (2, 4, 8, 16)
ANALYSIS_POINTS = {1: 2, 3: 4, 5: 8, 6: 16}
SYNTHESIS_POINTS = {1: 8, 3: 4, 5: 2}


class StagedConvHyperprior(ConvHyperprior):
    """``conv-hyperprior`` with extra stages inserted at some resolutions.

    Subclasses fill ``analysis_stages`` and ``synthesis_stages`` (``nn.ModuleDict`` keyed by
    the downsampling factor as a string: "2", "4", "8", "16"), each stage mapping
    (B, C, H/s, W/s) to the same shape, with C = ``channels`` (``latent_channels`` at 16).
    The parameters of ``conv-hyperprior`` keep their names, so a ``conv-hyperprior`` weight
    file warm-starts everything but the stages (``TrainConfig.init_from``); stages that
    start as the identity make the model start exactly as that codec.
    """

    warm_start_fresh = ("analysis_stages.", "synthesis_stages.")

    def __init__(self, channels: int = 64, latent_channels: int = 96, hyper_channels: int = 64):
        super().__init__(channels, latent_channels, hyper_channels)
        assert len(self.analysis_net) == 7 and len(self.synthesis_net) == 7, "ConvHyperprior layout changed"
        self.analysis_stages = nn.ModuleDict()
        self.synthesis_stages = nn.ModuleDict()

    def stage_channels(self, scale: int) -> int:
        """Channels of the feature map at H / ``scale``."""
        return self.latent_channels if scale == 16 else self._config["channels"]

    def run_stage(self, stage: nn.Module, h: torch.Tensor, scale: int, side: str) -> torch.Tensor:
        """Apply one stage (hook for stages that need more than the feature map)."""
        return stage(h)

    def _maybe_stage(self, stages: nn.ModuleDict, h: torch.Tensor, scale: int, side: str) -> torch.Tensor:
        key = str(scale)
        return self.run_stage(stages[key], h, scale, side) if key in stages else h

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], H and W multiples of 16 -> (B, M, H/16, W/16)."""
        h = x - 0.5
        for i, layer in enumerate(self.analysis_net):
            h = layer(h)
            if i in ANALYSIS_POINTS:
                h = self._maybe_stage(self.analysis_stages, h, ANALYSIS_POINTS[i], "analysis")
        return h

    def synthesis(self, y_hat: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
        """(B, M, H/16, W/16), quality (B,) -> (B, 3, H, W), not clamped."""
        h = self._maybe_stage(self.synthesis_stages, y_hat, 16, "synthesis")
        for i, layer in enumerate(self.synthesis_net):
            h = layer(h)
            if i in SYNTHESIS_POINTS:
                h = self._maybe_stage(self.synthesis_stages, h, SYNTHESIS_POINTS[i], "synthesis")
        return h + 0.5


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
