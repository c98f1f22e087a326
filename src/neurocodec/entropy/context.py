"""Spatial-channel context entropy model: checkerboard x channel slices, on the exact path.

The latents are split into channel *slices* (Minnen & Singh, "Channel-wise autoregressive
entropy models", ICIP 2020), coded one after another, and every slice into the two halves
of a *checkerboard* (He et al., "Checkerboard context model", CVPR 2021): first the
*anchors* (positions with ``(i + j)`` even), then the *non-anchors*. Combined as in ELIC
(He et al., CVPR 2022), the mean and scale of a latent are predicted from

* the hyperprior's prediction for it (the unscaled mean and log2-scale of
  :class:`~neurocodec.entropy.hyperprior.FixedPointHyperSynthesis`),
* every already decoded slice, at the same and the neighbouring positions (3x3), and
* for non-anchors, the already decoded anchors of the same slice (5x5 neighbourhood).

So ``2 * S`` coding passes follow the hyper-latents, each vectorised over all positions
of its half of its slice (no per-pixel loop): the decoder runs the slice's
entropy-parameter network once per pass on the whole map and decodes the pass's symbols
in one coder call. With plain rounding the encoder knows every latent at once and needs
only one network evaluation per slice; with rate-distortion rounding it chooses the symbols
pass by pass against the prior the decoder will compute, so it runs the same ``2 * S``
passes (:meth:`ContextHyperprior.quantise`).

**Determinism.** The parameter networks are fixed-point (:class:`FixedPointConv`) and run
at coding time in exact integer arithmetic (float64 holding integers, see
``docs/determinism.md``), exactly like the hyper-synthesis. Their inputs are integers too:
the hyper-synthesis' exact unscaled outputs and the decoded latents *unscaled* by the
quality's gain with the integer exp2 table (:func:`unscale_exact`), on a ``2**-8`` grid.
Their outputs are corrections to the hyperprior's unscaled mean and log2-scale; the
quality's gain then enters through the same integer head as in the plain hyperprior
(:func:`~neurocodec.entropy.quality_head.scale_prior_exact`), so one prior serves every
quality. Symbols are ``round(y) - mean`` under the same zero-mean scale tables; the
reconstruction ``y_hat = round(y)`` does not depend on the prior, only the bits do.

**Training** uses the same grids with straight-through rounding (fake quantisation); the
context inputs are the straight-through rounded latents, which equal what the decoder
has. All slices are evaluated in parallel during training (the inputs are all known).

The last layer of every parameter network starts at zero, so a freshly built model
predicts exactly what its hyperprior predicts: warm-starting from a trained
mean-scale hyperprior starts at that model's rate and can only be improved on.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import EntropyOutput
from .fixedpoint import FixedPointConv, fake_requantise, float_requantise, requantise_exact, round_ste
from .hyperprior import FixedPointHyperSynthesis, HyperpriorFamily, HyperSymbols, gaussian_latent_rate
from .quality_head import GAIN_BITS, LOG_BITS, NUM_SCALES, fixed_point_gain, scale_prior, scale_prior_exact
from .rd_rounding import rd_round

CONTEXT_BITS = 8            # fractional bits of every context input (and of the predicted corrections)
CONTEXT_LIMIT = 128.0       # context inputs are clamped to +-128 (+-2**15 on the grid): the 2**53 bound
Y_HAT_LIMIT = 2**20         # |round(y)| is clamped here (far beyond any real latent) so int64 stays safe
# The inverse gain is computed for |log2 gain| <= 24 only (gains are O(1e-2 .. 1e2)); beyond,
# it saturates, which keeps the fixed-point product below 2**63.
INVERSE_LOG2_GAIN_LIMIT = 24 * 2**LOG_BITS


def checkerboard(height: int, width: int) -> torch.Tensor:
    """Anchor mask: bool (height, width), True where ``(i + j)`` is even (coded first)."""
    i = torch.arange(height).view(-1, 1)
    j = torch.arange(width).view(1, -1)
    return (i + j) % 2 == 0


def unscale_exact(y_hat: torch.Tensor, log2_gain: torch.Tensor, exp2: torch.Tensor) -> torch.Tensor:
    """Decoded latents divided by their gain, on the context grid, in integer arithmetic.

    Args:
      y_hat: int64 (1, C, H, W), decoded (scaled) latents.
      log2_gain: int64 (C,), log2 of the gains in units of ``2**-LOG_BITS``.
      exp2: int64 exp2 table of the weight file.
    Returns:
      float64 (1, C, H, W) holding integers: ``round(y_hat / gain * 2**CONTEXT_BITS)``,
      clamped to ``+-CONTEXT_LIMIT * 2**CONTEXT_BITS`` (ready for a fixed-point convolution).
    """
    lg = torch.clamp(-log2_gain.to(torch.int64), -INVERSE_LOG2_GAIN_LIMIT, INVERSE_LOG2_GAIN_LIMIT)
    inverse = fixed_point_gain(lg.view(1, -1, 1, 1), exp2)           # 2**-GAIN_BITS units, <= 2**40
    product = torch.clamp(y_hat, -Y_HAT_LIMIT, Y_HAT_LIMIT) * inverse  # |.| < 2**61
    shift = GAIN_BITS - CONTEXT_BITS
    scaled = torch.div(product + (1 << (shift - 1)), 1 << shift, rounding_mode="floor")
    limit = int(CONTEXT_LIMIT * 2**CONTEXT_BITS)
    return torch.clamp(scaled, -limit, limit).to(torch.float64)


class SliceParameterNet(nn.Module):
    """Entropy-parameter network of one slice (fixed point, both faces).

    ``acc = main(hyper prediction of the slice, decoded earlier slices) + spatial(anchors)``
    (3x3 and 5x5 convolutions whose accumulators share one grid and are summed exactly),
    then two 1x1 layers; the output is a correction of the hyperprior's unscaled mean and
    log2-scale, on grids ``2**-CONTEXT_BITS`` and ``2**-LOG_BITS``.

    Args:
      slice_channels: C_s, channels of this slice.
      previous_channels: P_s, channels of all earlier slices.
      hidden: width of the hidden layers.
    """

    def __init__(self, slice_channels: int, previous_channels: int, hidden: int, weight_bits: int = 12,
                 act_bits: int = 8, act_max: float = 255.0):
        super().__init__()
        self.slice_channels = slice_channels
        self.act_bits = act_bits
        self.act_max = act_max
        self.main = FixedPointConv(2 * slice_channels + previous_channels, hidden, 3, weight_bits=weight_bits,
                                   act_bits=CONTEXT_BITS)
        # anchors of the slice (zero elsewhere) plus a plane saying where they are
        self.spatial = FixedPointConv(slice_channels + 1, hidden, 5, weight_bits=weight_bits, act_bits=CONTEXT_BITS)
        self.hidden = FixedPointConv(hidden, hidden, 1, weight_bits=weight_bits, act_bits=act_bits)
        self.out = FixedPointConv(hidden, 2 * slice_channels, 1, weight_bits=weight_bits, act_bits=act_bits)
        with torch.no_grad():
            self.spatial.weight.mul_(0.5)   # two branches feed one accumulator
            self.main.weight.mul_(0.5)
            self.out.weight.zero_()         # starts as the plain hyperprior
            self.out.bias.zero_()

    mean_limit = float(2**12)
    log_scale_limit = 32.0

    def layers(self) -> dict[str, FixedPointConv]:
        return {"main": self.main, "spatial": self.spatial, "hidden": self.hidden, "out": self.out}

    # -- training face -------------------------------------------------------------
    def forward(self, main_in: torch.Tensor, spatial_in: torch.Tensor, anchor: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training face, both passes at once.

        Args:
          main_in: float32 (B, 2 C_s + P_s, H, W) on the ``2**-CONTEXT_BITS`` grid.
          spatial_in: float32 (B, C_s + 1, H, W): the anchors' unscaled latents (zero at
            non-anchors) and the anchor mask.
          anchor: bool (H, W). Anchors see no spatial context (their pass has none).
        Returns:
          (delta_mean, delta_log_scale): float32 (B, C_s, H, W) each, on their grids.
        """
        requantise = fake_requantise if self.main.fake_quant else float_requantise
        zero = torch.zeros_like(spatial_in[:, :, :1, :1])
        spatial = torch.where(anchor, self.spatial(zero), self.spatial(spatial_in))  # conv(0) = the bias
        h = requantise(self.main(main_in) + spatial, self.act_bits, 0.0, self.act_max)
        h = requantise(self.hidden(h), self.act_bits, 0.0, self.act_max)
        delta_mean, delta_log_scale = self.out(h).chunk(2, dim=1)
        return (requantise(delta_mean, CONTEXT_BITS, -self.mean_limit, self.mean_limit),
                requantise(delta_log_scale, LOG_BITS, -self.log_scale_limit, self.log_scale_limit))

    # -- coding face -----------------------------------------------------------------
    def integer_parameters(self, prefix: str) -> dict[str, torch.Tensor]:
        """int16 weights and int64 biases, keyed ``{prefix}{layer}.weight`` / ``.bias``."""
        params = {}
        for name, layer in self.layers().items():
            params[f"{prefix}{name}.weight"] = layer.integer_weight().to(torch.int16)
            params[f"{prefix}{name}.bias"] = layer.integer_bias().to(torch.int64)
        return params

    @staticmethod
    def _exact(layer: FixedPointConv, x: torch.Tensor, params: dict[str, torch.Tensor], key: str) -> torch.Tensor:
        return layer.forward_exact(x, params[key + ".weight"].to(torch.float64), params[key + ".bias"].to(torch.float64))

    def main_exact(self, main_in: torch.Tensor, params: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
        """float64 integers (1, 2 C_s + P_s, H, W) -> the main branch's accumulator (1, hidden, H, W)."""
        return self._exact(self.main, main_in, params, prefix + "main")

    def spatial_exact(self, spatial_in: torch.Tensor | None, params: dict[str, torch.Tensor], prefix: str
                      ) -> torch.Tensor:
        """The spatial branch's accumulator; ``None`` (the anchor pass: nothing decoded yet)
        gives its bias alone, which is what the convolution of zeros gives."""
        if spatial_in is None:
            return params[prefix + "spatial.bias"].to(torch.float64).view(1, -1, 1, 1)
        return self._exact(self.spatial, spatial_in, params, prefix + "spatial")

    def tail_exact(self, acc: torch.Tensor, params: dict[str, torch.Tensor], prefix: str
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed accumulator (float64 integers) -> (delta_mean, delta_log_scale), int64
        (1, C_s, H, W) in units of ``2**-CONTEXT_BITS`` and ``2**-LOG_BITS``."""
        high = self.act_max * 2**self.act_bits
        h = requantise_exact(acc, self.main.out_bits - self.act_bits, 0.0, high)
        h = requantise_exact(self._exact(self.hidden, h, params, prefix + "hidden"),
                             self.hidden.out_bits - self.act_bits, 0.0, high)
        out = self._exact(self.out, h, params, prefix + "out")
        delta_mean, delta_log_scale = out.chunk(2, dim=1)
        shift = self.out.out_bits
        mean = requantise_exact(delta_mean, shift - CONTEXT_BITS, -self.mean_limit * 2**CONTEXT_BITS,
                                self.mean_limit * 2**CONTEXT_BITS)
        log_scale = requantise_exact(delta_log_scale, shift - LOG_BITS, -self.log_scale_limit * 2**LOG_BITS,
                                     self.log_scale_limit * 2**LOG_BITS)
        return mean.to(torch.int64), log_scale.to(torch.int64)


class ContextHyperprior(HyperpriorFamily):
    """Mean-scale hyperprior plus a checkerboard x channel-slice context (ELIC-style).

    Latents ``y`` (B, C, H, W), H and W multiples of 4. The z side, hyper-synthesis and
    saved state are the hyperprior family's (:class:`HyperpriorFamily`: same parameter
    names as :class:`~neurocodec.entropy.hyperprior.MeanScaleHyperprior`, so a trained
    hyperprior warm-starts them); the context networks ``context.{s}`` correct its
    prediction slice by slice. ``1 + 2 S`` segments per tile.

    Args:
      latent_channels: C.
      hyper_channels, hidden: as for :class:`~neurocodec.entropy.hyperprior.MeanScaleHyperprior`.
      slices: channel counts of the slices, in coding order; they sum to C.
      context_hidden: width of the parameter networks.
      channel_order: a permutation of ``range(C)``; slice 0 is channels
        ``channel_order[:slices[0]]``, and so on (default: natural order).
    """

    # Later symbols' contexts depend on earlier choices, so the encoder chooses pass by
    # pass, as the decoder decodes (see quantise).
    rd_rounding = True

    def __init__(self, latent_channels: int, hyper_channels: int = 64, hidden: int = 128,
                 slices: tuple[int, ...] = (12, 12, 24, 48, 96), context_hidden: int = 96,
                 channel_order: list[int] | None = None):
        super().__init__(latent_channels, hyper_channels, hidden,
                         lambda: FixedPointHyperSynthesis(hyper_channels, hidden, latent_channels))
        slices = tuple(int(s) for s in slices)
        if not slices or min(slices) < 1 or sum(slices) != latent_channels:
            raise ValueError(f"slices {slices} must be positive and sum to the {latent_channels} latent channels")
        order = list(range(latent_channels)) if channel_order is None else [int(c) for c in channel_order]
        if sorted(order) != list(range(latent_channels)):
            raise ValueError("channel_order must be a permutation of range(latent_channels)")
        if self.hyper_synthesis.mean_bits != CONTEXT_BITS:
            raise ValueError("the context model reads the hyper-synthesis' means on its own grid (mean_bits = 8)")
        self.slices = slices
        self.order = order
        self.inverse_order = [0] * latent_channels
        for position, channel in enumerate(order):
            self.inverse_order[channel] = position
        self.bounds = [(sum(slices[:i]), sum(slices[:i + 1])) for i in range(len(slices))]
        self.context = nn.ModuleList(SliceParameterNet(c, start, context_hidden)
                                     for c, (start, _) in zip(slices, self.bounds))
        self.num_segments = 1 + 2 * len(slices)   # z, then (anchors, non-anchors) of every slice

    @property
    def fake_quant(self) -> bool:
        """Whether the training faces of all prior networks impose the fixed-point grids."""
        return self.hyper_synthesis.fake_quant

    @fake_quant.setter
    def fake_quant(self, enabled: bool) -> None:
        self.hyper_synthesis.fake_quant = enabled
        for net in self.context:
            for layer in net.layers().values():
                layer.fake_quant = bool(enabled)

    def _permute(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.order]

    def _unpermute(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.inverse_order]

    # -- training face -----------------------------------------------------------
    def forward(self, y: torch.Tensor, log2_gain: torch.Tensor, quality: torch.Tensor,
                rate_proxy: str = "noise", generator: torch.Generator | None = None) -> EntropyOutput:
        """Training face (:meth:`~neurocodec.entropy.base.EntropyModel.forward`): ``y_hat``
        is ``round(y)`` (straight-through), ``y_bits`` (B, C, H, W) and ``z_bits``
        (B, Cz, H/4, W/4) as in the hyperprior, under the context prior of :meth:`prior`."""
        z_hat, z_bits = self.hyper_rate(y, generator)
        mean, index = self.prior(y, z_hat, log2_gain)
        y_hat, y_bits = gaussian_latent_rate(y, mean, index, rate_proxy, generator)
        return EntropyOutput(y_hat, y_bits, z_bits)

    def prior(self, y: torch.Tensor, z_hat: torch.Tensor, log2_gain: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training face of the whole prior (hyper-synthesis + context), all slices at once.

        Args:
          y: float32 (B, C, H, W) scaled latents (the context sees ``round(y)``).
          z_hat: float32 (B, Cz, H/4, W/4), rounded hyper-latents.
          log2_gain: float32 (B, C, 1, 1).
        Returns:
          (mean, index): float32 (B, C, H, W), integers (straight-through): what
          :meth:`quantise` computes exactly, up to the gain's fixed-point rounding.
        """
        mean_h, log_scale_h = (self._permute(t) for t in self.hyper_synthesis.unscaled(z_hat))
        lg = self._permute(log2_gain.expand(-1, -1, 1, 1))
        requantise = fake_requantise if self.fake_quant else float_requantise
        # What the decoder has: round(y), unscaled by the gain, on the context grid.
        y_round = round_ste(self._permute(y))
        y_u = requantise(y_round * torch.exp2(-lg), CONTEXT_BITS, -CONTEXT_LIMIT, CONTEXT_LIMIT)
        anchor = checkerboard(y.shape[2], y.shape[3]).to(y.device)
        anchor_plane = anchor.to(y.dtype).expand(y.shape[0], 1, -1, -1)
        means, indexes = [], []
        for net, (start, end) in zip(self.context, self.bounds):
            mean_s, log_scale_s = mean_h[:, start:end], log_scale_h[:, start:end]
            main_in = torch.cat([torch.clamp(mean_s, -CONTEXT_LIMIT, CONTEXT_LIMIT), log_scale_s, y_u[:, :start]], 1)
            spatial_in = torch.cat([y_u[:, start:end] * anchor, anchor_plane], 1)
            delta_mean, delta_log_scale = net(main_in, spatial_in, anchor)
            mean_u = torch.clamp(mean_s + delta_mean, -net.mean_limit, net.mean_limit)
            log_scale_u = torch.clamp(log_scale_s + delta_log_scale, -net.log_scale_limit, net.log_scale_limit)
            mean, index = scale_prior(mean_u, log_scale_u, lg[:, start:end], NUM_SCALES)
            means.append(mean)
            indexes.append(index)
        return self._unpermute(torch.cat(means, 1)), self._unpermute(torch.cat(indexes, 1))

    # -- coding face ---------------------------------------------------------------
    def extra_integer_parameters(self) -> dict[str, torch.Tensor]:
        """The context networks' integer parameters
        (``context.{slice}.{main,spatial,hidden,out}.{weight,bias}``)."""
        params = {}
        for s, net in enumerate(self.context):
            params.update(net.integer_parameters(f"context.{s}."))
        return params

    def _hyper_exact(self, z_symbols: np.ndarray, quality: float):
        """Exact hyper prediction, permuted: int64 (1, C, H, W) mean_u and log_scale_u, and
        the int64 (C,) log2-gains in slice order."""
        lg = self.quality_log2_gain(quality)
        mean_h, log_scale_h = self.hyper_synthesis.unscaled_exact(torch.from_numpy(z_symbols), self.prior_params)
        return self._permute(mean_h), self._permute(log_scale_h), lg[self.order]

    def _slice_prior(self, s: int, main_acc: torch.Tensor, spatial_in: torch.Tensor | None, anchor: torch.Tensor | None,
                     mean_h: torch.Tensor, log_scale_h: torch.Tensor, lg: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact (mean, index), int64 (1, C_s, H, W), of slice ``s``. ``spatial_in`` None:
        the anchor pass. ``anchor`` given: anchors use the anchor pass' spatial term (the
        encoder computes both passes at once)."""
        net, prefix = self.context[s], f"context.{s}."
        start, end = self.bounds[s]
        spatial = net.spatial_exact(spatial_in, self.prior_params, prefix)
        if anchor is not None:
            spatial = torch.where(anchor, net.spatial_exact(None, self.prior_params, prefix), spatial)
        delta_mean, delta_log_scale = net.tail_exact(main_acc + spatial, self.prior_params, prefix)
        mean_limit = int(net.mean_limit * 2**CONTEXT_BITS)
        log_scale_limit = int(net.log_scale_limit * 2**LOG_BITS)
        mean_u = torch.clamp(mean_h[:, start:end] + delta_mean, -mean_limit, mean_limit)
        log_scale_u = torch.clamp(log_scale_h[:, start:end] + delta_log_scale, -log_scale_limit, log_scale_limit)
        return scale_prior_exact(mean_u, log_scale_u, lg[start:end], self.prior_params["exp2"], CONTEXT_BITS,
                                 NUM_SCALES)

    def _main_acc(self, s: int, mean_h: torch.Tensor, log_scale_h: torch.Tensor, y_u: torch.Tensor) -> torch.Tensor:
        """Exact accumulator of slice ``s``'s main branch (float64 integers)."""
        start, end = self.bounds[s]
        limit = int(CONTEXT_LIMIT * 2**CONTEXT_BITS)
        main_in = torch.cat([torch.clamp(mean_h[:, start:end], -limit, limit).to(torch.float64),
                             log_scale_h[:, start:end].to(torch.float64), y_u[:, :start]], 1)
        return self.context[s].main_exact(main_in, self.prior_params, f"context.{s}.")

    @staticmethod
    def _spatial_in(y_u_slice: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """float64 (1, C_s + 1, H, W): the anchors' unscaled latents and the anchor plane (1.0)."""
        plane = anchor.to(torch.float64).view(1, 1, *anchor.shape) * 2**CONTEXT_BITS
        return torch.cat([y_u_slice * anchor, plane], 1)

    @torch.no_grad()
    def quantise(self, y: torch.Tensor, quality: float, distortion_weight: np.ndarray | None = None
                 ) -> HyperSymbols:
        """Encoder side: scaled latents float32 (1, C, H, W) -> symbols and table indexes
        (natural channel order).

        ``distortion_weight``: float64 (1, C, 1, 1) in natural channel order. Given, the symbols of every coding pass are
        chosen by :func:`~neurocodec.entropy.rd_rounding.rd_round` against the prior that
        the symbols already chosen give that pass, so the encoder runs the decoder's ``2 S``
        passes; without it, plain rounding and one prior evaluation per slice.
        """
        self._require_tables()
        z_symbols = self.hyper_symbols(y)
        mean_h, log_scale_h, lg = self._hyper_exact(z_symbols, quality)
        if distortion_weight is not None:
            return self._quantise_by_passes(y, z_symbols, mean_h, log_scale_h, lg, distortion_weight)
        # The reconstruction is round(y), whatever the prior; the clamp keeps int64 safe.
        y_hat = torch.clamp(torch.round(self._permute(y).double()), -Y_HAT_LIMIT, Y_HAT_LIMIT).to(torch.int64)
        y_u = unscale_exact(y_hat, lg, self.prior_params["exp2"])
        anchor = checkerboard(y.shape[2], y.shape[3])
        means, indexes = [], []
        for s, (start, end) in enumerate(self.bounds):
            main_acc = self._main_acc(s, mean_h, log_scale_h, y_u)
            mean, index = self._slice_prior(s, main_acc, self._spatial_in(y_u[:, start:end], anchor), anchor,
                                            mean_h, log_scale_h, lg)
            means.append(mean)
            indexes.append(index)
        mean = torch.cat(means, 1)
        # |y_hat| <= 2**20 and |mean| <= 2**12 * gain, so the symbol fits int32 for any sane gain.
        symbols = torch.clamp(y_hat - mean, -2**31, 2**31 - 1)
        y_symbols = self._unpermute(symbols).to(torch.int32).numpy()
        y_indexes = self._unpermute(torch.cat(indexes, 1)).numpy().astype(np.int32)
        return HyperSymbols(z_symbols, y_symbols, y_indexes, self._unpermute(y_hat).float())

    def _quantise_by_passes(self, y: torch.Tensor, z_symbols: np.ndarray, mean_h: torch.Tensor,
                            log_scale_h: torch.Tensor, lg: torch.Tensor, distortion_weight: np.ndarray
                            ) -> HyperSymbols:
        """Rate-distortion rounding pass by pass, in the decoder's order: each pass's prior
        is computed from the symbols already chosen (exactly what the decoder will have),
        then that pass's symbols are chosen against it."""
        y64 = torch.clamp(self._permute(y).double(), -Y_HAT_LIMIT, Y_HAT_LIMIT)
        weight = np.broadcast_to(distortion_weight, (1, y.shape[1], 1, 1)).reshape(-1)[self.order]
        symbols = torch.zeros(y64.shape, dtype=torch.int32)   # the coder's dtypes, filled pass by pass
        indexes = torch.zeros(y64.shape, dtype=torch.int32)

        def choose(channels: slice, mask: torch.Tensor, mean: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            residual = (y64[0, channels][:, mask] - mean).numpy()
            plain = np.clip(np.round(residual), -2**31, 2**31 - 1).astype(np.int32)
            chosen = torch.from_numpy(rd_round(residual, plain, index.numpy(), self.y_tables, weight[channels, None]))
            symbols[0, channels][:, mask] = chosen
            indexes[0, channels][:, mask] = index
            return chosen

        y_hat = self._run_passes(mean_h, log_scale_h, lg, tuple(y.shape), choose)
        return HyperSymbols(z_symbols, self._unpermute(symbols).numpy(), self._unpermute(indexes).numpy(),
                            self._unpermute(y_hat).float())

    def _run_passes(self, mean_h: torch.Tensor, log_scale_h: torch.Tensor, lg: torch.Tensor,
                    shape: tuple[int, int, int, int], symbols_of_pass) -> torch.Tensor:
        """The decoder's ``2 S`` passes, shared by the decoder and the choosing encoder.

        For each pass (slice ``s``'s anchors, then its non-anchors) the exact prior is
        computed from the latents of the passes before, and
        ``symbols_of_pass(channels, mask, mean, index)`` gives that pass's symbols: ``mean``
        int64 and ``index`` int32, both (C_s, N) for the N positions of ``mask`` (bool
        (H, W)) in ``channels`` (a slice of the permuted channels); it returns an integer
        tensor (C_s, N). Returns y_hat, int64 ``shape`` (1, C, H, W), permuted order.
        """
        exp2 = self.prior_params["exp2"]
        anchor = checkerboard(shape[2], shape[3])
        y_hat = torch.zeros(shape, dtype=torch.int64)
        y_u = torch.zeros(shape, dtype=torch.float64)
        for s, (start, end) in enumerate(self.bounds):
            main_acc = self._main_acc(s, mean_h, log_scale_h, y_u)
            slice_hat = y_hat[:, start:end]          # a view: filled in place
            for mask, spatial_in in ((anchor, None), (~anchor, "anchors")):
                if spatial_in is not None:
                    spatial_in = self._spatial_in(unscale_exact(slice_hat, lg[start:end], exp2), anchor)
                mean, index = self._slice_prior(s, main_acc, spatial_in, None, mean_h, log_scale_h, lg)
                pass_mean = mean[0][:, mask]
                pass_index = index[0][:, mask].to(torch.int32)
                chosen = symbols_of_pass(slice(start, end), mask, pass_mean, pass_index)
                slice_hat[0][:, mask] = chosen.to(torch.int64) + pass_mean
            y_u[:, start:end] = unscale_exact(slice_hat, lg[start:end], exp2)
        return y_hat

    def _passes(self, height: int, width: int):
        """The coding passes in order: (slice, channel slice of the permuted latents, mask)."""
        anchor = checkerboard(height, width).numpy()
        for s, (start, end) in enumerate(self.bounds):
            yield s, slice(start, end), anchor
            yield s, slice(start, end), ~anchor

    def encode(self, symbols: HyperSymbols, coder: str = "cpu") -> list[bytes]:
        """Symbols -> [z segment] + one segment per pass (slice 0 anchors, slice 0
        non-anchors, slice 1 anchors, ...); ``num_segments`` in all."""
        from ..coding import get_backend

        backend = get_backend(coder)
        segments = [self.encode_hyper(symbols.z_symbols, coder)]
        y_symbols = symbols.y_symbols[0, self.order]
        y_indexes = symbols.y_indexes[0, self.order]
        for _, channels, mask in self._passes(*y_symbols.shape[1:]):
            segments.append(backend.encode(np.ascontiguousarray(y_symbols[channels][:, mask]),
                                           np.ascontiguousarray(y_indexes[channels][:, mask]), self.y_tables))
        return segments

    @torch.no_grad()
    def decode(self, segments: list[bytes], y_shape: tuple[int, int, int, int], quality: float,
               coder: str = "cpu") -> torch.Tensor:
        """``num_segments`` segments -> y_hat float32 ``y_shape`` (1, C, H, W).

        Decodes slice by slice, anchors then non-anchors; each pass runs the slice's
        parameter network on the whole map and one coder call. Raises FormatError for a
        wrong segment count (and whatever the coder raises for corrupt data).
        """
        from ..coding import get_backend

        self._require_tables()
        self.check_segments(segments)
        backend = get_backend(coder)
        _, c, h, w = y_shape
        z_symbols = self.decode_hyper(segments[0], y_shape, coder)
        mean_h, log_scale_h, lg = self._hyper_exact(z_symbols, quality)
        data = iter(segments[1:])

        def decode_pass(channels: slice, mask: torch.Tensor, mean: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            pass_index = np.ascontiguousarray(index.numpy())
            return torch.from_numpy(backend.decode(next(data), pass_index, self.y_tables).reshape(pass_index.shape))

        y_hat = self._run_passes(mean_h, log_scale_h, lg, (1, c, h, w), decode_pass)
        return self._unpermute(y_hat).float()
