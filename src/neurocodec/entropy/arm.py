"""The auto-regressive context model (ARM) of the overfitted codec: a tiny MLP over a causal
neighbourhood, trained in float, coded in exact integer arithmetic.

Context: the ``CONTEXT_SIZE = 12`` already-decoded latents of the same pyramid level at the
offsets ``CONTEXT_OFFSETS`` (two full rows of five above, two to the left), zero outside the
level. Every offset ``(di, dj)`` satisfies ``dj + SLOPE * di < 0`` with ``SLOPE = 3``, so all
positions on the front ``j + SLOPE * i = t`` depend only on fronts before ``t``: the decoder
decodes a whole front at once (:mod:`neurocodec.entropy.wavefront`).

Network: ``12 -> hidden -> hidden -> 2`` with ReLU; output 0 is the Laplace mean, output 1
the scale index (:mod:`neurocodec.entropy.laplace`).

Faces:

* training (:meth:`ContextMLP.forward`): float weights and activations; the contexts of
  every position of every level are gathered into one (N, 12) matrix, so one matrix
  product per layer covers the whole pyramid; the outputs are rounded straight-through to
  the grids of the coding face (mean to a quarter, scale index to an integer);
* coding (:func:`arm_exact`): integer weights ``W = round(w * 2**k)`` (``k`` the module's
  step exponent, stored in the stream), integer activations on a ``2**-ACT_BITS`` grid, held
  in float64 with every sum an integer below ``2**53``: the result does not depend on the
  BLAS, the thread count or the batch, so encoder (all positions at once) and decoder (one
  front at a time) derive the same means and tables on every machine.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .fixedpoint import round_ste
from .laplace import MEAN_FRACTIONS, MEAN_LIMIT, NUM_SCALES

CONTEXT_OFFSETS: tuple[tuple[int, int], ...] = tuple(
    [(-2, dj) for dj in range(-2, 3)] + [(-1, dj) for dj in range(-2, 3)] + [(0, -2), (0, -1)])
CONTEXT_SIZE = len(CONTEXT_OFFSETS)
SLOPE = 3
assert all(dj + SLOPE * di < 0 for di, dj in CONTEXT_OFFSETS)
INPUT_LIMIT = 2**11       # context values are clamped to [-INPUT_LIMIT, INPUT_LIMIT]
ACT_BITS = 8              # hidden activations on a 2**-ACT_BITS grid ...
ACT_MAX = 64.0            # ... in [0, ACT_MAX]
WEIGHT_LIMIT = 2**15      # integer weights and biases in [-WEIGHT_LIMIT, WEIGHT_LIMIT)
#: Scale index the untrained network predicts (b = 1).
INITIAL_SCALE_INDEX = 16.0


class ContextMLP(nn.Module):
    """Per-image ARM parameters and their training face.

    Args:
      hidden: width of the two hidden layers.
    Parameters: ``weights[n]`` float32 (out, in), ``biases[n]`` float32 (out,), n = 0, 1, 2.
    """

    def __init__(self, hidden: int = 16):
        super().__init__()
        sizes = [CONTEXT_SIZE, hidden, hidden, 2]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for n in range(3):
            w = torch.randn(sizes[n + 1], sizes[n]) * (1.0 / sizes[n]) ** 0.5
            if n == 2:
                w = w * 0.01
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(sizes[n + 1])))
        with torch.no_grad():
            self.biases[2][1] = INITIAL_SCALE_INDEX

    def forward(self, levels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training face over every position of every level at once.

        Args:
          levels: float32 (1, 1, h_l, w_l) per level, the (noisy or rounded) latents.
        Returns:
          (values, mean, index): float32 (N,) each, N the number of latents: the latents
          (levels flattened in C order, concatenated), their means on the
          ``1 / MEAN_FRACTIONS`` grid and their scale indexes (integers in
          ``[0, NUM_SCALES)``), the last two rounded straight-through.
        """
        contexts, values = [], []
        for level in levels:
            h, w = level.shape[-2:]
            padded = F.pad(level[0, 0], (2, 2, 2, 0))
            contexts.append(torch.stack([padded[2 + di:2 + di + h, 2 + dj:2 + dj + w] for di, dj in CONTEXT_OFFSETS],
                                        dim=-1).reshape(h * w, CONTEXT_SIZE))
            values.append(level.reshape(-1))
        x = torch.cat(contexts)
        # The hidden activations are float here: their 2**-ACT_BITS grid and the clamps of
        # the coding face (input, activation ceiling) change the outputs far less than their
        # own rounding, and cost a third of a training step.
        h = F.relu(torch.addmm(self.biases[0], x, self.weights[0].t()))
        h = F.relu(torch.addmm(self.biases[1], h, self.weights[1].t()))
        out = torch.addmm(self.biases[2], h, self.weights[2].t())
        mean = round_ste(out[:, 0] * MEAN_FRACTIONS) * (1.0 / MEAN_FRACTIONS)
        index = torch.clamp(round_ste(out[:, 1]), 0, NUM_SCALES - 1)
        return torch.cat(values), mean, index

    def tensors(self) -> list[torch.Tensor]:
        """The parameters in stream order: w0, b0, w1, b1, w2, b2."""
        return [t for n in range(3) for t in (self.weights[n], self.biases[n])]


