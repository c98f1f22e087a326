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
from typing import Callable

import numpy as np
import torch
from torch import nn

from .base import EntropyModel, EntropyOutput, uniform_noise
from .factorized import FactorizedDensity
from .fixedpoint import FixedPointConv, fake_requantise, float_requantise, requantise_exact, round_ste
from .gaussian import gaussian_pmfs, residual_bits, scale_table
from .quality_head import (
    LOG2_SCALE_MIN, LOG2_SCALE_STEP, LOG_BITS, NUM_SCALES, exp2_table, quality_log2_gain, scale_prior,
    scale_prior_exact,
)
from .rd_rounding import rd_round

Z_LIMIT = 2**15  # hyper-latents are clamped here so fixed-point sums stay below 2**53
# Latents are scaled for unit quantisation steps (DC coefficients reach hundreds); the
# hyper-analysis sees them scaled down so its activations, and Adam steps, stay O(1).
HYPER_INPUT_SCALE = 1.0 / 16.0
# Weight-file names of the saved state (every shipped weight file uses them).
PRIOR_PREFIX = "prior."
Y_TABLES_PREFIX = "tables.y."
Z_TABLES_PREFIX = "tables.z."


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


def hyper_analysis_network(latent_channels: int, hidden: int, hyper_channels: int) -> nn.Sequential:
    """``h_a``: scaled latents (B, C, H, W) -> hyper-latents (B, Cz, H/4, W/4), float (it
    runs only in the encoder; its output is transmitted)."""
    return nn.Sequential(
        nn.Conv2d(latent_channels, hidden, 3, padding=1), nn.LeakyReLU(0.1),
        nn.Conv2d(hidden, hidden, 5, stride=2, padding=2), nn.LeakyReLU(0.1),
        nn.Conv2d(hidden, hyper_channels, 5, stride=2, padding=2),
    )


