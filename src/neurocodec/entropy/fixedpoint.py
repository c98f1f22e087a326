"""Fixed-point convolutions for the deterministic prior path.

Every network whose output selects a coding table or a mean must produce the same
integers on every machine (DESIGN.md, decision 2). The layers here keep weights,
biases and activations on power-of-two grids:

* weights ``w = W / 2**weight_bits`` with integer ``W`` in ``[-2**15, 2**15)``,
* activations ``a = A / 2**act_bits`` with integer ``A`` in ``[0, act_max * 2**act_bits]``.

At coding time (:meth:`forward_exact`) the integers are held in float64 tensors. Every
product and every partial sum is an integer below ``2**53`` in magnitude, so float64
represents it exactly and the convolution's result does not depend on summation order,
thread count, blocking or SIMD width. Rescaling divides by a power of two and floors,
which is also exact. The result is therefore bit-identical on any IEEE-754 machine.

At training time (:meth:`forward`) the same grids are imposed with straight-through
rounding (fake quantisation), so the network that is trained is the network that codes
(Ballé, Johnston & Minnen, "Integer networks for data compression", ICLR 2019).

Speed. 3x3 and stride-2 5x5 transposed layers take the exact Winograd route of
:mod:`neurocodec.entropy.winograd` (the same integers as the direct convolution, faster).
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .winograd import winograd_conv3x3, winograd_filters

WEIGHT_LIMIT = 2**15
BIAS_LIMIT = 2**44  # with |products summed| < 2**42, accumulators stay below 2**53


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer with an identity gradient (straight-through)."""
    return x + (torch.round(x) - x).detach()


