"""Factorized (non-parametric, per-channel) density for hyper-latents.

The density of each channel is a learned univariate cumulative function built from a
small monotone network (Ballé et al., "Variational image compression with a scale
hyperprior", ICLR 2018, appendix 6.1). Symbols are the integers ``round(z)``; the
probability of symbol ``k`` is ``c(k + 1/2) - c(k - 1/2)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .gaussian import log1mexp



class FactorizedDensity(nn.Module):
    """Per-channel learned density over the real line, discretised to integers.

    Args:
      channels: number of independent channels C.
      filters: widths of the hidden layers of each channel's monotone network.
      init_scale: rough initial width of the densities.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = float(np.log(np.expm1(1.0 / scale / dims[i + 1])))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, values: torch.Tensor) -> torch.Tensor:
        """Logit of the cumulative function.

        Args:
          values: float (C, 1, N) points per channel.
        Returns:
          float (C, 1, N).
        """
        h = values
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            h = torch.matmul(F.softplus(matrix), h) + bias
            if i < len(self.factors):
                h = h + torch.tanh(self.factors[i]) * torch.tanh(h)
        return h

    def bits(self, z: torch.Tensor) -> torch.Tensor:
        """Information content (bits) of the unit interval centred on each value.

        Args:
          z: float32 (B, C, H, W) (noisy or rounded hyper-latents).
        Returns:
          float32 (B, C, H, W), ``-log2 P`` computed in log space (finite, with gradients).
        """
        b, c, h, w = z.shape
        flat = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self.logits_cdf(flat - 0.5)
        upper = self.logits_cdf(flat + 0.5)
        # Evaluate on the side of the median where the sigmoid is not saturated:
        # P = sigmoid(hi) - sigmoid(lo) with hi >= lo after the sign flip.
        sign = -torch.sign(lower + upper).detach()
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        a, b_ = sign * upper, sign * lower
        hi, lo = torch.maximum(a, b_), torch.minimum(a, b_)
        log_p = F.logsigmoid(hi) + log1mexp(F.logsigmoid(lo) - F.logsigmoid(hi))
        bits = -log_p / math.log(2.0)
        return bits.reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def pmfs(self, support: int = 512, tail_mass: float = 1e-7) -> tuple[list[np.ndarray], np.ndarray]:
        """Discretised probability tables for export.

        Args:
          support: symbols are searched in ``[-support, support]``.
          tail_mass: probability left to the escape mechanism on each side.
        Returns:
          (pmfs, minima): one float64 pmf per channel over a contiguous symbol range,
          and int32 (C,) the symbol value of each pmf's first entry.
        """
        grid = torch.arange(-support, support + 1, dtype=torch.float64)
        flat = grid.to(self.matrices[0].dtype).expand(self.channels, 1, -1)
        lower = self.logits_cdf(flat - 0.5).double()
        upper = self.logits_cdf(flat + 0.5).double()
        sign = -torch.sign(lower + upper)
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))[:, 0, :].numpy()
        pmfs, minima = [], []
        for row in p:
            cdf = np.cumsum(row) / max(row.sum(), 1e-300)
            first = int(np.searchsorted(cdf, tail_mass))
            last = int(np.searchsorted(cdf, 1.0 - tail_mass))
            last = min(max(last, first), len(row) - 1)
            pmfs.append(row[first:last + 1].astype(np.float64))
            minima.append(first - support)
        return pmfs, np.asarray(minima, dtype=np.int32)
