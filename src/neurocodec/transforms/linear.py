"""Fixed and learned linear transforms: colour transform and orthonormal block DCT.

These give a codec a classical starting point (a JPEG-like transform) that training
then refines, which is far more sample-efficient on a CPU than learning a transform from
random initialisation (see docs/models.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

# Full-range YCbCr (JPEG / ITU-R BT.601), applied to RGB centred on 0.
YCBCR_FROM_RGB = [
    [0.299, 0.587, 0.114],
    [-0.168736, -0.331264, 0.5],
    [0.5, -0.418688, -0.081312],
]


class ColourTransform(nn.Module):
    """Learned 3x3 colour matrix with offset, initialised to YCbCr or its inverse.

    Args:
      inverse: initialise as the inverse (YCbCr -> RGB) and add the 0.5 offset back.

    Shapes: (B, 3, H, W) float32 -> (B, 3, H, W) float32.
    """

    def __init__(self, inverse: bool = False):
        super().__init__()
        matrix = torch.tensor(YCBCR_FROM_RGB, dtype=torch.float64)
        if inverse:
            matrix = torch.linalg.inv(matrix)
        self.inverse = inverse
        self.matrix = nn.Parameter(matrix.float())
        self.offset = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.inverse:
            x = x - 0.5
        y = torch.einsum("ij,bjhw->bihw", self.matrix, x) + self.offset.view(1, 3, 1, 1)
        return y + 0.5 if self.inverse else y


def dct_basis(size: int = 8) -> torch.Tensor:
    """Orthonormal 2-D DCT-II basis, float32 (size*size, 1, size, size), zig-free raster order."""
    n = torch.arange(size, dtype=torch.float64)
    k = n.view(-1, 1)
    basis_1d = torch.cos(math.pi * (2 * n + 1) * k / (2 * size)) * math.sqrt(2.0 / size)
    basis_1d[0] /= math.sqrt(2.0)
    basis_2d = torch.einsum("ux,vy->uvxy", basis_1d, basis_1d).reshape(size * size, 1, size, size)
    return basis_2d.float()


class BlockDCT(nn.Module):
    """Orthonormal block DCT per channel, as a strided convolution, and its exact inverse.

    ``forward``: (B, C, H, W) -> (B, C*size*size, H/size, W/size); channel ``c*size*size + u*size + v``
    holds frequency (u, v) of input channel c. ``inverse`` undoes it (up to float rounding).
    H and W must be multiples of ``size``.
    """

    def __init__(self, channels: int = 3, size: int = 8):
        super().__init__()
        self.channels = channels
        self.size = size
        self.register_buffer("basis", dct_basis(size).repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.basis, stride=self.size, groups=self.channels)

    def inverse(self, coefficients: torch.Tensor) -> torch.Tensor:
        # The blocks do not overlap, so this is one (size^2 x size^2) matrix product per
        # block; as a batched matmul it is several times faster on CPU than the equivalent
        # grouped transposed convolution.
        b, _, h, w = coefficients.shape
        k = self.size
        basis = self.basis[:k * k, 0].reshape(k * k, k * k)  # (frequency, pixel)
        blocks = torch.matmul(basis.t(), coefficients.reshape(b * self.channels, k * k, h * w))
        return (blocks.view(b, self.channels, k, k, h, w).permute(0, 1, 4, 2, 5, 3)
                .reshape(b, self.channels, h * k, w * k))
