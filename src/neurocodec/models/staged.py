"""``conv-hyperprior`` with extra stages inserted at chosen resolutions: the mechanism
``swinv2-hyperprior`` and ``region-hyperprior`` share."""

from __future__ import annotations

import torch
from torch import nn

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
