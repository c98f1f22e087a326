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
from .fixedpoint import FixedPointConv, fake_requantise, float_requantise, requantise_exact, round_ste
from .gaussian import gaussian_pmfs, residual_bits, scale_table
from .rd_rounding import rd_round

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


# Scale table: log2(scale) = LOG2_SCALE_MIN + index * LOG2_SCALE_STEP; in the exact path
# log-scales are integers in units of 2**-LOG_BITS.
LOG_BITS = 8
LOG2_SCALE_MIN = -3.25
LOG2_SCALE_STEP = 0.125
NUM_SCALES = 96
GAIN_BITS = 16          # fractional bits of the fixed-point gain multiplying the means
# The scale-table step in units of 2**-LOG_BITS is 2**_STEP_BITS (a power of two, which the
# exact index computation relies on: it divides by shifting).
_STEP_BITS = LOG_BITS + int(math.log2(LOG2_SCALE_STEP))
assert 2.0**_STEP_BITS == LOG2_SCALE_STEP * 2**LOG_BITS, "LOG2_SCALE_STEP must be a power of two"
QUALITY_FRACTION_BITS = 16


class FixedPointHyperSynthesis(nn.Module):
    """``round(z)`` -> (mean, scale index) of every latent, quality-aware and exact.

    The network predicts the distribution of the *unscaled* latents: a mean ``m`` on a
    grid of ``2**-mean_bits`` and a log2-scale ``l`` on a grid of ``2**-LOG_BITS``. For
    quality q with per-channel gain ``g`` (latents are coded as ``y * g``) the coded
    distribution has mean ``round(g * m)`` (an integer, so reconstructions do not depend
    on the prior) and log2-scale ``l + log2 g``, which picks the table index. Because
    the gain enters here instead of being learned by the network, one prior serves every
    quality. At coding time ``log2 g`` is a fixed-point integer and ``g`` comes from an
    integer exp2 table, so every step is integer arithmetic.

    Args:
      hyper_channels: Cz, channels of z.
      hidden: channels of the two hidden layers.
      latent_channels: C, channels of y; the output has 2C channels (means, log-scales).
      mean_bits: fractional bits of the unscaled mean grid.
      act_bits: fractional bits of hidden activations; ``act_max`` their upper clamp.
    """

    def __init__(self, hyper_channels: int, hidden: int, latent_channels: int,
                 mean_bits: int = 8, act_bits: int = 8, act_max: float = 255.0, weight_bits: int = 12):
        super().__init__()
        self.latent_channels = latent_channels
        self.num_scales = NUM_SCALES
        self.mean_bits = mean_bits
        self.act_bits = act_bits
        self.act_max = act_max
        self.layers = nn.ModuleList([
            FixedPointConv(hyper_channels, hidden, 5, 2, transposed=True, weight_bits=weight_bits, act_bits=0),
            FixedPointConv(hidden, hidden, 5, 2, transposed=True, weight_bits=weight_bits, act_bits=act_bits),
            FixedPointConv(hidden, 2 * latent_channels, 3, 1, weight_bits=weight_bits, act_bits=act_bits),
        ])
        with torch.no_grad():
            # Means start at exactly 0 (a random mean adds noise to near-zero latents);
            # log-scales start near the typical size of an unscaled coefficient.
            self.layers[-1].weight[:, :latent_channels].zero_()
            self.layers[-1].weight[:, latent_channels:].mul_(0.1)
            self.layers[-1].bias[latent_channels:] = -5.0

    mean_limit = float(2**12)
    log_scale_limit = 32.0

    @property
    def fake_quant(self) -> bool:
        """Whether the training face imposes the fixed-point grids (the default). With
        False it is the same network in plain float (weights, activations, mean and
        log-scale off the grids; the clamps, which are the nonlinearity, and the final
        rounding of means and table indexes stay): a float-trained prior, to be converted
        by :func:`neurocodec.entropy.ptq.quantize_prior`. The coding face is always exact."""
        return self.layers[0].fake_quant

    @fake_quant.setter
    def fake_quant(self, enabled: bool) -> None:
        for layer in self.layers:
            layer.fake_quant = bool(enabled)

    def unscaled(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training face of the network alone (before the quality's gain enters).

        Args:
          z_hat: float32 (B, Cz, h, w), integers (straight-through rounded).
        Returns:
          (mean_u, log_scale_u): float32 (B, C, 4h, 4w) each, the unscaled mean on the
          ``2**-mean_bits`` grid and the log2-scale on the ``2**-LOG_BITS`` grid (clamped as
          in :meth:`unscaled_exact`), with straight-through gradients.
        """
        requantise = fake_requantise if self.fake_quant else float_requantise  # see fake_quant
        h = z_hat
        for layer in self.layers[:-1]:
            h = requantise(layer(h), self.act_bits, 0.0, self.act_max)
        mean_raw, log_scale_raw = self.layers[-1](h).chunk(2, dim=1)
        mean_u = requantise(mean_raw, self.mean_bits, -self.mean_limit, self.mean_limit)
        log_scale_u = requantise(log_scale_raw, LOG_BITS, -self.log_scale_limit, self.log_scale_limit)
        return mean_u, log_scale_u

    def forward(self, z_hat: torch.Tensor, log2_gain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training face.

        Args:
          z_hat: float32 (B, Cz, h, w), integers (straight-through rounded).
          log2_gain: float32 (B, C, 1, 1), log2 of the gains the latents were scaled by.
        Returns:
          (mean, index): float32 (B, C, 4h, 4w) each, integers (the mean of the scaled latents
          and the scale-table index), with straight-through gradients.
        """
        mean_u, log_scale_u = self.unscaled(z_hat)
        return scale_prior(mean_u, log_scale_u, log2_gain, self.num_scales)

    def integer_parameters(self) -> dict[str, torch.Tensor]:
        """The integer weights (int16) and biases (int64) the exact path uses."""
        params = {}
        for i, layer in enumerate(self.layers):
            params[f"{i}.weight"] = layer.integer_weight().to(torch.int16)  # clamped to 16 bits
            params[f"{i}.bias"] = layer.integer_bias().to(torch.int64)
        return params

    @torch.no_grad()
    def unscaled_exact(self, z_symbols: torch.Tensor, params: dict[str, torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coding face of the network alone, bit-exact on every machine.

        Args:
          z_symbols: integer tensor (1, Cz, h, w).
          params: from :meth:`integer_parameters` (as stored in a weight file).
        Returns:
          (mean_u, log_scale_u): int64 (1, C, 4h, 4w) each, in units of ``2**-mean_bits``
          and ``2**-LOG_BITS``, clamped to ``±mean_limit`` and ``±log_scale_limit``.
        """
        h = torch.clamp(z_symbols.to(torch.float64), -Z_LIMIT, Z_LIMIT)
        act_scale = 2.0**self.act_bits
        for i, layer in enumerate(self.layers):
            acc = layer.forward_exact(h, params[f"{i}.weight"].to(torch.float64),
                                      params[f"{i}.bias"].to(torch.float64))
            if i < len(self.layers) - 1:
                h = requantise_exact(acc, layer.out_bits - self.act_bits, 0.0, self.act_max * act_scale)
        last = self.layers[-1]
        mean_acc, log_scale_acc = acc.chunk(2, dim=1)
        mean_u = requantise_exact(mean_acc, last.out_bits - self.mean_bits, -self.mean_limit * 2**self.mean_bits,
                                  self.mean_limit * 2**self.mean_bits).to(torch.int64)
        log_scale_u = requantise_exact(log_scale_acc, last.out_bits - LOG_BITS, -self.log_scale_limit * 2**LOG_BITS,
                                       self.log_scale_limit * 2**LOG_BITS).to(torch.int64)
        return mean_u, log_scale_u

    @torch.no_grad()
    def forward_exact(self, z_symbols: torch.Tensor, params: dict[str, torch.Tensor], log2_gain: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coding face: bit-exact on every machine.

        Args:
          z_symbols: integer tensor (1, Cz, h, w).
          params: from :meth:`integer_parameters` plus ``exp2`` (see :func:`exp2_table`), as
            stored in a weight file.
          log2_gain: int64 (C,), log2 of the gains in units of ``2**-LOG_BITS`` (see
            :func:`quality_log2_gain`).
        Returns:
          (mean, index): int64 (1, C, 4h, 4w) each.
        """
        mean_u, log_scale_u = self.unscaled_exact(z_symbols, params)
        return scale_prior_exact(mean_u, log_scale_u, log2_gain, params["exp2"], self.mean_bits, self.num_scales)


def scale_prior(mean_u: torch.Tensor, log_scale_u: torch.Tensor, log2_gain: torch.Tensor,
                num_scales: int = NUM_SCALES) -> tuple[torch.Tensor, torch.Tensor]:
    """Training face of the quality head: unscaled prediction -> coded mean and table index.

    For latents coded as ``y * g`` the coded distribution has mean ``round(g * mean_u)`` (an
    integer, so reconstructions never depend on the prior) and log2-scale
    ``log_scale_u + log2 g``, which selects the table. Shared by every prior network
    (hyper-synthesis, context models), so one prior serves all qualities.

    Args:
      mean_u, log_scale_u: float32 (B, C, H, W) on their grids (see
        :meth:`FixedPointHyperSynthesis.unscaled`).
      log2_gain: float32 (B, C, 1, 1) (or broadcastable).
    Returns:
      (mean, index): float32 (B, C, H, W), integers, straight-through gradients.
    """
    mean = round_ste(mean_u * torch.exp2(log2_gain))
    position = (log_scale_u + log2_gain - LOG2_SCALE_MIN) / LOG2_SCALE_STEP
    index = torch.clamp(round_ste(position), 0, num_scales - 1)
    return mean, index


def scale_prior_exact(mean_u: torch.Tensor, log_scale_u: torch.Tensor, log2_gain: torch.Tensor,
                      exp2: torch.Tensor, mean_bits: int = 8, num_scales: int = NUM_SCALES
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Coding face of :func:`scale_prior`, integer arithmetic only.

    The table index is ``floor((log_scale_u + log2_gain - log2_scale_min + step/2) / step)``
    clamped to the tables; the mean is ``round(mean_u * gain)`` with ``gain`` from the
    integer exp2 table (:func:`fixed_point_gain`).

    Args:
      mean_u: int64 (1, C, H, W) in units of ``2**-mean_bits``.
      log_scale_u: int64 (1, C, H, W) in units of ``2**-LOG_BITS``.
      log2_gain: integer (C,) in units of ``2**-LOG_BITS`` (:func:`quality_log2_gain`).
      exp2: int64 (2**LOG_BITS,) from :func:`exp2_table` (stored in the weight file).
    Returns:
      (mean, index): int64 (1, C, H, W) each.
    """
    lg = log2_gain.to(torch.int64).view(1, -1, 1, 1)
    # Both divisors are powers of two, so floor division is an arithmetic right shift
    # (exact on int64, and several times faster than a division).
    offset = lg - int(LOG2_SCALE_MIN * 2**LOG_BITS) + (1 << (_STEP_BITS - 1))  # (1, C, 1, 1)
    index = torch.add(log_scale_u, offset).bitwise_right_shift_(_STEP_BITS).clamp_(0, num_scales - 1)
    gain = fixed_point_gain(lg, exp2)           # 2**-GAIN_BITS units
    shift = mean_bits + GAIN_BITS
    mean = torch.mul(mean_u, gain).add_(1 << (shift - 1)).bitwise_right_shift_(shift)
    return mean, index


def exp2_table() -> torch.Tensor:
    """int64 (2**LOG_BITS,): ``round(2**(f / 2**LOG_BITS) * 2**GAIN_BITS)``. Built at export
    and stored in the weight file, so decoders never evaluate exp2 themselves."""
    f = torch.arange(2**LOG_BITS, dtype=torch.float64) / 2**LOG_BITS
    return torch.round(torch.exp2(f) * 2**GAIN_BITS).to(torch.int64)


def fixed_point_gain(log2_gain: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Integer ``2**(log2_gain / 2**LOG_BITS) * 2**GAIN_BITS`` (int64), from the exp2 table."""
    whole = torch.div(log2_gain, 2**LOG_BITS, rounding_mode="floor")
    mantissa = table.to(torch.int64)[log2_gain - whole * 2**LOG_BITS]
    up = torch.clamp(whole, min=0)
    down = torch.clamp(-whole, min=0)
    return torch.div(mantissa * torch.pow(2, up), torch.pow(2, down), rounding_mode="floor")


def quality_log2_gain(table: torch.Tensor, quality: float) -> torch.Tensor:
    """Interpolate integer log2-gains (8, C) at a quality in [1, 8], exactly.

    The fraction ``t = round((q - k) * 2**16)`` is exact for the float32 qualities streams
    store, and the interpolation is integer arithmetic. Returns int64 (C,).
    """
    k = min(max(int(quality), 1), table.shape[0] - 1)
    t = int(round((float(quality) - k) * 2**QUALITY_FRACTION_BITS))
    low, high = table[k - 1].to(torch.int64), table[k].to(torch.int64)
    half = 1 << (QUALITY_FRACTION_BITS - 1)
    return low + torch.div((high - low) * t + half, 1 << QUALITY_FRACTION_BITS, rounding_mode="floor")


class MeanScaleHyperprior(nn.Module):
    """Entropy model for latents ``y`` (B, C, H, W) with H, W multiples of 4.

    Args:
      latent_channels: C.
      hyper_channels: Cz, channels of z (at H/4, W/4).
      hidden: channels inside ``h_a`` and ``h_s``.
    """

    #: :meth:`quantise` accepts a ``distortion_weight`` (rate-distortion rounding).
    rd_rounding = True

    def __init__(self, latent_channels: int, hyper_channels: int = 64, hidden: int = 128):
        super().__init__()
        self.latent_channels = latent_channels
        self.hyper_channels = hyper_channels
        self.hyper_analysis = nn.Sequential(
            nn.Conv2d(latent_channels, hidden, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, hidden, 5, stride=2, padding=2), nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, hyper_channels, 5, stride=2, padding=2),
        )
        self.hyper_synthesis = FixedPointHyperSynthesis(hyper_channels, hidden, latent_channels)
        self.z_density = FactorizedDensity(hyper_channels)
        self.num_segments = 2  # z, y (context models code y in several passes)
        # Training-face rate of y: "noise" (additive uniform noise) or "round" (the coded
        # symbols' bits, straight-through); set from TrainConfig.rate_proxy.
        self.rate_proxy = "noise"
        # Coding state, filled by update_tables() or by loading a weight file.
        self.y_tables = None
        self.z_tables = None
        # Integer prior parameters: the hyper-synthesis weights, "exp2" (exp2_table()) and
        # "log2_gain" (int64 (8, C): the gains of the eight qualities, LOG_BITS fractional bits).
        self.prior_params: dict[str, torch.Tensor] | None = None

    # -- training face -----------------------------------------------------------
    def forward(self, y: torch.Tensor, log2_gain: torch.Tensor, rate_proxy: str | None = None
                ) -> dict[str, torch.Tensor]:
        """Training face.

        Args:
          y: float32 (B, C, H, W) scaled latents.
          log2_gain: float32 (B, C, 1, 1), log2 of the gains applied to y.
          rate_proxy: rate term of y for this call (default: ``self.rate_proxy``).
        Returns:
          dict: ``y_hat`` (B, C, H, W), rounded around the mean with a straight-through
          gradient; ``y_bits`` (B, C, H, W) and ``z_bits`` (B, Cz, H/4, W/4), the
          differentiable rate (see :meth:`hyper_rate` and :meth:`latent_rate`).
        """
        z_hat, z_bits = self.hyper_rate(y)
        mean, index = self.hyper_synthesis(z_hat, log2_gain)
        y_hat, y_bits = self.latent_rate(y, mean, index, rate_proxy)
        return {"y_hat": y_hat, "y_bits": y_bits, "z_bits": z_bits}

    def hyper_rate(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training face of z: scaled latents (B, C, H, W) -> (z_hat, z_bits), float32
        (B, Cz, H/4, W/4) each; z_hat straight-through rounded, bits under additive noise."""
        z = self.hyper_analysis(y * HYPER_INPUT_SCALE)
        z_bits = self.z_density.bits(z + torch.empty_like(z).uniform_(-0.5, 0.5))
        return torch.clamp(round_ste(z), -Z_LIMIT, Z_LIMIT), z_bits

    def latent_rate(self, y: torch.Tensor, mean: torch.Tensor, index: torch.Tensor, rate_proxy: str | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training face of y given its prior: (y, mean, scale index), float32 (B, C, H, W)
        each -> (y_hat = mean + round(y - mean) straight-through, bits under
        ``rate_proxy`` or else ``self.rate_proxy``, see
        :func:`~neurocodec.entropy.gaussian.residual_bits`)."""
        scale = torch.exp2(LOG2_SCALE_MIN + index * LOG2_SCALE_STEP)
        y_bits = residual_bits(y - mean, scale, rate_proxy or self.rate_proxy)
        return mean + round_ste(y - mean), y_bits

    # -- coding face ---------------------------------------------------------------
    @torch.no_grad()
    def update_tables(self, log_gain: torch.Tensor) -> None:
        """Build the integer tables and integer prior parameters (at export time only).

        Args:
          log_gain: float (8, C), natural-log gains of the eight qualities.
        """
        from ..coding import build_tables

        pmfs, minima = gaussian_pmfs(scale_table(NUM_SCALES, LOG2_SCALE_MIN, LOG2_SCALE_STEP))
        self.y_tables = build_tables(pmfs, minima)
        pmfs, minima = self.z_density.pmfs()
        self.z_tables = build_tables(pmfs, minima)
        self.prior_params = self.hyper_synthesis.integer_parameters()
        self.prior_params["exp2"] = exp2_table()
        self.prior_params["log2_gain"] = torch.round(log_gain.double() / math.log(2.0) * 2**LOG_BITS).to(torch.int64)

    def _require_tables(self) -> None:
        if self.y_tables is None or self.z_tables is None or self.prior_params is None:
            raise RuntimeError("entropy model has no coding tables: call update_tables() or load a weight file")

    def _prior(self, z_symbols: np.ndarray, quality: float) -> tuple[torch.Tensor, np.ndarray]:
        """Exact prior: int64 means (1, C, H, W) and int32 table indexes."""
        log2_gain = quality_log2_gain(self.prior_params["log2_gain"], quality)
        mean, index = self.hyper_synthesis.forward_exact(torch.from_numpy(z_symbols), self.prior_params, log2_gain)
        return mean, index.numpy().astype(np.int32)

    def _z_indexes(self, shape: tuple[int, ...]) -> np.ndarray:
        channel = np.arange(self.hyper_channels, dtype=np.int32).reshape(1, -1, 1, 1)
        return np.ascontiguousarray(np.broadcast_to(channel, shape))

    @torch.no_grad()
    def quantise(self, y: torch.Tensor, quality: float, distortion_weight: np.ndarray | None = None
                 ) -> HyperSymbols:
        """Encoder side: scaled latents float32 (1, C, H, W) at ``quality`` -> symbols and table indexes.

        ``distortion_weight``: float64 (1, C, 1, 1), bits per unit of squared latent error
        per channel; given, symbols are chosen by :func:`~neurocodec.entropy.rd_rounding.rd_round`
        instead of plain rounding (the decoder is the same either way).
        """
        self._require_tables()
        z = self.hyper_analysis(y * HYPER_INPUT_SCALE)
        z_symbols = torch.clamp(torch.round(z), -Z_LIMIT, Z_LIMIT).to(torch.int32).numpy()
        mean, y_indexes = self._prior(z_symbols, quality)
        y64 = y.double()
        y_symbols = torch.clamp(torch.round(y64) - mean, -2**31, 2**31 - 1).to(torch.int32).numpy()
        if distortion_weight is not None:
            residual = (y64 - mean).numpy()
            y_symbols = rd_round(residual, y_symbols, y_indexes, self.y_tables, distortion_weight)
        y_hat = (torch.from_numpy(y_symbols).to(torch.int64) + mean).float()
        return HyperSymbols(z_symbols, y_symbols, y_indexes, y_hat)

    def encode(self, symbols: HyperSymbols, coder: str = "cpu") -> list[bytes]:
        """Symbols -> [z segment, y segment]."""
        from ..coding import get_backend

        backend = get_backend(coder)
        z_bytes = backend.encode(symbols.z_symbols, self._z_indexes(symbols.z_symbols.shape), self.z_tables)
        y_bytes = backend.encode(symbols.y_symbols, symbols.y_indexes, self.y_tables)
        return [z_bytes, y_bytes]

    @torch.no_grad()
    def decode(self, segments: list[bytes], y_shape: tuple[int, int, int, int], quality: float,
               coder: str = "cpu") -> torch.Tensor:
        """[z segment, y segment] -> y_hat float32 ``y_shape`` (1, C, H, W)."""
        from ..coding import get_backend

        self._require_tables()
        backend = get_backend(coder)
        b, c, h, w = y_shape
        z_shape = (b, self.hyper_channels, h // 4, w // 4)
        z_symbols = backend.decode(segments[0], self._z_indexes(z_shape), self.z_tables).reshape(z_shape)
        mean, y_indexes = self._prior(z_symbols, quality)
        y_symbols = backend.decode(segments[1], y_indexes, self.y_tables).reshape(y_shape)
        return (torch.from_numpy(y_symbols).to(torch.int64) + mean).float()
