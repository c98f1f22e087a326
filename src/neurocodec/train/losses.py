"""Differentiable distortion measures for training.

``mse`` is the mean squared error on [0, 1] pixels; ``ms_ssim`` is multi-scale SSIM
(Wang et al. 2003: 11-tap Gaussian window, sigma 1.5, five scales with the standard
weights). For training crops smaller than the 161 pixels five valid-mode scales need,
the Gaussian filtering here uses edge-replicating padding, so it is a close training proxy; the
reported metric is :func:`neurocodec.metrics.ms_ssim`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Rate-distortion trade-offs for MS-SSIM training (distortion = lambda * (1 - MS-SSIM)),
# CompressAI's values for qualities 1..8.
MS_SSIM_LAMBDAS = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00)


def _gaussian_window(channels: int, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def _filter(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    pad = window.shape[-1] // 2
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), window, groups=x.shape[1])


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM per sample.

    Args:
      x, y: float32 (B, C, H, W) in [0, 1], H and W >= 16.
    Returns:
      float32 (B,), in (0, 1] for similar images.
    """
    if min(x.shape[-2:]) < 16:
        raise ValueError(f"MS-SSIM needs images of at least 16x16 pixels, got {tuple(x.shape[-2:])}")
    c1, c2 = 0.01**2, 0.03**2
    window = _gaussian_window(x.shape[1]).to(x)
    values = []
    for scale, weight in enumerate(MS_SSIM_WEIGHTS):
        mx, my = _filter(x, window), _filter(y, window)
        sxx = _filter(x * x, window) - mx * mx
        syy = _filter(y * y, window) - my * my
        sxy = _filter(x * y, window) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        if scale < len(MS_SSIM_WEIGHTS) - 1:
            values.append(torch.relu(cs.mean(dim=(2, 3))).mean(dim=1) ** weight)
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        else:
            ssim = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
            values.append(torch.relu(ssim.mean(dim=(2, 3))).mean(dim=1) ** weight)
    return torch.stack(values, dim=0).prod(dim=0)