def quantise_arm(tensors: list[torch.Tensor], step_bits: int) -> list[np.ndarray]:
    """Float ARM parameters -> integers ``round(p * 2**step_bits)``, clamped to the weight
    range, int64 numpy arrays of the same shapes (what the stream carries)."""
    return [np.clip(np.round(t.detach().double().numpy() * 2.0**step_bits), -WEIGHT_LIMIT, WEIGHT_LIMIT - 1)
            .astype(np.int64) for t in tensors]


def dequantise_arm(integers: list[np.ndarray], step_bits: int) -> list[torch.Tensor]:
    """Integers of :func:`quantise_arm` -> float32 tensors (the values the coding face uses)."""
    return [torch.from_numpy(np.asarray(i, dtype=np.float64) * 2.0**-step_bits).float() for i in integers]


class IntegerARM:
    """The exact ARM of one image, its integer parameters converted once (float64 holding
    integers) so that a decoder evaluating it once per wavefront pays only the arithmetic.

    Args:
      integers: the six int64 arrays of :func:`quantise_arm` (w0, b0, w1, b1, w2, b2), each
        in ``[-WEIGHT_LIMIT, WEIGHT_LIMIT)``.
      step_bits: the ARM's step exponent ``k`` (weights ``W / 2**k``), in [0, 15].
    """

    def __init__(self, integers: list[np.ndarray], step_bits: int):
        w0, b0, w1, b1, w2, b2 = (np.asarray(a, dtype=np.float64) for a in integers)
        # Each layer's rescaling (a power of two) and the rounding offset 1/2 are folded into
        # its weights and bias: the products and sums stay exact (multiples of 2**-(k + 1)
        # below 2**45), so ``floor(x @ W' + b')`` is the integer requantisation.
        first, hidden = 2.0 ** (ACT_BITS - step_bits), 2.0**-step_bits
        unit = 2.0 ** -(step_bits + ACT_BITS)
        out = np.array([unit * MEAN_FRACTIONS, unit])
        self.w0t = np.ascontiguousarray(w0.T * first)
        self.b0 = b0 * first + 0.5
        self.w1t = np.ascontiguousarray(w1.T * hidden)
        self.b1 = b1 * (2.0**ACT_BITS * hidden) + 0.5
        self.w2t = np.ascontiguousarray(w2.T * out[None])
        self.b2 = b2 * 2.0**ACT_BITS * out + 0.5
        self.out_low = np.array([-MEAN_LIMIT, 0.0])
        self.out_high = np.array([MEAN_LIMIT, NUM_SCALES - 1.0])

    def __call__(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """context integer-valued (N, CONTEXT_SIZE) -> (mean_q, index), int64 (N,) each (see
        :func:`arm_exact`)."""
        top = ACT_MAX * 2**ACT_BITS
        # ufuncs with out= rather than np.clip: a decoder calls this once per wavefront, on a
        # few hundred rows, where numpy's per-call overhead is most of the cost
        x = np.minimum(np.asarray(context, dtype=np.float64), INPUT_LIMIT)
        np.maximum(x, -INPUT_LIMIT, out=x)
        h = x @ self.w0t
        h += self.b0
        np.floor(h, out=h)
        np.maximum(h, 0.0, out=h)
        np.minimum(h, top, out=h)
        h = h @ self.w1t
        h += self.b1
        np.floor(h, out=h)
        np.maximum(h, 0.0, out=h)
        np.minimum(h, top, out=h)
        out = h @ self.w2t
        out += self.b2
        np.floor(out, out=out)
        np.maximum(out, self.out_low, out=out)
        np.minimum(out, self.out_high, out=out)
        out = out.astype(np.int64)
        return out[:, 0], out[:, 1]


def arm_exact(context: np.ndarray, integers: list[np.ndarray], step_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Coding face: exact integer ARM.

    Args:
      context: int64 or integer-valued float64 (N, CONTEXT_SIZE), decoded latents.
      integers: the six int64 arrays of :func:`quantise_arm` (w0, b0, w1, b1, w2, b2), each
        in ``[-WEIGHT_LIMIT, WEIGHT_LIMIT)``.
      step_bits: the ARM's step exponent ``k`` (weights ``W / 2**k``), in [0, 15].
    Returns:
      (mean_q, index): int64 (N,) each: the mean in units of ``1 / MEAN_FRACTIONS`` (in
      ``[-MEAN_LIMIT, MEAN_LIMIT]``) and the scale index in ``[0, NUM_SCALES)``.

    Every value is an integer below 2**53 in magnitude (inputs <= 2**11, weights <= 2**15,
    activations <= 2**14, sums over at most 2**10 terms), so float64 products and sums are
    exact whatever their order; rescaling multiplies by powers of two (exact) and floors.
    """
    return IntegerARM(integers, step_bits)(context)
