"""A realism decoder: texture on top of an MSE decoder's reconstruction, scaled by R.

The MSE decoder's reconstruction ``x0`` is the best guess in the mean; at low rates that
guess is smooth, because the detail the quantiser removed is averaged away. This module
adds a correction trained adversarially (``neurocodec.train.realism``) with the encoder,
the prior and the MSE decoder frozen, so the bitstream is unchanged (MS-ILLM's recipe),
and conditioned on a realism value R in [0, 1] (CRDR's single-model trade-off):

    x_R = x0 + R * correction(x0, y_hat, quality, R, noise)

At R = 0 the product is exactly zero, so ``x_R`` is ``x0``: one stream decodes to today's
pixels or to a realistic version of them. The codec does not even run this module at R = 0.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def texture_noise(batch: int, height: int, width: int, channels: int, seed: int = 0) -> torch.Tensor:
    """Deterministic uniform noise in [-1, 1), float32 (batch, channels, height, width).

    Seeded so that a stream decodes to the same pixels every time (torch's CPU generator
    gives the same numbers on every machine for a seed).
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, height, width, generator=generator) * 2 - 1


class RealismSynthesis(nn.Module):
    """Correction network of the realism decoder, working at H/2 on 2x2 space-to-depth pixels.

    Inputs, all for the same (padded) image:
      x0: the MSE decoder's reconstruction, float32 (B, 3, H, W), H and W multiples of 8.
      y_hat: the scaled, dequantised latents the prior decoded, float32 (B, C, H/8, W/8):
        they say where the quantiser left detail out (coefficients at zero).
      quality: float32 (B,), in [1, 8].
      realism: float32 (B,), in [0, 1].
      noise: float32 (B, noise_channels, H/2, W/2) (:func:`texture_noise`): a source of
        texture that the latents do not determine.
    Output: ``x_R`` float32 (B, 3, H, W), not clamped.

    Args:
      latent_channels: C, channels of y_hat (192 for ``block-hyperprior``).
      hidden: channels of the 3x3 convolutions at H/2.
      latent_features: channels the latents contribute at H/2 (after a 1x1 convolution at
        H/8 and a 4x4 depth-to-space).
      noise_channels: channels of the noise input.
      depth: 3x3 convolutions between the first and the last.
    """

    def __init__(self, latent_channels: int = 192, hidden: int = 48, latent_features: int = 16,
                 noise_channels: int = 4, depth: int = 2):
        super().__init__()
        self._config = dict(latent_channels=latent_channels, hidden=hidden, latent_features=latent_features,
                            noise_channels=noise_channels, depth=depth)
        self.noise_channels = noise_channels
        self.latent_in = nn.Conv2d(latent_channels, latent_features * 16, 1)
        self.first = nn.Conv2d(12 + latent_features + noise_channels, hidden, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(hidden, hidden, 3, padding=1) for _ in range(depth))
        # (R, quality) -> a scale and shift per hidden channel of every body layer; zero at
        # initialisation, so conditioning starts neutral.
        self.condition = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.1), nn.Linear(32, 2 * hidden * depth))
        nn.init.zeros_(self.condition[-1].weight)
        nn.init.zeros_(self.condition[-1].bias)
        self.last = nn.Conv2d(hidden, 12, 3, padding=1)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def config(self) -> dict:
        """Constructor arguments (JSON-serialisable)."""
        return dict(self._config)

    def forward(self, x0: torch.Tensor, y_hat: torch.Tensor, quality: torch.Tensor, realism: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
        # Latents span a wide range at high qualities; a signed log keeps the zero / non-zero
        # pattern (what was quantised away) while bounding the input.
        latents = F.pixel_shuffle(self.latent_in(torch.sign(y_hat) * torch.log1p(y_hat.abs())), 4)
        h = torch.cat([F.pixel_unshuffle(x0, 2), latents, noise], dim=1)
        h = F.leaky_relu(self.first(h), 0.1)
        condition = torch.stack([realism, (quality - 1.0) / 7.0], dim=1).to(h.dtype)
        film = self.condition(condition).view(h.shape[0], len(self.body), 2, -1, 1, 1)
        for i, conv in enumerate(self.body):
            h = F.leaky_relu(conv(h) * (1 + film[:, i, 0]) + film[:, i, 1], 0.1)
        correction = F.pixel_shuffle(self.last(h), 2)
        return x0 + realism.to(x0.dtype)[:, None, None, None] * correction
