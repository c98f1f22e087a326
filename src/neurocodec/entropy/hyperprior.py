"""Mean-scale hyperprior with a fixed-point prior path.

The entropy model of Minnen, Ballé & Toderici (NeurIPS 2018) without the autoregressive
context: a hyper-analysis ``h_a`` summarises the latents ``y`` into hyper-latents ``z``,
coded under a :class:`FactorizedDensity`; a hyper-synthesis ``h_s`` maps ``round(z)`` to a
mean and a scale-table index for every latent element.

``h_s`` is a fixed-point network (:mod:`neurocodec.entropy.fixedpoint`): at coding time it
runs in exact integer arithmetic, so the encoder and any decoder derive identical means
and table indexes from identical ``z`` symbols. Means live on a grid of ``2**-mean_bits``,
so ``y_hat = symbol + mean`` is exact in float32. ``h_a`` stays float: it runs only in the
encoder and its output is transmitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .factorized import FactorizedDensity
from .fixedpoint import FixedPointConv, fake_requantise, requantise_exact, round_ste
from .gaussian import gaussian_bits, gaussian_pmfs, scale_table

Z_LIMIT = 2**15  # hyper-latents are clamped here so fixed-point sums stay below 2**53
# Latents are scaled for unit quantisation steps (DC coefficients reach hundreds); the
# hyper-analysis sees them scaled down so its activations, and Adam steps, stay O(1).
HYPER_INPUT_SCALE = 1.0 / 16.0


@dataclass(frozen=True)
class HyperSymbols:
    """What the coder needs for one image (batch of one).

    Attributes:
      z_symbols: int32 (1, Cz, h, w).
      y_symbols: int32 (1, C, H, W).
      y_indexes: int32 (1, C, H, W) scale-table indexes.
      y_hat: float32 (1, C, H, W) dequantised latents (``symbol + mean``).
    """

    z_symbols: np.ndarray
    y_symbols: np.ndarray
    y_indexes: np.ndarray
    y_hat: torch.Tensor


class FixedPointHyperSynthesis(nn.Module):
    """``round(z)`` -> (mean, scale index) through fixed-point transposed convolutions.

    Args:
      hyper_channels: Cz, channels of z.
      hidden: channels of the two hidden layers.
      latent_channels: C, channels of y; the output has 2C channels (means, indexes).
      num_scales: size of the scale table; indexes are clamped to ``[0, num_scales)``.
      mean_bits: fractional bits of the mean grid.
      act_bits: fractional bits of hidden activations; ``act_max`` their upper clamp.
    """

    def __init__(self, hyper_channels: int, hidden: int, latent_channels: int, num_scales: int,
                 mean_bits: int = 0, act_bits: int = 8, act_max: float = 255.0, weight_bits: int = 12):
        super().__init__()
        self.latent_channels = latent_channels
        self.num_scales = num_scales
        self.mean_bits = mean_bits
        self.act_bits = act_bits
        self.act_max = act_max
        self.layers = nn.ModuleList([
            FixedPointConv(hyper_channels, hidden, 5, 2, transposed=True, weight_bits=weight_bits, act_bits=0),
            FixedPointConv(hidden, hidden, 5, 2, transposed=True, weight_bits=weight_bits, act_bits=act_bits),
            FixedPointConv(hidden, 2 * latent_channels, 3, 1, weight_bits=weight_bits, act_bits=act_bits),
        ])
        with torch.no_grad():
            # Means start at exactly 0: a random mean shifts the rounding grid and adds
            # quantisation noise to every near-zero latent before the prior has learned.
            self.layers[-1].weight[:, :latent_channels].zero_()
            # Indexes start in the middle of the table.
            self.layers[-1].weight[:, latent_channels:].mul_(0.1)
            self.layers[-1].bias[latent_channels:] = num_scales / 2

    @property
    def mean_limit(self) -> float:
        return float(2**20)

    def forward(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training face.

        Args:
          z_hat: float32 (B, Cz, h, w), integers (straight-through rounded).
        Returns:
          (mean, index): float32 (B, C, 4h, 4w) each; the mean on the mean grid and the index an
          integer in ``[0, num_scales)``, both with straight-through gradients.
        """
        h = z_hat
        for layer in self.layers[:-1]:
            h = fake_requantise(layer(h), self.act_bits, 0.0, self.act_max)
        out = self.layers[-1](h)
        mean_raw, index_raw = out.chunk(2, dim=1)
        mean = fake_requantise(mean_raw, self.mean_bits, -self.mean_limit, self.mean_limit)
        index = torch.clamp(round_ste(index_raw), 0, self.num_scales - 1)
        return mean, index

    def integer_parameters(self) -> dict[str, torch.Tensor]:
        """The integer weights (int16) and biases (int64) the exact path uses."""
        params = {}
        for i, layer in enumerate(self.layers):
            params[f"{i}.weight"] = layer.integer_weight().to(torch.int16)  # clamped to 16 bits
            params[f"{i}.bias"] = layer.integer_bias().to(torch.int64)
        return params

    @torch.no_grad()
    def forward_exact(self, z_symbols: torch.Tensor, params: dict[str, torch.Tensor]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coding face: bit-exact on every machine.

        Args:
          z_symbols: integer tensor (B, Cz, h, w).
          params: from :meth:`integer_parameters` (or a weight file).
        Returns:
          (mean, index): mean float64 (B, C, 4h, 4w) on the mean grid; index int64 in
          ``[0, num_scales)``.
        """
        h = torch.clamp(z_symbols.to(torch.float64), -Z_LIMIT, Z_LIMIT)
        act_scale = 2.0**self.act_bits
        for i, layer in enumerate(self.layers):
            acc = layer.forward_exact(h, params[f"{i}.weight"].to(torch.float64),
                                      params[f"{i}.bias"].to(torch.float64))
            if i < len(self.layers) - 1:
                h = requantise_exact(acc, layer.out_bits - self.act_bits, 0.0, self.act_max * act_scale)
        last = self.layers[-1]
        mean_acc, index_acc = acc.chunk(2, dim=1)
        mean_scale = 2.0**self.mean_bits
        mean = requantise_exact(mean_acc, last.out_bits - self.mean_bits,
                                -self.mean_limit * mean_scale, self.mean_limit * mean_scale) / mean_scale
        index = requantise_exact(index_acc, last.out_bits, 0, self.num_scales - 1).to(torch.int64)
        return mean, index


class MeanScaleHyperprior(nn.Module):
    """Entropy model for latents ``y`` (B, C, H, W) with H, W multiples of 4.

    Args:
      latent_channels: C.
      hyper_channels: Cz, channels of z (at H/4, W/4).
      hidden: channels inside ``h_a`` and ``h_s``.
      num_scales: size of the log-spaced scale table (0.11 .. 256).
    """

    def __init__(self, latent_channels: int, hyper_channels: int = 64, hidden: int = 128, num_scales: int = 64):
        super().__init__()
        self.latent_channels = latent_channels
        self.hyper_channels = hyper_channels
        self.hyper_analysis = nn.Sequential(
            nn.Conv2d(latent_channels, hidden, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, hidden, 5, stride=2, padding=2), nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, hyper_channels, 5, stride=2, padding=2),
        )
        self.hyper_synthesis = FixedPointHyperSynthesis(hyper_channels, hidden, latent_channels, num_scales)
        self.z_density = FactorizedDensity(hyper_channels)
        self.register_buffer("scales", torch.tensor(scale_table(num_scales), dtype=torch.float32))
        self.log_scale_min = math.log(float(self.scales[0]))
        self.log_scale_step = math.log(float(self.scales[1] / self.scales[0]))
        # Coding state, filled by update_tables() or by loading a weight file.
        self.y_tables = None
        self.z_tables = None
        self.prior_params: dict[str, torch.Tensor] | None = None

    # -- training face -----------------------------------------------------------
    def forward(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training face.

        Args:
          y: float32 (B, C, H, W) scaled latents.
        Returns:
          dict: ``y_hat`` (B, C, H, W), rounded around the mean with a straight-through
          gradient; ``y_bits`` (B, C, H, W) and ``z_bits`` (B, Cz, H/4, W/4), the information
          content under additive uniform noise (the usual differentiable rate proxy).
        """
        z = self.hyper_analysis(y * HYPER_INPUT_SCALE)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_bits = self.z_density.bits(z_noisy)
        z_hat = torch.clamp(round_ste(z), -Z_LIMIT, Z_LIMIT)
        mean, index = self.hyper_synthesis(z_hat)
        scale = torch.exp(self.log_scale_min + index * self.log_scale_step)
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_bits = gaussian_bits(y_noisy - mean, scale)
        y_hat = mean + round_ste(y - mean)
        return {"y_hat": y_hat, "y_bits": y_bits, "z_bits": z_bits}

    # -- coding face ---------------------------------------------------------------
    @torch.no_grad()
    def update_tables(self) -> None:
        """Build the integer tables and integer prior weights (at export time only)."""
        from ..coding import build_tables

        pmfs, minima = gaussian_pmfs(self.scales.double().numpy())
        self.y_tables = build_tables(pmfs, minima)
        pmfs, minima = self.z_density.pmfs()
        self.z_tables = build_tables(pmfs, minima)
        self.prior_params = self.hyper_synthesis.integer_parameters()

    def _require_tables(self) -> None:
        if self.y_tables is None or self.z_tables is None or self.prior_params is None:
            raise RuntimeError("entropy model has no coding tables: call update_tables() or load a weight file")

    def _prior(self, z_symbols: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        mean, index = self.hyper_synthesis.forward_exact(torch.from_numpy(z_symbols), self.prior_params)
        return mean, index.numpy().astype(np.int32)

    def _z_indexes(self, shape: tuple[int, ...]) -> np.ndarray:
        channel = np.arange(self.hyper_channels, dtype=np.int32).reshape(1, -1, 1, 1)
        return np.ascontiguousarray(np.broadcast_to(channel, shape))

    @torch.no_grad()
    def quantise(self, y: torch.Tensor) -> HyperSymbols:
        """Encoder side: latents -> symbols and table indexes. y float32 (1, C, H, W)."""
        self._require_tables()
        z = self.hyper_analysis(y * HYPER_INPUT_SCALE)
        z_symbols = torch.clamp(torch.round(z), -Z_LIMIT, Z_LIMIT).to(torch.int32).numpy()
        mean, y_indexes = self._prior(z_symbols)
        y_symbols = torch.round(y.double() - mean).to(torch.int32)
        y_hat = (y_symbols.double() + mean).float()
        return HyperSymbols(z_symbols, y_symbols.numpy(), y_indexes, y_hat)

    def encode(self, symbols: HyperSymbols, coder: str = "cpu") -> list[bytes]:
        """Symbols -> [z segment, y segment]."""
        from ..coding import get_backend

        backend = get_backend(coder)
        z_bytes = backend.encode(symbols.z_symbols, self._z_indexes(symbols.z_symbols.shape), self.z_tables)
        y_bytes = backend.encode(symbols.y_symbols, symbols.y_indexes, self.y_tables)
        return [z_bytes, y_bytes]

    @torch.no_grad()
    def decode(self, segments: list[bytes], y_shape: tuple[int, int, int, int], coder: str = "cpu") -> torch.Tensor:
        """[z segment, y segment] -> y_hat float32 ``y_shape`` (1, C, H, W)."""
        from ..coding import get_backend

        self._require_tables()
        backend = get_backend(coder)
        b, c, h, w = y_shape
        z_shape = (b, self.hyper_channels, h // 4, w // 4)
        z_symbols = backend.decode(segments[0], self._z_indexes(z_shape), self.z_tables).reshape(z_shape)
        mean, y_indexes = self._prior(z_symbols)
        y_symbols = backend.decode(segments[1], y_indexes, self.y_tables).reshape(y_shape)
        return (torch.from_numpy(y_symbols).double() + mean).float()