def gaussian_latent_rate(y: torch.Tensor, mean: torch.Tensor, index: torch.Tensor, rate_proxy: str,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Training face of y given a mean-scale prior: (y, mean, scale index), float32
    (B, C, H, W) each -> (``y_hat = mean + round(y - mean)`` straight-through, bits under
    ``rate_proxy``, see :func:`~neurocodec.entropy.gaussian.residual_bits`)."""
    scale = torch.exp2(LOG2_SCALE_MIN + index * LOG2_SCALE_STEP)
    y_bits = residual_bits(y - mean, scale, rate_proxy, generator)
    return mean + round_ste(y - mean), y_bits


class HyperpriorFamily(EntropyModel):
    """What every model of the hyperprior family shares: the z side and the saved state.

    The z side: a float hyper-analysis ``hyper_analysis`` summarises the latents into
    hyper-latents ``z`` (B, Cz, H/4, W/4), coded in the first segment under the
    factorized density ``z_density``; a fixed-point ``hyper_synthesis`` (given by the
    subclass) predicts the latents' distribution from ``round(z)``. The saved state: the
    z tables, the ``NUM_SCALES`` zero-mean scale tables of the latents and the integer
    prior parameters, stored as ``tables.z.*``, ``tables.y.*`` and ``prior.*`` (the names
    of every shipped weight file). Subclasses implement how the latents are predicted and
    coded; they compose the quality head (:mod:`~neurocodec.entropy.quality_head`) and
    :func:`gaussian_latent_rate`.

    Latents ``y`` (B, C, H, W), H and W multiples of 4.

    Args:
      latent_channels: C.
      hyper_channels: Cz, channels of z.
      hidden: channels inside ``h_a`` and ``h_s``.
      hyper_synthesis: builds the hyper-synthesis network (called between the
        hyper-analysis and the z density, the order their parameters are initialised in).
    """

    latent_multiple = 4

    def __init__(self, latent_channels: int, hyper_channels: int, hidden: int,
                 hyper_synthesis: Callable[[], FixedPointHyperSynthesis]):
        super().__init__()
        self.latent_channels = latent_channels
        self.hyper_channels = hyper_channels
        self.hyper_analysis = hyper_analysis_network(latent_channels, hidden, hyper_channels)
        self.hyper_synthesis = hyper_synthesis()
        self.z_density = FactorizedDensity(hyper_channels)
        # Saved state, filled by update_tables() or load_coding_state().
        self.y_tables = None
        self.z_tables = None
        # Integer prior parameters: the prior networks' integer weights, "exp2" (exp2_table())
        # and "log2_gain" (int64 (8, C): the gains of the eight qualities, LOG_BITS fractional bits).
        self.prior_params: dict[str, torch.Tensor] | None = None

    # -- z side, training face -------------------------------------------------------
    def hyper_rate(self, y: torch.Tensor, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training face of z: scaled latents (B, C, H, W) -> (z_hat, z_bits), float32
        (B, Cz, H/4, W/4) each; z_hat straight-through rounded, bits under additive noise."""
        z = self.hyper_analysis(y * HYPER_INPUT_SCALE)
        z_bits = self.z_density.bits(z + uniform_noise(z, generator))
        return torch.clamp(round_ste(z), -Z_LIMIT, Z_LIMIT), z_bits

    # -- z side, coding face -----------------------------------------------------------
    def hyper_symbols(self, y: torch.Tensor) -> np.ndarray:
        """Encoder side of z: scaled latents float32 (1, C, H, W) -> int32 (1, Cz, H/4, W/4)."""
        z = self.hyper_analysis(y * HYPER_INPUT_SCALE)
        return torch.clamp(torch.round(z), -Z_LIMIT, Z_LIMIT).to(torch.int32).numpy()

    def _z_indexes(self, shape: tuple[int, ...]) -> np.ndarray:
        channel = np.arange(self.hyper_channels, dtype=np.int32).reshape(1, -1, 1, 1)
        return np.ascontiguousarray(np.broadcast_to(channel, shape))

    def encode_hyper(self, z_symbols: np.ndarray, coder: str) -> bytes:
        """The z segment: every z symbol under its channel's factorized table."""
        from ..coding import get_backend

        return get_backend(coder).encode(z_symbols, self._z_indexes(z_symbols.shape), self.z_tables)

    def decode_hyper(self, segment: bytes, y_shape: tuple[int, int, int, int], coder: str) -> np.ndarray:
        """Inverse of :meth:`encode_hyper`: int32 z symbols (1, Cz, H/4, W/4) of latents ``y_shape``."""
        from ..coding import get_backend

        b, _, h, w = y_shape
        z_shape = (b, self.hyper_channels, h // 4, w // 4)
        return get_backend(coder).decode(segment, self._z_indexes(z_shape), self.z_tables).reshape(z_shape)

    def quality_log2_gain(self, quality: float) -> torch.Tensor:
        """int64 (C,): the exact log2-gains of ``quality`` (units of ``2**-LOG_BITS``)."""
        return quality_log2_gain(self.prior_params["log2_gain"], quality)

    # -- saved state ------------------------------------------------------------------------
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
        self.prior_params.update(self.extra_integer_parameters())
        self.prior_params["exp2"] = exp2_table()
        self.prior_params["log2_gain"] = torch.round(log_gain.double() / math.log(2.0) * 2**LOG_BITS).to(torch.int64)

    def extra_integer_parameters(self) -> dict[str, torch.Tensor]:
        """Integer parameters of prior networks besides the hyper-synthesis (none here)."""
        return {}

    def coding_state(self) -> dict[str, torch.Tensor]:
        """``prior.*`` (the integer prior parameters) and ``tables.y.*`` / ``tables.z.*``."""
        self._require_tables()
        tensors = {PRIOR_PREFIX + key: value.contiguous() for key, value in self.prior_params.items()}
        for prefix, tables in ((Y_TABLES_PREFIX, self.y_tables), (Z_TABLES_PREFIX, self.z_tables)):
            tensors.update({prefix + key: torch.from_numpy(a.copy()) for key, a in tables.to_arrays().items()})
        return tensors

    def load_coding_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`coding_state`."""
        from ..coding import IntTables

        def arrays(prefix: str) -> dict[str, np.ndarray]:
            found = {k[len(prefix):]: v.numpy() for k, v in tensors.items() if k.startswith(prefix)}
            if not found:
                raise ValueError(f"weight file has no {prefix}* tensors")
            return found

        prior = {k[len(PRIOR_PREFIX):]: v for k, v in tensors.items() if k.startswith(PRIOR_PREFIX)}
        if not prior:
            raise ValueError(f"weight file has no {PRIOR_PREFIX}* tensors")
        y_tables = IntTables.from_arrays(arrays(Y_TABLES_PREFIX))
        z_tables = IntTables.from_arrays(arrays(Z_TABLES_PREFIX))
        self.prior_params, self.y_tables, self.z_tables = prior, y_tables, z_tables

    def _require_tables(self) -> None:
        if self.y_tables is None or self.z_tables is None or self.prior_params is None:
            raise RuntimeError("entropy model has no coding tables: call update_tables() or load a weight file")


class MeanScaleHyperprior(HyperpriorFamily):
    """Entropy model for latents ``y`` (B, C, H, W) with H, W multiples of 4: each latent
    coded under one zero-mean scale table, around an integer mean, both predicted by the
    hyper-synthesis from ``round(z)``. Two segments per tile: z, y.

    Args:
      latent_channels: C.
      hyper_channels: Cz, channels of z (at H/4, W/4).
      hidden: channels inside ``h_a`` and ``h_s``.
    """

    rd_rounding = True
    num_segments = 2

    def __init__(self, latent_channels: int, hyper_channels: int = 64, hidden: int = 128):
        super().__init__(latent_channels, hyper_channels, hidden,
                         lambda: FixedPointHyperSynthesis(hyper_channels, hidden, latent_channels))

    # -- training face -----------------------------------------------------------
    def forward(self, y: torch.Tensor, log2_gain: torch.Tensor, quality: torch.Tensor,
                rate_proxy: str = "noise", generator: torch.Generator | None = None) -> EntropyOutput:
        """Training face (:meth:`EntropyModel.forward`): ``y_bits`` (B, C, H, W),
        ``z_bits`` (B, Cz, H/4, W/4); ``quality`` is not used (the gains carry it)."""
        z_hat, z_bits = self.hyper_rate(y, generator)
        mean, index = self.hyper_synthesis(z_hat, log2_gain)
        y_hat, y_bits = gaussian_latent_rate(y, mean, index, rate_proxy, generator)
        return EntropyOutput(y_hat, y_bits, z_bits)

    # -- coding face ---------------------------------------------------------------
    def _prior(self, z_symbols: np.ndarray, quality: float) -> tuple[torch.Tensor, np.ndarray]:
        """Exact prior: int64 means (1, C, H, W) and int32 table indexes."""
        mean, index = self.hyper_synthesis.forward_exact(torch.from_numpy(z_symbols), self.prior_params,
                                                         self.quality_log2_gain(quality))
        return mean, index.numpy().astype(np.int32)

    @torch.no_grad()
    def quantise(self, y: torch.Tensor, quality: float, distortion_weight: np.ndarray | None = None
                 ) -> HyperSymbols:
        """Encoder side (:meth:`EntropyModel.quantise`): symbols ``round(y) - mean`` (or
        chosen by :func:`~neurocodec.entropy.rd_rounding.rd_round` when a
        ``distortion_weight`` is given) and their table indexes."""
        self._require_tables()
        z_symbols = self.hyper_symbols(y)
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

        z_bytes = self.encode_hyper(symbols.z_symbols, coder)
        return [z_bytes, get_backend(coder).encode(symbols.y_symbols, symbols.y_indexes, self.y_tables)]

    @torch.no_grad()
    def decode(self, segments: list[bytes], y_shape: tuple[int, int, int, int], quality: float,
               coder: str = "cpu") -> torch.Tensor:
        """[z segment, y segment] -> y_hat float32 ``y_shape`` (1, C, H, W)."""
        from ..coding import get_backend

        self._require_tables()
        self.check_segments(segments)
        z_symbols = self.decode_hyper(segments[0], y_shape, coder)
        mean, y_indexes = self._prior(z_symbols, quality)
        y_symbols = get_backend(coder).decode(segments[1], y_indexes, self.y_tables).reshape(y_shape)
        return (torch.from_numpy(y_symbols).to(torch.int64) + mean).float()