class FixedPointConv(nn.Module):
    """A 2-D convolution (or transposed convolution) on fixed-point grids.

    Args:
      in_channels, out_channels, kernel_size, stride: as in ``nn.Conv2d``. Padding is
        ``kernel_size // 2`` (``output_padding = stride - 1`` when transposed), so a
        stride-``s`` layer maps ``H`` to ``H / s`` (or ``H * s`` when transposed).
      transposed: use a transposed convolution (upsampling).
      weight_bits: fractional bits of the weight grid.
      act_bits: fractional bits of the input activation grid. The input is assumed to be
        on this grid already (integers for ``act_bits = 0``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 transposed: bool = False, weight_bits: int = 12, act_bits: int = 8):
        super().__init__()
        self.stride = stride
        self.padding = kernel_size // 2
        self.transposed = transposed
        self.weight_bits = weight_bits
        self.act_bits = act_bits
        # False: the training face is a plain float convolution (a float-trained prior,
        # converted afterwards by :mod:`neurocodec.entropy.ptq`). Not saved in weight files.
        self.fake_quant = True
        shape = ((in_channels, out_channels) if transposed else (out_channels, in_channels))
        self.weight = nn.Parameter(torch.empty(*shape, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        fan_in = in_channels * kernel_size * kernel_size / (stride * stride if transposed else 1)
        nn.init.normal_(self.weight, std=(1.0 / fan_in) ** 0.5)

    # -- grids -----------------------------------------------------------------
    @property
    def out_bits(self) -> int:
        """Fractional bits of the raw accumulator (before requantisation)."""
        return self.weight_bits + self.act_bits

    def integer_weight(self) -> torch.Tensor:
        """Integer weights ``W`` (float tensor of integers), clamped to 16-bit range."""
        scaled = self.weight * 2.0**self.weight_bits
        return torch.clamp(torch.round(scaled), -WEIGHT_LIMIT, WEIGHT_LIMIT - 1)

    def integer_bias(self) -> torch.Tensor:
        """Integer bias on the accumulator grid (``out_bits`` fractional bits), clamped so the
        exactness bound holds by construction."""
        return torch.clamp(torch.round(self.bias * 2.0**self.out_bits), -BIAS_LIMIT, BIAS_LIMIT)

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose2d(x, weight, bias, stride=self.stride, padding=self.padding,
                                      output_padding=self.stride - 1)
        return F.conv2d(x, weight, bias, stride=self.stride, padding=self.padding)

    # -- faces -----------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training face: float32 convolution with fake-quantised weights and bias
        (float weights and bias, no grids, when ``fake_quant`` is False).

        Args:
          x: float32 (B, C_in, H, W), already on the input grid.
        Returns:
          float32 (B, C_out, H', W'): the real-valued accumulator (not yet requantised).
        """
        if not self.fake_quant:
            return self._conv(x, self.weight, self.bias)
        w_scale = 2.0**self.weight_bits
        b_scale = 2.0**self.out_bits
        weight = torch.clamp(round_ste(self.weight * w_scale), -WEIGHT_LIMIT, WEIGHT_LIMIT - 1) / w_scale
        bias = torch.clamp(round_ste(self.bias * b_scale), -BIAS_LIMIT, BIAS_LIMIT) / b_scale
        return self._conv(x, weight, bias)

    def forward_exact(self, x_int: torch.Tensor, weight_int: torch.Tensor,
                      bias_int: torch.Tensor) -> torch.Tensor:
        """Coding face: exact integer convolution.

        Args:
          x_int: float64 (B, C_in, H, W) holding integers (input scaled by ``2**act_bits``).
          weight_int, bias_int: float64 integers from :meth:`integer_weight` /
            :meth:`integer_bias` (or loaded from a weight file).
        Returns:
          float64 (B, C_out, H', W') integers: the accumulator scaled by ``2**out_bits``.
          Bit-identical to the direct convolution; 3x3 and stride-2 5x5 transposed layers
          take the faster exact route described in the module docstring.
        """
        out = None
        k = weight_int.shape[-1]
        if (x_int.dim() == 4 and weight_int.shape[-2] == k
                and x_int.dtype == weight_int.dtype == bias_int.dtype == torch.float64):
            if (k, self.stride) == ((5, 2) if self.transposed else (3, 1)):
                out = winograd_conv3x3(x_int, weight_int, bias_int, self.transposed,
                                       lambda m: self._winograd_filters(weight_int, m))
        return self._conv(x_int, weight_int, bias_int) if out is None else out

    def _winograd_filters(self, weight_int: torch.Tensor, m: int) -> tuple[torch.Tensor, float]:
        """:func:`~neurocodec.entropy.winograd.winograd_filters` of ``weight_int``, kept for
        the next call with equal weights (a prior runs with the same weights every time)."""
        cache = self.__dict__.get("_filter_cache")
        if cache is None or cache[0].shape != weight_int.shape or not torch.equal(cache[0], weight_int):
            cache = (weight_int.clone(), {})
            self.__dict__["_filter_cache"] = cache
        if m not in cache[1]:
            cache[1][m] = winograd_filters(weight_int, self.transposed, m)
        return cache[1][m]


def requantise_exact(acc: torch.Tensor, shift_bits: int, low: float, high: float) -> torch.Tensor:
    """Exact ``clamp(floor(acc / 2**shift_bits + 1/2), low, high)`` on float64 integers."""
    out = torch.mul(acc, 2.0**-shift_bits)  # exact: a power of two
    return out.add_(0.5).floor_().clamp_(low, high)


def fake_requantise(x: torch.Tensor, bits: int, low: float, high: float) -> torch.Tensor:
    """Training counterpart of :func:`requantise_exact` on real values.

    ``x`` is the real-valued accumulator; the result lies on the grid ``2**-bits`` within
    ``[low, high]`` (real units), with a straight-through gradient inside the range.
    """
    scale = 2.0**bits
    return torch.clamp(round_ste(x * scale), low * scale, high * scale) / scale


def float_requantise(x: torch.Tensor, bits: int, low: float, high: float) -> torch.Tensor:
    """What :func:`fake_requantise` becomes in a float network: the clamp to
    ``[low, high]`` (real units) without the grid; ``bits`` is ignored."""
    return torch.clamp(x, low, high)
