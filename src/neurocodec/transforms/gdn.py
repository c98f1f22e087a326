"""Generalized divisive normalization (Ballé et al., ICLR 2016), simplified form.

``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)`` (or its inverse, multiplying), with
``beta`` and ``gamma`` kept non-negative by reparametrisation.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class GDN(nn.Module):
    """GDN / inverse GDN over channels; shape-preserving (B, C, H, W) float32."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self.beta_min = beta_min
        self.beta = nn.Parameter(torch.full((channels,), 0.5413248546129181))  # softplus^-1(1)
        self.gamma = nn.Parameter(gamma_init * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = F.softplus(self.beta) + self.beta_min
        gamma = torch.abs(self.gamma)
        norm = F.conv2d(x * x, gamma.unsqueeze(-1).unsqueeze(-1), beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)
