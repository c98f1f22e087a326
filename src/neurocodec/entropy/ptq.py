"""Post-training quantisation (PTQ) of a float-trained hyper-synthesis.

A prior trained in float (``FixedPointHyperSynthesis.fake_quant = False``: float weights
and activations, the clamps ``[0, act_max]`` as its nonlinearity) cannot simply be
rounded to the fixed-point grids: a hidden channel whose activations only reach 0.05
keeps 4 significant bits on the ``2**-8`` activation grid, and a weight of 3e-4 keeps one
on the ``2**-12`` weight grid. The grids themselves are fixed (they are part of the exact
coding path and of every weight file), but the network is not: every hidden layer ends in
a clamp at 0 (a ReLU), so scaling the output channel ``c`` of a hidden layer (its weights
and bias) by ``s_c > 0`` and the matching input channel of the next layer by ``1 / s_c``
computes the same function, as long as the upper clamp is not moved into the range the
channel actually uses (Nagel et al., "Data-free quantization through weight equalization
and bias correction", ICCV 2019, use the same freedom). :func:`quantize_prior` chooses
these per-channel scales from a calibration set of hyper-latents ``z`` and leaves the
rescaled float weights in the module, so the usual export
(:meth:`FixedPointHyperSynthesis.integer_parameters`, ``update_tables``) produces the
fixed-point prior.

What it guarantees:

* the result is an ordinary fixed-point prior: the same grids, ``WEIGHT_LIMIT``,
  ``BIAS_LIMIT`` and activation clamp, so every exactness guarantee of the coding path
  (bit-identical on every machine, ``docs/determinism.md``) holds by construction;
* the float network is unchanged on the calibrated range: a channel whose calibrated
  maximum stays below ``act_max / headroom`` is scaled by at most
  ``act_max / (headroom * max)``, so its upper clamp stays above ``headroom`` times the
  largest activation seen; a channel that reaches ``act_max`` (the clamp is active) or
  never activates keeps ``s = 1``;
* no scaled weight is clipped by the 16-bit weight range;
* on the calibration set, the expected extra rate caused by quantisation (the
  Kullback-Leibler divergence from the float prior's Gaussians to the fixed-point ones,
  averaged over latents and the eight qualities, :func:`prior_kl_bits`) is the smallest
  among the candidates searched, which include the unscaled network, so it is not worse
  than rounding the float weights directly. (The search evaluates candidates through the
  float32 training face on the grids, which equals the exact path except for rare
  rounding ties; the two KLs reported, before and after, are computed exactly.)

It does not guarantee a rate: the cost on real images is measured
(``benchmarks/fixed_point_cost.py``, ``docs/benchmarks.md``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch

from .fixedpoint import WEIGHT_LIMIT, FixedPointConv
from .hyperprior import FixedPointHyperSynthesis
from .quality_head import LOG2_SCALE_MIN, LOG2_SCALE_STEP, LOG_BITS

__all__ = ["PTQResult", "hidden_activation_max", "prior_kl_bits", "quantize_prior"]


@dataclass
class PTQResult:
    """What :func:`quantize_prior` chose and measured.

    Attributes:
      scales: one float64 tensor (C_hidden,) per hidden layer: the factor applied to that
        layer's output channels (and undone at the next layer's input).
      activation_max: float64 (C_hidden,) per hidden layer: the largest activation of each
        channel on the calibration set (float network, real units).
      kl_bits_rounded: calibration KL (bits per latent element) of the float weights
        rounded directly to the grids (all scales 1).
      kl_bits: calibration KL after the chosen scales.
      choices: per search step ``(layer, family, alpha, kl_bits)`` of the accepted candidate.
      fixed_channels: per hidden layer, channels kept at scale 1 (dead or saturating).
    """

    scales: list[torch.Tensor]
    activation_max: list[torch.Tensor]
    kl_bits_rounded: float
    kl_bits: float
    choices: list[tuple[int, str, float, float]] = field(default_factory=list)
    fixed_channels: list[int] = field(default_factory=list)


def _out_dim(layer: FixedPointConv) -> int:
    """Axis of the output channels in ``layer.weight`` ((in, out, k, k) when transposed)."""
    return 1 if layer.transposed else 0


def _channel_shape(layer: FixedPointConv, dim: int) -> list[int]:
    shape = [1] * layer.weight.dim()
    shape[dim] = layer.weight.shape[dim]
    return shape


def _abs_max(layer: FixedPointConv, weight: torch.Tensor, dim: int) -> torch.Tensor:
    """max |weight| per channel along ``dim`` (float64 (C,))."""
    other = [d for d in range(weight.dim()) if d != dim]
    return weight.detach().double().abs().amax(dim=other)


def _scaled(originals: list[tuple[torch.Tensor, torch.Tensor]], layers, scales: list[torch.Tensor]
            ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Float64 weights and biases of every layer after applying the hidden-channel scales."""
    out = []
    for i, (layer, (w, b)) in enumerate(zip(layers, originals)):
        w, b = w.clone(), b.clone()
        if i < len(scales):  # a hidden layer: scale its output channels
            dim = _out_dim(layer)
            w = w * scales[i].view(_channel_shape(layer, dim))
            b = b * scales[i]
        if i > 0:  # undo the previous layer's scales on the input channels
            dim = 1 - _out_dim(layer)
            w = w / scales[i - 1].view(_channel_shape(layer, dim))
        out.append((w, b))
    return out


