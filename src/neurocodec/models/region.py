"""``region-hyperprior``: the conv/GDN codec with region-adaptive blocks (after SegPIC).

SegPIC (Liu et al., "Region-Adaptive Transform with Segmentation Prior for Image
Compression", ECCV 2024) adapts its transforms per region: convolutions whose kernels, and
an affine modulation (the scale affine layer, SAL) whose scale and shift, are predicted from
each region's mean feature. Its regions are segmentation masks, used as privileged
information in training; without masks it uses a grid.

Here ``conv-hyperprior``'s transforms get a
:class:`~neurocodec.transforms.region.RegionAdaptiveBlock` at chosen resolutions (default:
H/4 and the latents at H/16, where SegPIC puts its region-adaptive transforms), at the
mirrored places in analysis and synthesis, with the same fixed-point mean-scale hyperprior.

**Regions at coding time** are a fixed grid of ``region_size`` x ``region_size`` image
pixels (``region_size / s`` feature positions at H/s; partial cells at the right and
bottom). The synthesis pools the features it computes from the decoded latents over that
grid, so the decoder needs nothing the stream does not carry: not the masks, not the
encoder's region centres (SegPIC transmits those as extra side information; here they are
recomputed from ``y_hat``, which costs no bits).

**Masks as privileged information.** The training face takes an optional ``masks``
argument, integer label maps (B, H, W) at image resolution: ``model(x, quality,
masks=labels)``. Every stage, in analysis and synthesis, then pools over the mask's regions
(each distinct label of an image is one region) instead of the grid cells. Coding never
uses masks. See docs/transforms.md for how to train with them.

``block-region`` (:class:`BlockRegion`) puts region-adaptive blocks into the trained
default instead: ``block-hyperprior`` with a zero-initialised region-adaptive block (grid
form) on each side of quantisation, so that it starts exactly as the default.
"""

from __future__ import annotations

import torch

from ..transforms.region import RegionAdaptiveBlock, RegionPartition
from .block_staged import StagedBlockHyperprior
from .outputs import ModelOutput
from .staged import SCALES, StagedConvHyperprior


class RegionHyperprior(StagedConvHyperprior):
    """Conv/GDN transforms with region-adaptive blocks (RAT + SAL), and the mean-scale hyperprior.

    Args:
      channels: N, channels of the hidden feature maps.
      latent_channels: M, channels of y (at H/16).
      hyper_channels: channels of z.
      scales: resolutions (2, 4, 8 or 16: the block runs at H/s) that get a region-adaptive
        block, in analysis and, mirrored, in synthesis.
      region_size: side of the grid cells in image pixels (a multiple of 16, so a cell is a
        whole number of positions at every resolution).
      hidden: width of the networks predicting the per-region kernels and affine parameters.
    """

    architecture = "region-hyperprior"

    def __init__(self, channels: int = 64, latent_channels: int = 96, hyper_channels: int = 64,
                 scales: tuple[int, ...] = (4, 16), region_size: int = 64, hidden: int = 64):
        super().__init__(channels, latent_channels, hyper_channels)
        scales = sorted({int(s) for s in scales})
        if not set(scales) <= set(SCALES):
            raise ValueError(f"scales must be among {SCALES}, got {scales}")
        if region_size < 16 or region_size % 16:
            raise ValueError(f"region_size must be a positive multiple of 16 pixels, got {region_size}")
        self._config.update(scales=scales, region_size=int(region_size), hidden=int(hidden))
        for scale in scales:
            for stages in (self.analysis_stages, self.synthesis_stages):
                stages[str(scale)] = RegionAdaptiveBlock(self.stage_channels(scale), hidden)
        self._masks: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, quality: torch.Tensor, rate_proxy: str = "noise",
                generator: torch.Generator | None = None, masks: torch.Tensor | None = None) -> ModelOutput:
        """Training face of :meth:`VariableRateCodec.forward`; ``masks``: optional integer
        (B, H, W) (or (B, 1, H, W)) region labels of ``x``, privileged information that
        replaces the grid in every stage."""
        if masks is None:
            return super().forward(x, quality, rate_proxy, generator)
        self._masks = self._check_masks(masks, x)
        try:
            return super().forward(x, quality, rate_proxy, generator)
        finally:
            self._masks = None

    @staticmethod
    def _check_masks(masks: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        integer = isinstance(masks, torch.Tensor) and not (masks.is_floating_point() or masks.is_complex()
                                                           or masks.dtype == torch.bool)
        if not integer:
            raise ValueError("masks must be an integer tensor of region labels (B, H, W)")
        if masks.ndim == 4 and masks.shape[1] == 1:
            masks = masks[:, 0]
        if masks.ndim != 3 or masks.shape != (x.shape[0], *x.shape[2:]):
            raise ValueError(f"masks must have shape (B, H, W) = {(x.shape[0], *x.shape[2:])}, "
                             f"got {tuple(masks.shape)}")
        return masks

    def regions(self, height: int, width: int, scale: int) -> RegionPartition:
        """The partition of a (height, width) map at H/``scale``: the grid, or the masks of
        the current training call."""
        if self._masks is not None:
            return RegionPartition.from_masks(self._masks, height, width)
        return RegionPartition.grid(height, width, self._config["region_size"] // scale)

    def run_stage(self, stage, h: torch.Tensor, scale: int, side: str) -> torch.Tensor:
        return stage(h, self.regions(h.shape[2], h.shape[3], scale))


class BlockRegion(StagedBlockHyperprior):
    """``block-hyperprior`` with a zero-initialised region-adaptive block on each side.

    The blocks (:class:`~neurocodec.transforms.region.RegionAdaptiveBlock`: a depthwise
    convolution whose kernel is predicted per region, then the scale affine layer, SAL)
    run on the 192 DCT channels at H/8, after the analysis refinement and before the
    synthesis refinement (:class:`~neurocodec.models.block_staged.StagedBlockHyperprior`).
    Their regions are the grid of ``region_size`` x ``region_size`` image pixels (grid
    form), on both sides, so the decoder needs nothing the stream does not carry; the
    masks of ``region-hyperprior``'s training face are not offered here.

    Args:
      refine_blocks, refine_hidden, pixel_hidden, hyper_channels, hyper_hidden: as for
        :class:`~neurocodec.models.hyperprior.BlockHyperprior` (give the parent weight
        file's values to warm-start from it).
      region_size: side of the grid cells in pixels (a positive multiple of 8: whole
        latent positions at H/8).
      hidden: width of the networks predicting the per-region kernels and affine parameters.
    """

    architecture = "block-region"

    def __init__(self, refine_blocks: int = 2, refine_hidden: int = 192, pixel_hidden: int = 48,
                 hyper_channels: int = 64, hyper_hidden: int = 128, region_size: int = 64, hidden: int = 64):
        super().__init__(refine_blocks, refine_hidden, pixel_hidden, hyper_channels, hyper_hidden)
        if region_size < 8 or region_size % 8:
            raise ValueError(f"region_size must be a positive multiple of 8 pixels, got {region_size}")
        self._config.update(region_size=int(region_size), hidden=int(hidden))
        self.add_stages(lambda: RegionAdaptiveBlock(self.latent_channels, int(hidden)))

    def run_stage(self, stage, h: torch.Tensor) -> torch.Tensor:
        cell = self._config["region_size"] // 8     # the stages run at H/8
        return stage(h, RegionPartition.grid(h.shape[2], h.shape[3], cell))
