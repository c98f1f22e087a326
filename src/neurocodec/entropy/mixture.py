"""Gaussian mixture conditional entropy model, coded exactly with integer pmfs.

The latents are modelled, given the hyper-latents, by a mixture of ``K`` discretised
Gaussians per element (Cheng et al., "Learned image compression with discretized Gaussian
mixture likelihoods and attention modules", CVPR 2020). The hyper-analysis, z density and
hyper-synthesis are those of :class:`~neurocodec.entropy.hyperprior.MeanScaleHyperprior`;
a 1x1 fixed-point head on the hyper-synthesis' last hidden features adds, per latent and
component, a correction of the hyperprior's unscaled mean and log2-scale and a weight
logit (:class:`MixtureHyperSynthesis`). The quality's gain enters every component as in
:func:`~neurocodec.entropy.quality_head.scale_prior`, so one prior serves all qualities.

**Coding face (exact).** Everything that decides a probability is integer arithmetic:

* component means are integers (``round(gain * mean_u)``), scales are indexes into the
  96 zero-mean scale tables (:attr:`HyperpriorFamily.y_tables`, 16-bit integer
  frequencies built once at export), and weights are integers summing to
  ``2**WEIGHT_BITS``, from the logits through the weight file's integer exp2 table
  (:func:`mixture_weights_exact`);
* the pmf of an element over a window of ``B`` consecutive values is
  ``g(v) = sum_k W_k f_{idx_k}(v - mu_k)`` (int64, total mass ``2**(16 + WEIGHT_BITS)``
  including the escape's share: every component's mass outside the window), renormalised
  to ``2**PMF_PRECISION`` with every entry >= 1 (:func:`mixture_pmfs`);
* the window is the union of the components' *cores* (their tables trimmed of tails
  that, weighted, hold less than ``2**(1 - CORE_TAIL_BITS)`` of the mass), clipped to
  ``MAX_WINDOW`` values around the *anchor* (the mean of the heaviest component) and
  widened to a width from :data:`WINDOW_WIDTHS` (:func:`mixture_windows`); values outside
  are the escape entry plus a bypass code of ``round(y) - anchor`` (the bypass of
  :mod:`neurocodec.coding.cpu`): any int32 symbol is codable;
* elements are coded grouped by window width (increasing), each group in C order and in
  chunks, with constriction's lazy ``Categorical`` family (``perfect=False``) given the
  integer frequencies as float64: integers below 2**53 summing to a power of two, so its
  re-quantisation to 24 bits is exact (``floor(C_i * (2**24 - B - 1) / 2**PMF_PRECISION)
  + i``, ``C_i`` the cumulative frequency);
* elements with equal (mean - anchor, index, weight) K-tuples have equal windows (relative
  to their anchors) and pmfs, so each distinct tuple's are built once (:func:`_plan`, found
  exactly by :func:`_distinct`) and shared by the coder and rate-distortion rounding; this
  changes no byte.

**Training face.** ``-log2`` of the mixture's mass of the unit interval around the noisy
(or straight-through rounded) latent, from the same quantised parameters (integer means,
table scales, clamped logits), in log space (:func:`mixture_bits`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..coding.identity_cache import IdentityCache
from ..errors import FormatError
from .base import RATE_PROXIES, EntropyOutput, uniform_noise
from .context import Y_HAT_LIMIT     # |round(y)| is clamped here, as in the context model
from .fixedpoint import FixedPointConv, fake_requantise, float_requantise, requantise_exact, round_ste
from .gaussian import gaussian_bits
from .hyperprior import Z_LIMIT, FixedPointHyperSynthesis, HyperpriorFamily, HyperSymbols
from .quality_head import (_STEP_BITS, GAIN_BITS, LOG2_SCALE_MIN, LOG2_SCALE_STEP, LOG_BITS, fixed_point_gain,
                           scale_prior, scale_prior_exact)
from .rd_rounding import rd_round_by

WEIGHT_BITS = 16            # integer mixture weights sum to 2**WEIGHT_BITS
LOGIT_LIMIT = 8.0           # unscaled weight logits (log2 units) are clamped to +-8 ...
LOGIT_GAP = 16              # ... so a weight is at least 2**-16 of the heaviest one (exp2 >= 1)
# Initial logit gap between component 0 and the others: their weight starts at 2**-15
# (negligible, so the mixture starts as the hyperprior), one step above the LOGIT_GAP floor
# and half a unit inside the clamp, where gradients still reach the logits.
INITIAL_LOGIT_GAP = 15
PMF_PRECISION = 20          # bits of the per-element pmfs handed to the range coder
MAX_WINDOW = 4096           # at most this many values per element have their own entry
# Window widths (a width is rounded up to the next of these, so that elements with equal
# widths are coded by one coder call): 2, 3, 4, 6, 8, 12, ..., 3072, 4096.
WINDOW_WIDTHS = np.array(sorted({2, *(w for i in range(1, 12) for w in (2**i, 3 * 2**(i - 1)))} | {MAX_WINDOW}),
                         dtype=np.int64)
CHUNK_ENTRIES = 2**19       # pmf entries built per coder call (bounds memory)
ANCHOR_LIMIT = 2**30        # so that round(y) - anchor always fits int32

assert WINDOW_WIDTHS[-1] == MAX_WINDOW and MAX_WINDOW + 1 < 2**PMF_PRECISION


# --------------------------------------------------------------------------- #
# Prior network
# --------------------------------------------------------------------------- #


def _exact(layer: FixedPointConv, x: torch.Tensor, params: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    """``layer.forward_exact`` with the integer weight and bias ``params[key + ".weight" / ".bias"]``."""
    return layer.forward_exact(x, params[key + ".weight"].to(torch.float64), params[key + ".bias"].to(torch.float64))


class MixtureHyperSynthesis(FixedPointHyperSynthesis):
    """``round(z)`` -> K (mean, scale index, weight logit) per latent, quality-aware, exact.

    The layers of :class:`FixedPointHyperSynthesis` (same names, so a trained hyperprior
    warm-starts them) plus ``mixture``, a 1x1 fixed-point convolution on the last hidden
    features whose ``3 K C`` outputs are laid out ``[part, k, c]`` (part 0: mean
    correction, 1: log2-scale correction, 2: weight logit). Its accumulator shares the
    grid of the 3x3 output layer, so component ``k``'s unscaled mean (log2-scale) is the
    *exact sum* of the hyperprior's accumulator and the correction, requantised once.

    The correction starts at zero weights with biases that give component 0 exactly the
    hyperprior's mean and log2-scale and the largest logit, and the others the same mean,
    scales ``2**-1, 2**1, 2**-2, ...`` times as large and a logit ``INITIAL_LOGIT_GAP``
    (15) below it: weight ``2**-15`` each in the training face and 1 unit of
    ``2**WEIGHT_BITS`` in the coding face (:func:`mixture_weights_exact`). A mixture
    warm-started from a trained hyperprior therefore *is* that hyperprior's Gaussian at
    step 0, up to ``(K - 1) 2**-15`` of each element's mass; the components differ, so
    their gradients do too, and their logits sit inside the ``LOGIT_GAP`` floor (where the
    gradient is zero), so training can still raise them.

    Args:
      hyper_channels, hidden, latent_channels, mean_bits, act_bits, act_max, weight_bits:
        as for :class:`FixedPointHyperSynthesis`.
      components: K >= 1.
    """

    logit_limit = LOGIT_LIMIT

    def __init__(self, hyper_channels: int, hidden: int, latent_channels: int, components: int = 3,
                 mean_bits: int = 8, act_bits: int = 8, act_max: float = 255.0, weight_bits: int = 12):
        super().__init__(hyper_channels, hidden, latent_channels, mean_bits, act_bits, act_max, weight_bits)
        if not 1 <= int(components) <= 16:
            raise ValueError(f"components must be in [1, 16], got {components!r}")
        self.components = k = int(components)
        self.mixture = FixedPointConv(hidden, 3 * k * latent_channels, 1, 1, weight_bits=weight_bits,
                                      act_bits=act_bits)
        with torch.no_grad():
            self.mixture.weight.zero_()
            bias = self.mixture.bias.view(3, k, latent_channels)
            bias.zero_()
            for j in range(1, k):  # scale offsets -1, +1, -2, +2, ... (log2)
                bias[1, j] = (-1.0 if j % 2 else 1.0) * ((j + 1) // 2)
            bias[2] = -INITIAL_LOGIT_GAP / 2
            bias[2, 0] = INITIAL_LOGIT_GAP / 2

    @property
    def fake_quant(self) -> bool:
        """As :attr:`FixedPointHyperSynthesis.fake_quant`, for the mixture head too."""
        return self.layers[0].fake_quant

    @fake_quant.setter
    def fake_quant(self, enabled: bool) -> None:
        for layer in (*self.layers, self.mixture):
            layer.fake_quant = bool(enabled)

    def _combine(self, base: torch.Tensor, head: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Accumulators of the 3x3 output layer (B, 2C, H, W) and of the head (B, 3KC, H, W)
        -> (mean, log-scale, logit) accumulators (B, K, C, H, W), summed on their shared grid."""
        b, _, h, w = base.shape
        c, k = self.latent_channels, self.components
        base = base.view(b, 1, 2, c, h, w)
        head = head.view(b, 3, k, c, h, w)
        return base[:, :, 0] + head[:, 0], base[:, :, 1] + head[:, 1], head[:, 2]

    # -- training face -------------------------------------------------------------
    def unscaled(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training face of the network alone.

        Args:
          z_hat: float32 (B, Cz, h, w), integers (straight-through rounded).
        Returns:
          (mean_u, log_scale_u, logit_u): float32 (B, K, C, 4h, 4w) each, on the grids
          ``2**-mean_bits``, ``2**-LOG_BITS``, ``2**-LOG_BITS`` (logits clamped to
          ``+-logit_limit``), with straight-through gradients.
        """
        requantise = fake_requantise if self.fake_quant else float_requantise
        h = z_hat
        for layer in self.layers[:-1]:
            h = requantise(layer(h), self.act_bits, 0.0, self.act_max)
        mean_acc, log_scale_acc, logit_acc = self._combine(self.layers[-1](h), self.mixture(h))
        return (requantise(mean_acc, self.mean_bits, -self.mean_limit, self.mean_limit),
                requantise(log_scale_acc, LOG_BITS, -self.log_scale_limit, self.log_scale_limit),
                requantise(logit_acc, LOG_BITS, -self.logit_limit, self.logit_limit))

    def forward(self, z_hat: torch.Tensor, log2_gain: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training face.

        Args:
          z_hat: float32 (B, Cz, h, w), integers (straight-through rounded).
          log2_gain: float32 (B, C, 1, 1).
        Returns:
          (mean, index, logit): float32 (B, K, C, 4h, 4w) each; means and table indexes are
          integers (as :func:`scale_prior` gives them), logits on the ``2**-LOG_BITS`` grid.
        """
        mean_u, log_scale_u, logit_u = self.unscaled(z_hat)
        mean, index = scale_prior(mean_u, log_scale_u, log2_gain.unsqueeze(1), self.num_scales)
        return mean, index, logit_u

    # -- coding face -------------------------------------------------------------------
    def integer_parameters(self) -> dict[str, torch.Tensor]:
        """The hyper-synthesis' integer parameters plus ``mixture.weight`` (int16) and
        ``mixture.bias`` (int64)."""
        params = super().integer_parameters()
        params["mixture.weight"] = self.mixture.integer_weight().to(torch.int16)
        params["mixture.bias"] = self.mixture.integer_bias().to(torch.int64)
        return params

    def _accumulators(self, z_symbols: torch.Tensor, params: dict[str, torch.Tensor]
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact accumulators (float64 integers) of the 3x3 output layer (B, 2C, H, W) and of
        the head (B, 3KC, H, W), on their shared ``2**-out_bits`` grid."""
        h = self._hidden_exact(z_symbols, params)
        return _exact(self.layers[-1], h, params, str(len(self.layers) - 1)), _exact(self.mixture, h, params, "mixture")

    def _hidden_exact(self, z_symbols: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """The last hidden features (float64 integers, (B, hidden, H, W)) of the exact path."""
        h = torch.clamp(z_symbols.to(torch.float64), -Z_LIMIT, Z_LIMIT)
        high = self.act_max * 2**self.act_bits
        for i, layer in enumerate(self.layers[:-1]):
            h = requantise_exact(_exact(layer, h, params, str(i)), layer.out_bits - self.act_bits, 0.0, high)
        return h

    @torch.no_grad()
    def unscaled_exact(self, z_symbols: torch.Tensor, params: dict[str, torch.Tensor]
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Coding face of the network alone, bit-exact on every machine.

        Args:
          z_symbols: integer tensor (B, Cz, h, w).
          params: from :meth:`integer_parameters` (as stored in a weight file).
        Returns:
          (mean_u, log_scale_u, logit_u): int64 (B, K, C, 4h, 4w) each, in units of
          ``2**-mean_bits``, ``2**-LOG_BITS`` and ``2**-LOG_BITS``, clamped as in
          :meth:`unscaled`.
        """
        mean_acc, log_scale_acc, logit_acc = self._combine(*self._accumulators(z_symbols, params))
        shift = self.mixture.out_bits     # == self.layers[-1].out_bits (same weight and act bits)
        mean_max = self.mean_limit * 2**self.mean_bits
        log_max = self.log_scale_limit * 2**LOG_BITS
        logit_max = self.logit_limit * 2**LOG_BITS
        return (requantise_exact(mean_acc, shift - self.mean_bits, -mean_max, mean_max).to(torch.int64),
                requantise_exact(log_scale_acc, shift - LOG_BITS, -log_max, log_max).to(torch.int64),
                requantise_exact(logit_acc, shift - LOG_BITS, -logit_max, logit_max).to(torch.int64))

    @torch.no_grad()
    def forward_exact(self, z_symbols: torch.Tensor, params: dict[str, torch.Tensor], log2_gain: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Coding face: bit-exact on every machine.

        Args:
          z_symbols: integer tensor (1, Cz, h, w).
          params: :meth:`integer_parameters` plus ``exp2``, as stored in a weight file.
          log2_gain: int64 (C,) in units of ``2**-LOG_BITS`` (:func:`quality_log2_gain`).
        Returns:
          (mean, index, weight): int64 (1, K, C, 4h, 4w) each: integer means of the scaled
          latents, scale-table indexes, and integer weights summing to ``2**WEIGHT_BITS``
          over K (:func:`mixture_weights_exact`).
        """
        if z_symbols.shape[0] != 1:
            raise ValueError(f"the coding face takes one image, got a batch of {z_symbols.shape[0]}")
        mean_u, log_scale_u, logit_u = self.unscaled_exact(z_symbols, params)
        mean, index = scale_prior_exact(mean_u[0], log_scale_u[0], log2_gain, params["exp2"], self.mean_bits,
                                        self.num_scales)
        return mean[None], index[None], mixture_weights_exact(logit_u, params["exp2"], dim=1)


    @torch.no_grad()
    def prior_exact(self, z_symbols: torch.Tensor, params: dict[str, torch.Tensor], log2_gain: torch.Tensor
                    ) -> "MixturePrior":
        """``MixturePrior.from_tensors(*forward_exact(...))``, the same integers, faster.

        The convolutions are :meth:`forward_exact`'s, the 1x1 head's run on blocks of rows (of
        the latent grid); each block's element-wise rest (requantisation,
        :func:`scale_prior_exact`, :func:`mixture_weights_exact`, anchors) follows in numpy
        while the block is in cache, in the same integer arithmetic (float64 holding integers
        below 2**53 where that is exact, int64 elsewhere)."""
        if z_symbols.shape[0] != 1:
            raise ValueError(f"the coding face takes one image, got a batch of {z_symbols.shape[0]}")
        h = self._hidden_exact(z_symbols, params)
        base = _exact(self.layers[-1], h, params, str(len(self.layers) - 1)).numpy()[0]
        c, k = self.latent_channels, self.components
        rows, cols = base.shape[-2:]
        base = base.reshape(2, c, rows, cols)
        lg = log2_gain.to(torch.int64).view(-1)
        gain = fixed_point_gain(lg.view(1, -1, 1, 1), params["exp2"]).numpy().reshape(c, 1, 1).astype(np.int64)
        index_offset = (lg - int(LOG2_SCALE_MIN * 2**LOG_BITS) + (1 << (_STEP_BITS - 1))).numpy()
        index_offset = index_offset.astype(np.float64).reshape(c, 1, 1)
        exp2 = _exp2_of_gap(params["exp2"]).astype(np.float64)
        step = 2.0**-_STEP_BITS
        shift = self.mixture.out_bits
        mean_scale, log_scale = 2.0**-(shift - self.mean_bits), 2.0**-(shift - LOG_BITS)
        mean_max = self.mean_limit * 2**self.mean_bits
        log_max = self.log_scale_limit * 2**LOG_BITS
        logit_max = self.logit_limit * 2**LOG_BITS
        gain_shift = self.mean_bits + GAIN_BITS
        means = np.empty((k, c, rows, cols), np.int64)
        indexes = np.empty((k, c, rows, cols), np.int32)
        weights = np.empty((k, c, rows, cols), np.uint32)
        anchors = np.empty((c, rows, cols), np.int64)
        block = max(1, PRIOR_BLOCK // (c * cols))
        for r0 in range(0, rows, block):
            # the head's accumulators of a block of rows, while they are in cache
            sl = slice(r0, min(r0 + block, rows))
            head = _exact(self.mixture, h[:, :, sl], params, "mixture").numpy().reshape(3, k, c, -1, cols)
            bs = base[:, :, sl]
            # means: requantise_exact of the summed accumulators, then round(gain * mean_u)
            x = np.add(head[0], bs[0])
            x *= mean_scale
            x += 0.5
            np.floor(x, out=x)
            np.clip(x, -mean_max, mean_max, out=x)
            m = x.astype(np.int64)
            m *= gain
            m += 1 << (gain_shift - 1)
            m >>= gain_shift
            means[:, :, sl] = m
            # table indexes: (log_scale_u + offset) >> _STEP_BITS, clamped (float64: exact)
            np.add(head[1], bs[1], out=x)
            x *= log_scale
            x += 0.5
            np.floor(x, out=x)
            np.clip(x, -log_max, log_max, out=x)
            x += index_offset
            x *= step
            np.floor(x, out=x)
            np.clip(x, 0, self.num_scales - 1, out=x)
            indexes[:, :, sl] = x
            # weights (mixture_weights_exact) from the requantised logits
            np.multiply(head[2], log_scale, out=x)
            x += 0.5
            np.floor(x, out=x)
            np.clip(x, -logit_max, logit_max, out=x)
            logit = x.astype(np.int64)
            top, lead = _first_max(logit)
            gap = top - logit
            np.minimum(gap, LOGIT_GAP * 2**LOG_BITS, out=gap)
            w = np.take(exp2, gap)                        # in [1, 2**16] (float64 integers)
            total = w.sum(axis=0)
            w *= float(2**WEIGHT_BITS)
            w /= total                                    # floor of this is exact (< 2**-37 off)
            np.floor(w, out=w)
            missing = 2**WEIGHT_BITS - w.sum(axis=0)      # float64 integers, all exact
            for j in range(k):                            # the units the floors lose go to the lead
                np.add(w[j], missing, out=w[j], where=lead == j)
            weights[:, :, sl] = w
            _, heaviest = _first_max(w)                   # the first of equal weights
            anchor = m[0].copy()
            for j in range(1, k):
                np.copyto(anchor, m[j], where=heaviest == j)
            anchors[:, sl] = np.clip(anchor, -ANCHOR_LIMIT, ANCHOR_LIMIT)
        return MixturePrior(means.reshape(k, -1), indexes.reshape(k, -1), weights.reshape(k, -1), anchors.ravel())


PRIOR_BLOCK = 2**14     # elements (latents) per block of prior_exact and _distinct


def _first_max(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max, index of the first maximum) over axis 0 of a (K, ...) array, as ``np.argmax``
    (K contiguous passes instead of a strided reduction)."""
    top = a[0].copy()
    lead = np.zeros(top.shape, np.int8)
    for j in range(1, a.shape[0]):
        np.copyto(lead, j, where=a[j] > top)
        np.maximum(top, a[j], out=top)
    return top, lead


def _exp2_of_gap(exp2: torch.Tensor) -> np.ndarray:
    """int64 (LOGIT_GAP * 2**LOG_BITS + 1,): :func:`exp2_nonpositive` of ``-gap`` for every gap."""
    gaps = torch.arange(LOGIT_GAP * 2**LOG_BITS + 1, dtype=torch.int64)
    return exp2_nonpositive(-gaps, exp2).numpy()


def mixture_weights_exact(logit: torch.Tensor, exp2: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Integer mixture weights from fixed-point logits: ``2**l_k / sum_j 2**l_j`` in
    ``2**-WEIGHT_BITS`` units, exactly.

    ``e_k = 2**(-min(l_max - l_k, LOGIT_GAP)) * 2**16`` from the exp2 table (an integer in
    ``[1, 2**16]``); ``W_k = floor(e_k 2**WEIGHT_BITS / sum_j e_j)``; the few units the floors
    lose go to the heaviest component (the first of equal ones), so the weights sum to
    exactly ``2**WEIGHT_BITS``.

    Args:
      logit: int64 (..., K, ...) in units of ``2**-LOG_BITS``, K along ``dim``.
      exp2: int64 (2**LOG_BITS,) exp2 table of the weight file.
    Returns:
      int64, same shape, >= 0, summing to ``2**WEIGHT_BITS`` along ``dim``.
    """
    logit = logit.to(torch.int64)
    top, lead = torch.max(logit, dim=dim, keepdim=True)   # the first maximum (documented torch behaviour)
    gap = torch.clamp(top - logit, max=LOGIT_GAP * 2**LOG_BITS)
    e = exp2_nonpositive(-gap, exp2)                      # 2**-16 units, in [1, 2**16]
    weight = torch.div(e * 2**WEIGHT_BITS, e.sum(dim=dim, keepdim=True), rounding_mode="floor")
    missing = 2**WEIGHT_BITS - weight.sum(dim=dim, keepdim=True)
    return weight.scatter_add(dim, lead, missing)


def exp2_nonpositive(x: torch.Tensor, exp2: torch.Tensor) -> torch.Tensor:
    """:func:`~neurocodec.entropy.quality_head.fixed_point_gain` for exponents ``x <= 0``
    (int64, ``2**-LOG_BITS`` units), with shifts instead of powers (several times faster on
    the K x C x H x W logits): ``exp2[x mod 2**LOG_BITS] >> ceil(-x / 2**LOG_BITS)``."""
    fraction = torch.bitwise_and(x, 2**LOG_BITS - 1)
    shift = torch.bitwise_right_shift(-x + (2**LOG_BITS - 1), LOG_BITS)
    return torch.bitwise_right_shift(exp2.to(torch.int64)[fraction], shift)


def mixture_log_weights(logit: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Training face of :func:`mixture_weights_exact`: natural-log weights (float), with the
    same ``LOGIT_GAP`` floor relative to the heaviest component."""
    top = torch.amax(logit, dim=dim, keepdim=True).detach()
    return torch.log_softmax(torch.maximum(logit, top - LOGIT_GAP) * math.log(2.0), dim=dim)


def mixture_bits(values: torch.Tensor, mean: torch.Tensor, index: torch.Tensor, logit: torch.Tensor
                 ) -> torch.Tensor:
    """Information content (bits) of the unit intervals around ``values`` under the mixtures.

    ``-log2 sum_k w_k P_k``, ``P_k`` the mass of ``[v - 1/2, v + 1/2]`` under component
    ``k``, evaluated as a log-sum-exp of the per-component log-masses of
    :func:`~neurocodec.entropy.gaussian.gaussian_bits` (log space, so far-off values keep a
    finite cost and a gradient; the same soft cap above 40 bits per component).

    Args:
      values: float (B, C, H, W), the (noisy or rounded) scaled latents.
      mean, index, logit: float (B, K, C, H, W) as :meth:`MixtureHyperSynthesis.forward`
        returns them.
    Returns:
      float (B, C, H, W), bits >= 0 (up to float rounding).
    """
    scale = torch.exp2(LOG2_SCALE_MIN + index * LOG2_SCALE_STEP)
    log_mass = -gaussian_bits(values.unsqueeze(1) - mean, scale) * math.log(2.0)
    return -torch.logsumexp(mixture_log_weights(logit) + log_mass, dim=1) / math.log(2.0)


# --------------------------------------------------------------------------- #
# Integer pmfs and the coder
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class MixturePrior:
    """Exact prior of N latents, flattened in C order of (C, H, W).

    Component-major, so that every per-component operation runs on contiguous arrays.

    Attributes:
      means: int64 (K, N), integer component means (of the scaled latents).
      indexes: int32 (K, N), scale-table indexes in ``[0, num_tables)``.
      weights: uint32 (K, N), each column summing to ``2**WEIGHT_BITS``.
      anchors: int64 (N,), the mean of the heaviest component (the first of equal ones),
        clamped to ``+-ANCHOR_LIMIT``; escaped values are sent as ``value - anchor``.
    """

    means: np.ndarray
    indexes: np.ndarray
    weights: np.ndarray
    anchors: np.ndarray
    # coding plans (:func:`_plan`) by tables, built on first use: the arrays above are read
    # as immutable once a prior has been coded or costed
    _plans: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_tensors(cls, mean: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> "MixturePrior":
        """From int64 (1, K, C, H, W) tensors (:meth:`MixtureHyperSynthesis.forward_exact`)."""
        k = mean.shape[1]

        def rows(t: torch.Tensor, dtype) -> np.ndarray:
            return np.ascontiguousarray(t[0].reshape(k, -1).numpy().astype(dtype))

        means, indexes, weights = rows(mean, np.int64), rows(index, np.int32), rows(weight, np.uint32)
        heaviest = np.argmax(weights, axis=0)             # the first of equal weights
        anchors = np.clip(np.take_along_axis(means, heaviest[None], 0)[0], -ANCHOR_LIMIT, ANCHOR_LIMIT)
        return cls(means, indexes, weights, anchors)

    def __len__(self) -> int:
        return int(self.anchors.shape[0])

    def take(self, rows) -> "MixturePrior":
        """The prior of a subset of the elements (integer positions or a slice)."""
        return MixturePrior(self.means[:, rows], self.indexes[:, rows], self.weights[:, rows], self.anchors[rows])


# Window rule: component k contributes its *core*, the part of its table outside which at
# most 2**(level_k - CORE_TAIL_BITS) of the table's mass lies, level_k = WEIGHT_BITS -
# floor(log2 W_k). As W_k < 2**(WEIGHT_BITS + 1 - level_k), every component leaves less than
# 2**(1 - CORE_TAIL_BITS) of the element's mass outside the window (to the escape) whatever
# its weight, and light components widen windows little. Weight 0: no core at all.
CORE_TAIL_BITS = 14
WEIGHT_LEVELS = WEIGHT_BITS + 1                  # levels 0 .. WEIGHT_BITS; one more row: weight 0
_NO_CORE = 2**40                                 # the weight-0 row: an empty core (low > high)
_LEVEL_OF_WEIGHT = np.concatenate([[WEIGHT_LEVELS], [WEIGHT_BITS - int(w).bit_length() + 1
                                                     for w in range(1, 2**WEIGHT_BITS + 1)]]).astype(np.int64)
FLAT_GATHER_WIDTH = 8                           # narrower windows gather entries, wider ones rows


@dataclass(frozen=True)
class _TableArrays:
    """Integer views of the scale tables for pmf building (derived once per tables object)."""

    padded: np.ndarray      # uint32: MAX_WINDOW zeros, table 0's in-range freqs, MAX_WINDOW zeros, table 1's ...
    starts: np.ndarray      # int64 (T,): position in ``padded`` of value ``minima[t]``
    minima: np.ndarray      # int64 (T,)
    sizes: np.ndarray       # int64 (T,)
    core_low: np.ndarray    # int64 ((WEIGHT_LEVELS + 1) * T,): first value of the core, relative to the mean
    core_high: np.ndarray   # int64 ((WEIGHT_LEVELS + 1) * T,): last value of the core; row-major [level, table]


_table_arrays_cache: IdentityCache[_TableArrays] = IdentityCache()


def _table_arrays(tables) -> _TableArrays:
    """Padded frequencies and core ranges of ``tables`` (cached while the tables live)."""
    return _table_arrays_cache.get(tables, _build_table_arrays)


def _build_table_arrays(tables) -> _TableArrays:
    sizes = tables.sizes.astype(np.int64)
    minima = tables.minima.astype(np.int64)
    pieces, starts, position = [np.zeros(MAX_WINDOW, np.uint32)], [], MAX_WINDOW
    low = np.full((WEIGHT_LEVELS + 1, len(sizes)), _NO_CORE, np.int64)
    high = np.full_like(low, -_NO_CORE)
    for t, n in enumerate(sizes):
        freqs = tables.freqs[tables.offsets[t]:tables.offsets[t] + n].astype(np.int64)
        pieces += [freqs.astype(np.uint32), np.zeros(MAX_WINDOW, np.uint32)]
        starts.append(position)
        position += int(n) + MAX_WINDOW
        # Trim from each end while the trimmed mass stays within half the level's budget;
        # the mode always stays (integer cumulative sums: exact).
        mode = int(np.argmax(freqs))
        left = np.concatenate([[0], np.cumsum(freqs)])[:mode + 1]             # mass before entry i
        right = np.concatenate([[0], np.cumsum(freqs[::-1])])[:n - mode]      # mass after entry n-1-i
        for level in range(WEIGHT_LEVELS):
            budget = (1 << tables.precision) >> max(CORE_TAIL_BITS - level + 1, 0)
            low[level, t] = minima[t] + np.searchsorted(left, budget, side="right") - 1
            high[level, t] = minima[t] + n - np.searchsorted(right, budget, side="right")
    return _TableArrays(np.concatenate(pieces), np.asarray(starts, np.int64), minima, sizes, low.ravel(),
                        high.ravel())


def mixture_windows(prior: MixturePrior, tables, max_width: int = MAX_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Coding windows: element ``i`` has an entry for each value ``lo[i] .. lo[i] + width[i] - 1``.

    The union of the components' *cores* (the part of component k's table outside which
    at most ``2**(level_k - CORE_TAIL_BITS)`` of its mass lies, ``level_k = WEIGHT_BITS -
    floor(log2 W_k)``; components of weight 0 add nothing), clipped to
    ``[anchor - max_width / 2, anchor + max_width / 2 - 1]`` (the window always holds the
    anchor), then widened upwards to the next width of :data:`WINDOW_WIDTHS`. Integer
    arithmetic only.

    Returns:
      (lo, width): int64 (N,) each; ``2 <= width <= max_width``.
    """
    arrays = _table_arrays(tables)
    a = prior.anchors
    lo, hi = a, a
    for means, indexes, weights in zip(prior.means, prior.indexes, prior.weights):
        key = _LEVEL_OF_WEIGHT[weights] * len(arrays.sizes) + indexes
        lo = np.minimum(lo, means + arrays.core_low[key])
        hi = np.maximum(hi, means + arrays.core_high[key])
    half = max_width // 2
    lo = np.maximum(lo, a - half)
    hi = np.minimum(hi, a + half - 1)
    widths = WINDOW_WIDTHS[WINDOW_WIDTHS <= max_width]
    width = widths[np.minimum(np.searchsorted(widths, hi - lo + 1), len(widths) - 1)]
    return lo, width


def _pmf_rows(prior: MixturePrior, lo: np.ndarray, width: int, arrays: _TableArrays, precision: int,
              table_precision: int) -> np.ndarray:
    """:func:`mixture_pmfs` as float64 holding the integers (what constriction is given).

    Every step is exact: the mixture mass ``g`` is uint32 (``sum_k W_k f_k <= 2**16 (2**16 -
    1)``); ``g * free < 2**52`` is exact in float64, scaling by ``2**-shift`` is exact, and
    so are the floor and the row sums of integers below 2**53, in any order.
    """
    shift = table_precision + WEIGHT_BITS
    if shift != 32 or not 1 <= precision <= 20:
        raise ValueError(f"pmfs need 16-bit tables and precision <= 20 (got {table_precision}, {precision})")
    n = len(prior)
    if width <= FLAT_GATHER_WIDTH:     # numpy copies many tiny rows slower than single entries
        steps = np.arange(width, dtype=np.int64)

        def gather(start):
            return np.take(arrays.padded, start[:, None] + steps)
    else:
        windows = np.lib.stride_tricks.sliding_window_view(arrays.padded, width)

        def gather(start):
            return windows[start]
    mass = np.zeros((n, width), dtype=np.uint32)
    for means, indexes, weights in zip(prior.means, prior.indexes, prior.weights):
        # offset of lo in table idx_k, clipped so that the rows stay inside the zero padding
        first = np.clip(lo - means - arrays.minima[indexes], -width, arrays.sizes[indexes])
        mass += weights[:, None] * gather(arrays.starts[indexes] + first)
    pmf = np.empty((n, width + 1), dtype=np.float64)
    scale = float((1 << precision) - (width + 1)) * 2.0**-shift
    np.multiply(mass, scale, out=pmf[:, :width])
    escape = pmf[:, width]
    np.subtract(1 << shift, mass.sum(axis=1, dtype=np.int64), out=escape, casting="unsafe")
    escape *= scale
    np.floor(pmf, out=pmf)
    pmf += 1.0
    lead = np.argmax(pmf, axis=1)
    pmf[np.arange(n), lead] += float(1 << precision) - _row_sums(pmf)
    return pmf


def _row_sums(a: np.ndarray) -> np.ndarray:
    """Row sums of a float64 (n, m) array of integers below 2**53 (exact in any order);
    column by column for narrow rows, where numpy's strided reduction is slow."""
    if a.shape[1] > FLAT_GATHER_WIDTH + 1:
        return a.sum(axis=1)
    total = a[:, 0].copy()
    for j in range(1, a.shape[1]):
        total += a[:, j]
    return total


def mixture_pmfs(prior: MixturePrior, lo: np.ndarray, width: int, tables, precision: int = PMF_PRECISION
                 ) -> np.ndarray:
    """Integer pmfs of elements sharing one window width, exact and vectorised.

    ``g(v) = sum_k W_k f_{idx_k}(v - mu_k)`` for the ``width`` values of each window
    (``f_t`` the in-range frequencies of table t, zero outside), plus an escape entry
    holding the rest of the total ``M = 2**(16 + WEIGHT_BITS)`` (each component's mass
    outside the window, its table's escape frequency included). Then
    ``q = 1 + floor(g * (2**precision - width - 1) / M)``, and the units the floors lose
    go to the largest entry (the first of equal ones).

    Args:
      prior: the elements' prior (n rows).
      lo: int64 (n,) first value of each window.
      width: the common window width B, at most ``MAX_WINDOW``.
      tables: the 16-bit scale tables (:class:`~neurocodec.coding.IntTables`).
      precision: bits of the result, at most 20.
    Returns:
      int64 (n, B + 1): every entry >= 1, each row summing to ``2**precision``; entry
      ``j < B`` is value ``lo + j``, entry B the escape.
    """
    if not 1 <= width <= MAX_WINDOW:
        raise ValueError(f"window width must be in [1, {MAX_WINDOW}], got {width}")
    rows = _pmf_rows(prior, np.asarray(lo, np.int64), int(width), _table_arrays(tables), precision, tables.precision)
    return rows.astype(np.int64)


# Elements whose (mean - anchor, table index, weight) triples are equal have equal windows
# relative to their anchors and equal pmfs, and a prior holds far fewer distinct ones than
# elements (a trained or warm-started model: 1-7 % of the latents of a Kodak image), so
# windows and pmfs are built once per distinct prior and the coder's rows gathered.
SHARED_ENTRIES = 2**23      # pmf entries of distinct priors kept per prior (float64: 64 MiB)
_HASH_MULTIPLIERS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                              0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
                             dtype=np.uint64)


@dataclass
class _Plan:
    """How one prior is coded under one set of tables (built once, :func:`_plan`).

    ``uid`` intp (N,) numbers each element's distinct prior (:func:`_distinct`); per distinct
    prior u: its window ``anchor + rel[u] .. anchor + rel[u] + width[u] - 1``, and, where the
    pmfs of its width were built (at most ``SHARED_ENTRIES`` entries in all), its pmf at row
    ``row[u]`` of ``shared[width]`` and at ``offsets[u]`` in ``flat`` (-1 where not built).
    ``order`` is the coding order: width groups ``groups`` = (width, start, stop) ranges of
    ``order``, in increasing width, each in C order."""

    uid: np.ndarray
    rel: np.ndarray
    width: np.ndarray
    row: np.ndarray
    offsets: np.ndarray
    shared: dict
    flat: np.ndarray
    order: np.ndarray
    groups: list


def _distinct(prior: MixturePrior) -> tuple[np.ndarray, np.ndarray]:
    """(uid, rep): ``uid`` intp (N,) numbers the distinct (mean - anchor, index, weight)
    K-tuples (a weight-0 component's mean and index count as 0: it adds nothing) in order of
    first occurrence, ``rep`` intp (u,) the first element of each (ascending). Exact:
    elements are grouped by a 64-bit hash of the packed tuple, then every element is
    compared with its group's first, and one that differs (a collision) becomes a distinct
    prior of its own."""
    n = len(prior)
    everything = np.arange(n, dtype=np.intp)
    if n < 2:
        return everything, everything
    bound = int(np.abs(prior.means).max()) + int(np.abs(prior.anchors).max())
    if (bound >= 2**38 or int(prior.indexes.min()) < 0 or int(prior.indexes.max()) >= 2**7
            or int(prior.weights.max()) > 2**WEIGHT_BITS):
        return everything, everything      # cannot pack: every element is its own prior
    return _group(prior, *_keys(prior))


def _keys(prior: MixturePrior) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_pack_and_hash` of every element, in blocks that stay in cache."""
    n, k = len(prior), prior.means.shape[0]
    bits = (n - 1).bit_length()
    packed = np.empty((k, n), np.int64)     # (mean - anchor) << 24 | index << 17 | weight
    h = np.empty(n, np.uint64)
    for a in range(0, n, PRIOR_BLOCK):      # blocks that stay in cache
        s = slice(a, min(a + PRIOR_BLOCK, n))
        _pack_and_hash(prior.means[:, s], prior.indexes[:, s], prior.weights[:, s], prior.anchors[s], packed[:, s],
                       h[s], a, bits)
    return packed, h


def _pack_and_hash(means, indexes, weights, anchors, packed, h, start: int, bits: int) -> None:
    """One block of :func:`_distinct`'s keys: ``packed`` (K, b) int64 = ``(mean - anchor) << 24
    | index << 17 | weight`` (0 for a weight-0 component), and ``h`` (b,) uint64 = a 64-bit
    hash of the K packed values, its low ``bits`` replaced by the position (``start + i``).
    Needs |mean - anchor| < 2**38, index in [0, 128), weight <= 2**16 (injective packing)."""
    np.subtract(means, anchors, out=packed)
    packed <<= 24
    packed |= indexes << 17
    packed |= weights
    packed *= weights != 0
    unsigned = packed.view(np.uint64)
    mix, low_bits = np.uint64(29), np.uint64(bits)
    np.multiply(unsigned[0], _HASH_MULTIPLIERS[0], out=h)
    h ^= h >> mix
    for j in range(1, packed.shape[0]):
        h ^= unsigned[j]
        h *= _HASH_MULTIPLIERS[j % len(_HASH_MULTIPLIERS)]
        h ^= h >> mix
    # the hash's high bits above the position: one (fast, non-arg) sort orders by both
    h >>= low_bits
    h <<= low_bits
    h |= np.arange(start, start + h.size, dtype=np.uint64)


def _group(prior: MixturePrior, packed: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_distinct` from its keys (:func:`_pack_and_hash`; ``h`` is sorted in place)."""
    n, k = len(prior), packed.shape[0]
    bits = (n - 1).bit_length()
    low_bits = np.uint64(bits)
    h.sort()
    positions = (h & np.uint64((1 << bits) - 1)).astype(np.intp)
    h >>= low_bits
    first = np.empty(n, bool)
    first[0] = True
    np.not_equal(h[1:], h[:-1], out=first[1:])
    group = np.cumsum(first)
    group -= 1
    rep = positions[first]
    by_first = np.argsort(rep)
    rank = np.empty_like(by_first)
    rank[by_first] = np.arange(by_first.size)
    rep = rep[by_first]
    uid = np.empty(n, np.intp)
    uid[positions] = rank[group]
    reference = packed[:, rep]
    differs = np.zeros(n, bool)
    for a in range(0, n, PRIOR_BLOCK):
        s = slice(a, min(a + PRIOR_BLOCK, n))
        ids, d = uid[s], differs[s]
        for j in range(k):
            d |= packed[j, s] != reference[j][ids]
    if differs.any():
        extra = np.flatnonzero(differs)
        uid[extra] = len(rep) + np.arange(extra.size)
        rep = np.concatenate([rep, extra])
    return uid, rep


def _plan(prior: MixturePrior, tables) -> _Plan:
    """The coding plan of ``prior`` under ``tables``, built on first use and kept with the
    prior (so the encoder's rate-distortion rounding and its coder share it)."""
    cached = prior._plans.get(id(tables))
    if cached is not None and cached[0] is tables:
        return cached[1]
    arrays = _table_arrays(tables)
    uid, rep = _distinct(prior)
    reps = prior.take(rep)
    rlo, width = mixture_windows(reps, tables)
    kind = np.searchsorted(WINDOW_WIDTHS, width).astype(np.int8)   # width class
    element_kind = kind[uid]
    order = np.argsort(element_kind, kind="stable")                # int8: a radix sort
    counts = np.bincount(element_kind, minlength=len(WINDOW_WIDTHS))
    by_width = np.argsort(kind, kind="stable")
    sizes = np.bincount(kind, minlength=len(WINDOW_WIDTHS))
    row = np.full(len(rep), -1, np.int64)
    offsets = np.full(len(rep), -1, np.int64)
    # the widths whose pmfs are built: in increasing width while the budget lasts
    built, stored, first = [], 0, 0
    for c, w in enumerate(WINDOW_WIDTHS.tolist()):
        u = int(sizes[c])
        if u and stored + u * (w + 1) <= SHARED_ENTRIES:
            members = by_width[first:first + u]
            row[members] = np.arange(u)
            offsets[members] = stored + np.arange(u, dtype=np.int64) * (w + 1)
            built.append((w, members, stored))
            stored += u * (w + 1)
        first += u
    flat = np.empty(stored, np.float64)
    shared = {}
    for w, members, at in built:
        table = flat[at:at + members.size * (w + 1)].reshape(members.size, w + 1)
        step = max(1, CHUNK_ENTRIES // (w + 1))
        for a in range(0, members.size, step):
            part = members[a:a + step]
            table[a:a + part.size] = _pmf_rows(reps.take(part), rlo[part], w, arrays, PMF_PRECISION,
                                               tables.precision)
        shared[w] = table
    groups, start = [], 0
    for c, w in enumerate(WINDOW_WIDTHS.tolist()):
        if counts[c]:
            groups.append((w, start, start + int(counts[c])))
            start += int(counts[c])
    plan = _Plan(uid, rlo - reps.anchors, width, row, offsets, shared, flat, order, groups)
    prior._plans[id(tables)] = (tables, plan)
    return plan


def _chunks(prior: MixturePrior, tables):
    """Coding order: (positions, lo, width, pmf rows float64) per coder call. Groups of equal
    window width in increasing width, each in C order, cut into chunks of at most
    ``CHUNK_ENTRIES`` pmf entries."""
    plan = _plan(prior, tables)
    arrays = None
    for w, a, b in plan.groups:
        rows = max(1, CHUNK_ENTRIES // (w + 1))
        table = plan.shared.get(w)
        for start in range(a, b, rows):
            positions = plan.order[start:min(start + rows, b)]
            ids = plan.uid[positions]
            lo = prior.anchors[positions] + plan.rel[ids]
            if table is not None:
                pmf = np.take(table, plan.row[ids], axis=0)
            else:
                arrays = arrays or _table_arrays(tables)
                pmf = _pmf_rows(prior.take(positions), lo, w, arrays, PMF_PRECISION, tables.precision)
            yield positions, lo, w, pmf


def _coder_modules():
    import constriction

    from ..coding import cpu

    return constriction.stream.queue, constriction.stream.model.Categorical(perfect=False), cpu


def encode_mixture(values: np.ndarray, prior: MixturePrior, tables) -> bytes:
    """Range-code integer latents under their exact mixture pmfs.

    Args:
      values: int64 (N,), ``round(y)`` in C order; every symbol ``value - anchor`` must fit
        int32 (any int32 symbol is codable).
      prior: their :class:`MixturePrior`.
      tables: the scale tables.
    Returns:
      bytes: constriction range coder words (little-endian uint32): every element's window
      entry (or escape) in the order of :func:`_chunks`, then the bypass codes of the escaped
      ``value - anchor`` in C order (layout of :mod:`neurocodec.coding.cpu`). ``b""`` for N = 0.
    """
    values = np.asarray(values, dtype=np.int64).ravel()
    if values.shape[0] != len(prior):
        raise ValueError(f"{values.shape[0]} values for a prior of {len(prior)} elements")
    if values.size == 0:
        return b""
    symbols = values - prior.anchors
    if symbols.min() < -2**31 or symbols.max() > 2**31 - 1:
        raise ValueError("every symbol value - anchor must fit int32")
    queue, family, cpu = _coder_modules()
    encoder = queue.RangeEncoder()
    escaped = []
    for positions, lo, b, pmf in _chunks(prior, tables):
        local = values[positions] - lo
        out = (local < 0) | (local >= b)
        if out.any():
            escaped.append(positions[out])
            local[out] = b
        encoder.encode(local.astype(np.int32), family, pmf)
    if escaped:
        positions = np.sort(np.concatenate(escaped))
        cpu.encode_bypass(encoder, symbols[positions].astype(np.int32))
    return encoder.get_compressed().astype("<u4", copy=False).tobytes()


def decode_mixture(data: bytes, prior: MixturePrior, tables) -> np.ndarray:
    """Inverse of :func:`encode_mixture`: bytes + the same prior -> int64 values (N,).

    Raises:
      FormatError: for data that is not a canonical stream for this prior (length not a
        multiple of 4, left-over data, an escaped value inside its window, or anything
        constriction rejects). Work is bounded by N.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    raw = memoryview(data).cast("B")
    if raw.nbytes % 4:
        raise FormatError(f"coded data must be a whole number of 32-bit words, got {raw.nbytes} bytes")
    words = np.frombuffer(raw, dtype="<u4").astype(np.uint32)
    if len(prior) == 0:
        if words.size:
            raise FormatError(f"{words.size * 4} bytes of data for 0 symbols")
        return np.zeros(0, dtype=np.int64)
    try:
        return _decode(words, prior, tables)
    except FormatError:
        raise
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
        raise
    except BaseException as exc:  # constriction raises AssertionError / ValueError, may panic
        raise FormatError(f"corrupt coded data: {exc}") from exc


def _decode(words: np.ndarray, prior: MixturePrior, tables) -> np.ndarray:
    queue, family, cpu = _coder_modules()
    decoder = queue.RangeDecoder(words)
    values = np.empty(len(prior), dtype=np.int64)
    escaped, low, high = [], [], []
    for positions, lo, b, pmf in _chunks(prior, tables):
        local = np.asarray(decoder.decode(family, pmf), dtype=np.int64)
        out = local == b
        if out.any():
            escaped.append(positions[out])
            low.append(lo[out])
            high.append(lo[out] + b)
        values[positions] = lo + local
    if escaped:
        positions = np.concatenate(escaped)
        order = np.argsort(positions, kind="stable")
        positions = positions[order]
        found = cpu.decode_bypass(decoder, positions.size) + prior.anchors[positions]
        inside = (found >= np.concatenate(low)[order]) & (found < np.concatenate(high)[order])
        if np.any(inside):
            raise FormatError("corrupt coded data: escaped value inside its window")
        values[positions] = found
    if not decoder.maybe_exhausted():
        raise FormatError("corrupt coded data: data left over after the last symbol")
    return values


def mixture_symbol_bits(values: np.ndarray, prior: MixturePrior, tables) -> np.ndarray:
    """Information content (bits) of ``values`` int64 (N,) or (K, N) (K candidate values per
    element) under the exact integer pmfs the coder uses (an escape: the escape entry plus the
    bypass code), float64 of the same shape. Each distinct pmf is built once for all."""
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return np.zeros(values.shape, dtype=np.float64)
    rows = values.reshape(-1, len(prior))
    return _symbol_bits(prior, tables, np.arange(len(prior)), rows).reshape(values.shape)


def _symbol_bits(prior: MixturePrior, tables, positions: np.ndarray, values: np.ndarray) -> np.ndarray:
    """:func:`mixture_symbol_bits` of ``values`` int64 (R, n) at the flat ``positions`` (n,)
    of ``prior``, from its plan (:func:`_plan`), float64 (R, n)."""
    from ..coding.tables import ESCAPE_LENGTH_ALPHABET, bit_length, zigzag

    plan = _plan(prior, tables)
    ids = plan.uid[positions]
    lo, width, offsets = prior.anchors[positions] + plan.rel[ids], plan.width[ids], plan.offsets[ids]
    local = values - lo
    out = (local < 0) | (local >= width)
    np.copyto(local, np.broadcast_to(width, local.shape), where=out)
    bits = np.empty(values.shape, dtype=np.float64)
    have = offsets >= 0
    if have.all():
        np.subtract(PMF_PRECISION, np.log2(np.take(plan.flat, local + offsets)), out=bits)
    else:
        bits[:, have] = PMF_PRECISION - np.log2(np.take(plan.flat, local[:, have] + offsets[have]))
        missing = np.flatnonzero(~have)
        arrays = _table_arrays(tables)
        for w in np.unique(width[missing]).tolist():
            cols = missing[width[missing] == w]
            step = max(1, CHUNK_ENTRIES // (w + 1))
            for a in range(0, cols.size, step):
                part = cols[a:a + step]
                pmf = _pmf_rows(prior.take(positions[part]), lo[part], w, arrays, PMF_PRECISION, tables.precision)
                bits[:, part] = PMF_PRECISION - np.log2(pmf[np.arange(part.size), local[:, part]])
    if out.any():
        r, c = np.nonzero(out)
        lengths = bit_length(zigzag(values[r, c] - prior.anchors[positions[c]]))
        bits[r, c] += math.log2(ESCAPE_LENGTH_ALPHABET) + np.maximum(lengths - 1, 0)
    return bits


def mixture_ideal_bits(values: np.ndarray, prior: MixturePrior, tables) -> float:
    """Total :func:`mixture_symbol_bits` of ``values`` (without the coder's flush)."""
    return float(mixture_symbol_bits(values, prior, tables).sum())


# --------------------------------------------------------------------------- #
# Entropy model
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class MixtureSymbols(HyperSymbols):
    """What the coder needs for one image under the mixture model.

    Attributes:
      z_symbols: int32 (1, Cz, h, w).
      y_symbols: int32 (1, C, H, W): ``round(y) - anchor``.
      y_indexes: int32 (1, K, C, H, W): scale-table index of every component.
      y_hat: float32 (1, C, H, W): ``round(y)`` (clamped to ``+-Y_HAT_LIMIT``).
      prior: the exact :class:`MixturePrior` (means, indexes, weights, anchors).
    """

    prior: MixturePrior


class MixtureHyperprior(HyperpriorFamily):
    """Hyperprior whose conditional distribution is a K-component Gaussian mixture.

    Latents ``y`` (B, C, H, W), H and W multiples of 4. The z side and saved state are the
    hyperprior family's (:class:`~neurocodec.entropy.hyperprior.HyperpriorFamily`); the
    hyper-synthesis is a :class:`MixtureHyperSynthesis` (the hyperprior's layers and
    parameter names, plus the mixture head ``hyper_synthesis.mixture``). Two segments per
    tile: z, y.

    Args:
      latent_channels, hyper_channels, hidden: as for
        :class:`~neurocodec.entropy.hyperprior.MeanScaleHyperprior`.
      components: K, mixture components per latent.
    """

    rd_rounding = True
    num_segments = 2

    def __init__(self, latent_channels: int, hyper_channels: int = 64, hidden: int = 128, components: int = 3):
        super().__init__(latent_channels, hyper_channels, hidden,
                         lambda: MixtureHyperSynthesis(hyper_channels, hidden, latent_channels, int(components)))
        self.components = int(components)

    # -- training face -----------------------------------------------------------
    def forward(self, y: torch.Tensor, log2_gain: torch.Tensor, quality: torch.Tensor,
                rate_proxy: str = "noise", generator: torch.Generator | None = None) -> EntropyOutput:
        """Training face (:meth:`~neurocodec.entropy.base.EntropyModel.forward`).

        ``rate_proxy``: ``"noise"`` (information content of ``y + u``, u ~ U(-1/2, 1/2)) or
        ``"round"`` (of ``round(y)``, straight-through: the coded symbols). Returns
        ``y_hat`` (B, C, H, W) (``round(y)``, straight-through), ``y_bits`` (B, C, H, W)
        (:func:`mixture_bits`), ``z_bits`` (B, Cz, H/4, W/4).
        """
        if rate_proxy not in RATE_PROXIES:
            raise ValueError(f"rate proxy must be one of {RATE_PROXIES}, got {rate_proxy!r}")
        z_hat, z_bits = self.hyper_rate(y, generator)
        mean, index, logit = self.hyper_synthesis(z_hat, log2_gain)
        values = y + uniform_noise(y, generator) if rate_proxy == "noise" else round_ste(y)
        return EntropyOutput(round_ste(y), mixture_bits(values, mean, index, logit), z_bits)

    # -- coding face ---------------------------------------------------------------
    def _prior(self, z_symbols: np.ndarray, quality: float) -> MixturePrior:
        """Exact prior of every latent of one image."""
        return self.hyper_synthesis.prior_exact(torch.from_numpy(z_symbols), self.prior_params,
                                                self.quality_log2_gain(quality))

    @staticmethod
    def _check_coder(coder: str, error: type[Exception]) -> None:
        if coder != "cpu":
            raise error(f"the Gaussian mixture model codes with the 'cpu' coder (cpu-range) only, got {coder!r}")

    @torch.no_grad()
    def quantise(self, y: torch.Tensor, quality: float, distortion_weight: np.ndarray | None = None
                 ) -> MixtureSymbols:
        """Encoder side: scaled latents float32 (1, C, H, W) at ``quality`` -> symbols and
        prior: plain rounding, or with a ``distortion_weight`` rate-distortion rounding
        (:func:`~neurocodec.entropy.rd_rounding.rd_round_by`) toward each latent's anchor (the
        heaviest component's mean), costed under the exact mixture pmfs."""
        self._require_tables()
        z_symbols = self.hyper_symbols(y)
        prior = self._prior(z_symbols, quality)
        y_round = torch.clamp(torch.round(y.double()), -Y_HAT_LIMIT, Y_HAT_LIMIT).to(torch.int64)
        shape = tuple(y.shape)
        y_symbols = (y_round.numpy().ravel() - prior.anchors).astype(np.int32).reshape(shape)
        if distortion_weight is not None:
            residual = (y.double().clamp(-Y_HAT_LIMIT, Y_HAT_LIMIT).numpy().ravel() - prior.anchors).reshape(shape)

            def bits(positions: np.ndarray, candidates: np.ndarray) -> np.ndarray:
                return _symbol_bits(prior, self.y_tables, positions, candidates + prior.anchors[positions])

            y_symbols = rd_round_by(residual, y_symbols, bits, distortion_weight)
            y_round = torch.from_numpy((y_symbols.astype(np.int64).ravel() + prior.anchors).reshape(shape))
        y_indexes = prior.indexes.reshape(1, -1, *shape[1:]).astype(np.int32, copy=False)
        return MixtureSymbols(z_symbols, y_symbols, y_indexes, y_round.float(), prior)

    def encode(self, symbols: MixtureSymbols, coder: str = "cpu") -> list[bytes]:
        """Symbols -> [z segment, y segment] (the y segment: :func:`encode_mixture`)."""
        self._check_coder(coder, ValueError)
        z_bytes = self.encode_hyper(symbols.z_symbols, coder)
        values = symbols.y_symbols.astype(np.int64).ravel() + symbols.prior.anchors
        return [z_bytes, encode_mixture(values, symbols.prior, self.y_tables)]

    @torch.no_grad()
    def decode(self, segments: list[bytes], y_shape: tuple[int, int, int, int], quality: float,
               coder: str = "cpu") -> torch.Tensor:
        """[z segment, y segment] -> y_hat float32 ``y_shape`` (1, C, H, W).

        Raises FormatError for a wrong segment count, another coder than ``cpu`` (this model
        never writes one) or corrupt data."""
        self._require_tables()
        self._check_coder(coder, FormatError)
        self.check_segments(segments)
        z_symbols = self.decode_hyper(segments[0], y_shape, coder)
        values = decode_mixture(segments[1], self._prior(z_symbols, quality), self.y_tables)
        return torch.from_numpy(values.reshape(y_shape)).float()
