"""Region-adaptive transform with the scale affine layer (after SegPIC, Liu et al., ECCV 2024).

SegPIC adapts the transform to the regions of an image: features are averaged over each
region (a "region centre"), and from the centres it derives convolution kernels and an
affine modulation (the scale affine layer, SAL) that differ from region to region. The
paper's regions are class-agnostic segmentation masks, used as privileged information
(available when training, not when coding); without masks it falls back to a grid.

Here a region partition (:class:`RegionPartition`) is either

* a **grid** of square cells of ``cell`` feature pixels (partial cells at the right and
  bottom edges): needs nothing but the feature map's size, so a decoder can build it from
  the decoded latents alone. This is what coding always uses;
* **masks**: an integer label map per image (any label values; each distinct value of an
  image is one region, wherever its pixels are). Training only.

and :class:`RegionAdaptiveBlock` = region-adaptive depthwise convolution (kernels predicted
per region from the region centres) in a residual branch, followed by the SAL. Both parts
start as the identity (zero-initialised last layers). Everything is float and runs inside
the transforms; nothing here decides a coded symbol's probability.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class RegionPartition:
    """Which region each position of a feature map belongs to.

    Build with :meth:`grid` or :meth:`from_masks`; then :meth:`means` pools features per
    region and :meth:`expand` paints per-region values back onto the map.
    """

    def __init__(self, height: int, width: int, cell: int | None = None, onehot: torch.Tensor | None = None):
        self.height, self.width, self.cell, self.onehot = height, width, cell, onehot

    @classmethod
    def grid(cls, height: int, width: int, cell: int) -> "RegionPartition":
        """Square cells of ``cell`` x ``cell`` positions, the last row / column possibly smaller."""
        if cell < 1:
            raise ValueError(f"grid cell must be a positive number of positions, got {cell}")
        return cls(height, width, cell=int(cell))

    @classmethod
    def from_masks(cls, masks: torch.Tensor, height: int, width: int) -> "RegionPartition":
        """Regions of label maps, resampled to a ``height`` x ``width`` feature map.

        Args:
          masks: integer (B, H0, W0) label maps at image resolution, H0 and W0 multiples of
            ``height`` and ``width``; each map's distinct values are its regions.
        Resampling takes the label at the centre of each ``H0/height`` x ``W0/width`` block
        (nearest neighbour: labels are not averaged).
        """
        b, h0, w0 = masks.shape
        if h0 % height or w0 % width:
            raise ValueError(f"mask size {h0}x{w0} is not a multiple of the feature size {height}x{width}")
        sy, sx = h0 // height, w0 // width
        labels = masks[:, sy // 2::sy, sx // 2::sx][:, :height, :width].reshape(b, -1)
        ids = [torch.unique(row, return_inverse=True)[1] for row in labels]
        count = max(int(i.max()) + 1 for i in ids)
        onehot = torch.zeros(b, count, height * width)
        for k, i in enumerate(ids):
            onehot[k].scatter_(0, i[None], 1.0)
        return cls(height, width, onehot=onehot)

    @property
    def is_grid(self) -> bool:
        return self.onehot is None

    def means(self, x: torch.Tensor) -> torch.Tensor:
        """Mean feature of every region.

        Args:
          x: float32 (B, C, height, width).
        Returns:
          float32 (B, C, Rh, Rw) for a grid (cells in their grid layout), float32 (B, C, R, 1)
          for masks (R: the largest region count of the batch; an image's unused rows are 0).
        """
        if self.is_grid:
            # ceil_mode averages the partial edge cells over their real positions only
            return F.avg_pool2d(x, self.cell, self.cell, ceil_mode=True)
        onehot = self.onehot.to(x)
        sums = torch.einsum("brn,bcn->bcr", onehot, x.flatten(2))
        return (sums / onehot.sum(-1).clamp_min(1.0)[:, None, :]).unsqueeze(-1)

    def expand(self, values: torch.Tensor) -> torch.Tensor:
        """Per-region values (as returned by :meth:`means`, any channel count K) ->
        float32 (B, K, height, width), each position taking its region's value."""
        if self.is_grid:
            full = values.repeat_interleave(self.cell, dim=2).repeat_interleave(self.cell, dim=3)
            return full[:, :, :self.height, :self.width]
        out = torch.einsum("bkr,brn->bkn", values[..., 0], self.onehot.to(values))
        return out.view(values.shape[0], values.shape[1], self.height, self.width)


class ScaleAffineLayer(nn.Module):
    """SAL: ``x * (1 + scale_r) + shift_r`` with (scale, shift) per region and channel.

    The parameters of region r are predicted by a two-layer 1x1 network from the region's
    mean feature and the image's mean feature (what the region looks like, and how it
    differs from the rest). The last layer is zero-initialised: the SAL starts as the identity.

    Args:
      channels: C.
      hidden: width of the predictor.
    Shapes: x float32 (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2 * channels, hidden, 1), nn.GELU(), nn.Conv2d(hidden, 2 * channels, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def parameters_for(self, x: torch.Tensor, regions: RegionPartition) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) per region, each float32 shaped like ``regions.means(x)``."""
        centres = regions.means(x)
        context = x.mean(dim=(2, 3), keepdim=True).expand_as(centres)
        return self.net(torch.cat([centres, context], dim=1)).chunk(2, dim=1)

    def forward(self, x: torch.Tensor, regions: RegionPartition) -> torch.Tensor:
        scale, shift = self.parameters_for(x, regions)
        return x * (1.0 + regions.expand(scale)) + regions.expand(shift)


class RegionAdaptiveConv(nn.Module):
    """Depthwise k x k convolution whose kernel differs per region.

    Each region's kernel (C x k x k) is predicted by a two-layer 1x1 network from its mean
    feature and the image's mean feature; the predictor's output bias is the part of the
    kernel shared by all regions. Shapes: (B, C, H, W) -> (B, C, H, W) (zero padding).
    """

    def __init__(self, channels: int, hidden: int = 64, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.kernel_size = kernel_size
        taps = kernel_size * kernel_size
        self.net = nn.Sequential(nn.Conv2d(2 * channels, hidden, 1), nn.GELU(), nn.Conv2d(hidden, channels * taps, 1))
        with torch.no_grad():  # start near a shared, randomly initialised depthwise kernel
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.normal_(0.0, 1.0 / kernel_size)

    def forward(self, x: torch.Tensor, regions: RegionPartition) -> torch.Tensor:
        b, c, h, w = x.shape
        k = self.kernel_size
        centres = regions.means(x)
        context = x.mean(dim=(2, 3), keepdim=True).expand_as(centres)
        kernels = regions.expand(self.net(torch.cat([centres, context], dim=1)))   # (B, C * k * k, H, W)
        patches = F.unfold(x, k, padding=k // 2).view(b, c, k * k, h, w)
        return (patches * kernels.view(b, c, k * k, h, w)).sum(dim=2)


class RegionAdaptiveBlock(nn.Module):
    """Region-adaptive transform: ``SAL(x + pw(act(RAConv(x))))``, identity at initialisation.

    Args:
      channels: C.
      hidden: width of the kernel and SAL predictors.
    Shapes: x float32 (B, C, H, W), a :class:`RegionPartition` of (H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        self.conv = RegionAdaptiveConv(channels, hidden)
        self.pointwise = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.pointwise.weight)
        nn.init.zeros_(self.pointwise.bias)
        self.sal = ScaleAffineLayer(channels, hidden)

    def forward(self, x: torch.Tensor, regions: RegionPartition) -> torch.Tensor:
        x = x + self.pointwise(F.gelu(self.conv(x, regions)))
        return self.sal(x, regions)
