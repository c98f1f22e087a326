"""Synthesis of the overfitted codec: a latent pyramid upsampled to full resolution, a 1x1
convolution network, and a 3x3 refinement.

Shapes: a pyramid is a list of L tensors (1, 1, h_l, w_l) with ``h_l = ceil(H / 2**l)`` (and
likewise for ``w_l``); :func:`upsample_pyramid` stacks them into (1, L, H, W) and
:class:`PyramidSynthesis` maps that to an image (1, 3, H, W). Float throughout: drift of a
float kernel changes a decoded pixel by at most a level, never a symbol (DESIGN.md, decision 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def level_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """[(ceil(H / 2**l), ceil(W / 2**l)) for l in range(levels)]."""
    return [(-(-height // 2**l), -(-width // 2**l)) for l in range(levels)]


def upsample_pyramid(levels: list[torch.Tensor]) -> torch.Tensor:
    """Stack a pyramid at full resolution, coarse to fine: the running stack is upsampled 2x
    (bilinear, half-pixel centres) and cropped to the next finer level, which is prepended.

    Args:
      levels: L float tensors (1, 1, h_l, w_l), level 0 the finest.
    Returns:
      float (1, L, h_0, w_0), channel l from level l.
    """
    x = levels[-1]
    for level in reversed(levels[:-1]):
        h, w = level.shape[-2:]
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)[:, :, :h, :w]
        x = torch.cat([level, x], dim=1)
    return x


def synthesise(z: torch.Tensor, mlp: list[torch.Tensor], refine: list[torch.Tensor],
               channels_last_refine: bool = False) -> torch.Tensor:
    """The synthesis as a function of its parameters (what a decoder runs with the values it
    decoded; no module is built, no random state touched).

    Args:
      z: float (1, L, H, W), the stacked pyramid.
      mlp: weight (hidden, L, 1, 1), bias, weight (hidden, hidden, 1, 1), bias, weight
        (3, hidden, 1, 1), bias.
      refine: weight (r, 3, 3, 3), bias (r,), weight (3, r, 3, 3), bias (3,).
      channels_last_refine: run the refinement's 3x3 convolutions on a channels-last copy
        (the encoder's training face: on a CPU, about 4x faster with its backward for these
        few channels; the float results may differ in the last bits, so the coding face, what
        decoders run, keeps the default).
    Returns:
      float (1, 3, H, W), not clamped.
    """
    h = F.relu(F.conv2d(z, mlp[0], mlp[1]))
    h = F.relu(F.conv2d(h, mlp[2], mlp[3]))
    x = F.conv2d(h, mlp[4], mlp[5])
    if channels_last_refine:
        x = x.contiguous(memory_format=torch.channels_last)
    return x + F.conv2d(F.relu(F.conv2d(x, refine[0], refine[1], padding=1)), refine[2], refine[3], padding=1)


class PyramidSynthesis(nn.Module):
    """``refine(mlp(z))``: a 1x1 MLP ``L -> hidden -> hidden -> 3`` (ReLU), then
    ``x + conv3x3(relu(conv3x3(x)))`` with ``refine_hidden`` channels, zero-initialised so it
    starts as the identity.

    Args:
      levels: input channels L.
      hidden, refine_hidden: widths.
    """

    def __init__(self, levels: int = 7, hidden: int = 16, refine_hidden: int = 4):
        super().__init__()
        self.mlp = nn.ModuleList([nn.Conv2d(levels, hidden, 1), nn.Conv2d(hidden, hidden, 1), nn.Conv2d(hidden, 3, 1)])
        self.refine = nn.ModuleList([nn.Conv2d(3, refine_hidden, 3, padding=1), nn.Conv2d(refine_hidden, 3, 3, padding=1)])
        with torch.no_grad():
            self.mlp[2].bias.fill_(0.5)
            self.refine[1].weight.zero_()
            self.refine[1].bias.zero_()

    def forward(self, z: torch.Tensor, channels_last_refine: bool = False) -> torch.Tensor:
        """z float (1, L, H, W) -> image float (1, 3, H, W) (not clamped); see :func:`synthesise`."""
        return synthesise(z, self.mlp_tensors(), self.refine_tensors(), channels_last_refine)

    def mlp_tensors(self) -> list[torch.Tensor]:
        """Parameters of the 1x1 network, in stream order (weight, bias per layer)."""
        return [t for conv in self.mlp for t in (conv.weight, conv.bias)]

    def refine_tensors(self) -> list[torch.Tensor]:
        """Parameters of the refinement, in stream order."""
        return [t for conv in self.refine for t in (conv.weight, conv.bias)]

    def macs_per_pixel(self) -> int:
        """Multiplications per output pixel of :meth:`forward`."""
        ins = [c.in_channels * c.out_channels * c.kernel_size[0] * c.kernel_size[1] for c in [*self.mlp, *self.refine]]
        return sum(ins)