@torch.no_grad()
def hidden_activation_max(hs: FixedPointHyperSynthesis, calibration_z: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-channel maxima of the hidden activations of the float network.

    Args:
      hs: the hyper-synthesis (its current float weights, evaluated without grids).
      calibration_z: integer tensors (B, Cz, h, w).
    Returns:
      one float64 (C_hidden,) per hidden layer, in real units (at most ``hs.act_max``).
    """
    state = hs.fake_quant
    hs.fake_quant = False
    try:
        maxima = [torch.zeros(layer.weight.shape[_out_dim(layer)], dtype=torch.float64) for layer in hs.layers[:-1]]
        for z in calibration_z:
            h = z.to(torch.float32)
            for i, layer in enumerate(hs.layers[:-1]):
                h = torch.clamp(layer(h), 0.0, hs.act_max)
                maxima[i] = torch.maximum(maxima[i], h.double().amax(dim=(0, 2, 3)))
    finally:
        hs.fake_quant = state
    return maxima


def prior_kl_bits(reference: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor],
                  log2_gain: torch.Tensor) -> float:
    """Expected extra bits per latent element of coding with the ``test`` prior's Gaussians
    what the ``reference`` prior predicts: ``KL(N(m_r, s_r) || N(m_t, s_t))``.

    The Gaussians are those the coder uses at each of the qualities: mean ``g * mean_u``,
    scale ``max(g * 2**log_scale_u, table minimum)`` (capped at the table maximum), for the
    per-channel gains ``g`` of each quality (the rounding of the mean and of the table index
    is left out: both priors do it).

    Args:
      reference, test: ``(mean_u, log_scale_u)``, float tensors (B, C, H, W) in real units.
      log2_gain: float (Q, C): log2 of the per-channel gains of Q qualities.
    Returns:
      mean KL in bits over elements and qualities.
    """
    lo = LOG2_SCALE_MIN
    hi = LOG2_SCALE_MIN + 95 * LOG2_SCALE_STEP
    total = 0.0
    for lg in log2_gain.double():
        lg = lg.view(1, -1, 1, 1)
        (m_r, l_r), (m_t, l_t) = [(m.double() * torch.exp2(lg), torch.clamp(ls.double() + lg, lo, hi))
                                  for m, ls in (reference, test)]
        var_r, var_t = torch.exp2(2 * l_r), torch.exp2(2 * l_t)
        kl = (l_t - l_r) * math.log(2.0) + (var_r + (m_r - m_t) ** 2) / (2 * var_t) - 0.5
        total += float(kl.mean()) / math.log(2.0)
    return total / log2_gain.shape[0]


class _Evaluator:
    """Calibration KL of a set of hidden-channel scales (exact fixed-point evaluation)."""

    def __init__(self, hs: FixedPointHyperSynthesis, calibration_z: list[torch.Tensor], log2_gain: torch.Tensor):
        self.work = copy.deepcopy(hs)
        self.originals = [(layer.weight.detach().double().clone(), layer.bias.detach().double().clone())
                          for layer in hs.layers]
        self.z = calibration_z
        self.log2_gain = log2_gain
        with torch.no_grad():
            self.work.fake_quant = False
            self.reference = [self.work.unscaled(z.to(torch.float32)) for z in calibration_z]
            self.work.fake_quant = True

    def load(self, scales: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for layer, (w, b) in zip(self.work.layers, _scaled(self.originals, self.work.layers, scales)):
                layer.weight.copy_(w)
                layer.bias.copy_(b)

    def kl(self, scales: list[torch.Tensor], exact: bool = False) -> float:
        """Calibration KL (bits per latent) of the network with these scales, evaluated
        through the training face (float32 on the grids: fast, and equal to the exact path
        except for rare rounding ties) or, with ``exact``, through the exact integer path."""
        self.load(scales)
        params = self.work.integer_parameters() if exact else None
        values = []
        with torch.no_grad():
            for z, ref in zip(self.z, self.reference):
                if exact:
                    mean_u, log_scale_u = self.work.unscaled_exact(z, params)
                    test = (mean_u.double() / 2**self.work.mean_bits, log_scale_u.double() / 2**LOG_BITS)
                else:
                    test = self.work.unscaled(z.to(torch.float32))
                values.append(prior_kl_bits(ref, test, self.log2_gain) * ref[0].numel())
        return sum(values) / sum(ref[0].numel() for ref in self.reference)


def _bounds(evaluator: _Evaluator, scales: list[torch.Tensor], i: int, act_max: torch.Tensor,
            act_limit: float, headroom: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(low, high, fixed) for the scales of hidden layer ``i`` given the other layers' scales."""
    layers = evaluator.work.layers
    w_limit = (WEIGHT_LIMIT - 1) / 2.0 ** layers[i].weight_bits
    trial = [s.clone() for s in scales]
    trial[i] = torch.ones_like(trial[i])
    weights = _scaled(evaluator.originals, layers, trial)
    this, nxt = layers[i], layers[i + 1]
    high = w_limit / _abs_max(this, weights[i][0], _out_dim(this)).clamp_min(1e-300)
    low = _abs_max(nxt, weights[i + 1][0], 1 - _out_dim(nxt)) / ((WEIGHT_LIMIT - 1) / 2.0 ** nxt.weight_bits)
    fixed = (act_max <= 0) | (act_max >= act_limit * (1 - 1e-6))
    range_high = torch.clamp(act_limit / (headroom * act_max.clamp_min(1e-300)), min=1.0)
    high = torch.minimum(high, range_high)
    return low, high, fixed


@torch.no_grad()
def quantize_prior(hs: FixedPointHyperSynthesis, calibration_z: list[torch.Tensor], log2_gain: torch.Tensor,
                   headroom: float = 2.0, passes: int = 2) -> PTQResult:
    """Convert a float-trained hyper-synthesis to the fixed-point grids, in place.

    Chooses, per hidden layer, per-channel scales ``s = clip(alpha * base, low, high)``
    from two families (``base = 1 / max activation``: equal activation ranges; ``base =
    sqrt(max |next weight| / max activation)``: cross-layer equalisation) and the unscaled
    network, with ``alpha`` a power of two (1..256 and 1/64..64), by coordinate search over the
    hidden layers (``passes`` rounds) minimising :func:`prior_kl_bits` on the calibration
    set (candidates evaluated through the float32 training face on the grids, the reported
    KLs exactly). ``low`` / ``high`` keep every scaled weight inside the 16-bit range and the activation clamp outside ``headroom`` times the
    calibrated range (see the module docstring for what is guaranteed).

    On return ``hs`` holds the rescaled float weights and ``hs.fake_quant`` is True;
    export as usual (``update_tables`` / ``export_weights``).

    Args:
      hs: the float-trained hyper-synthesis.
      calibration_z: integer-valued tensors (B, Cz, h, w): hyper-latents of calibration
        images (e.g. a few training crops at several qualities).
      log2_gain: float (Q, C): log2 gains of the qualities the KL is averaged over (for a
        :class:`~neurocodec.models.VariableRateCodec`: ``log_gain / ln 2``).
      headroom: factor of range kept above each channel's calibrated maximum.
      passes: rounds of the coordinate search.
    Returns:
      a :class:`PTQResult`.
    """
    n_hidden = len(hs.layers) - 1
    act_max = hidden_activation_max(hs, calibration_z)
    evaluator = _Evaluator(hs, calibration_z, log2_gain)
    scales = [torch.ones(len(m), dtype=torch.float64) for m in act_max]
    best = evaluator.kl(scales)
    result = PTQResult(scales=scales, activation_max=act_max, kl_bits_rounded=evaluator.kl(scales, exact=True),
                       kl_bits=best)
    alphas = {"range": [2.0**k for k in range(0, 9)], "equalise": [2.0**k for k in range(-6, 7)]}
    for _ in range(passes):
        for i in range(n_hidden):
            low, high, fixed = _bounds(evaluator, scales, i, act_max[i], hs.act_max, headroom)
            nxt = evaluator.work.layers[i + 1]
            next_max = _abs_max(nxt, _scaled(evaluator.originals, evaluator.work.layers, scales)[i + 1][0],
                                1 - _out_dim(nxt)) * scales[i]  # in the unscaled units of channel i
            m = act_max[i].clamp_min(1e-12)
            bases = {"range": 1.0 / m, "equalise": torch.sqrt(next_max.clamp_min(1e-12) / m)}
            for family, grid in alphas.items():
                for alpha in grid:
                    candidate = torch.clamp(alpha * bases[family], min=low)
                    candidate = torch.minimum(candidate, high)
                    candidate = torch.where(fixed, torch.ones_like(candidate), candidate)
                    trial = [s.clone() for s in scales]
                    trial[i] = candidate
                    kl = evaluator.kl(trial)
                    if kl < best:
                        best, scales = kl, trial
                        result.choices.append((i, family, alpha, kl))
    result.fixed_channels = [int(_bounds(evaluator, scales, i, act_max[i], hs.act_max, headroom)[2].sum())
                             for i in range(n_hidden)]
    result.scales, result.kl_bits = scales, evaluator.kl(scales, exact=True)
    for layer, (w, b) in zip(hs.layers, _scaled(evaluator.originals, hs.layers, scales)):
        layer.weight.copy_(w.to(layer.weight.dtype))
        layer.bias.copy_(b.to(layer.bias.dtype))
    hs.fake_quant = True
    return result
