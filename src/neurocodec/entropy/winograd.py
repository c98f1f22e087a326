"""Exact fast convolutions of float64 integers: Winograd's algorithm with integer transforms.

The fixed-point prior networks (:mod:`neurocodec.entropy.fixedpoint`) run at coding time as
float64 convolutions of integers (there is no integer or mkldnn float64 convolution on a
CPU). 3x3 convolutions use Winograd's algorithm (Lavin & Gray, CVPR 2016) with integer
transform matrices: F(4x4, 3x3), 36 products per 16 outputs instead of 144, or F(2x2, 3x3),
16 per 4, whose intermediates are about 5000 times smaller. The transforms only add,
subtract and multiply by integers (G is scaled to integers and the result divided back,
exactly), so every intermediate is still an integer; :func:`winograd_conv3x3` bounds every
one of them from ``max |x|`` and the weights before it starts and takes the larger tiles
only if the bound is below ``2**52``, the smaller ones likewise, else it returns None and
the caller runs the direct convolution (for the shipped prior F(4x4, 3x3) always holds on
the first two layers and on the third up to activations of about 40000, 50 times the
largest seen on Kodak at any quality). Stride-2 5x5 transposed convolutions are rewritten
as one 3x3 convolution with four outputs per channel (one per output phase) whose results
are interleaved. Every route gives exactly the integers of the direct convolution.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F

# Winograd F(m x m, 3x3) (Lavin & Gray, CVPR 2016): out = A^T [(G w G^T) * (B^T d B)] A on
# (m + 2) x (m + 2) input tiles d. G is scaled to integers by ``scale``, so the products
# are ``scale**2`` times too large, which is divided back exactly at the end.
_WINOGRAD = {
    # m: (B^T, G * scale, A^T, scale)
    2: (((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
        ((2, 0, 0), (1, 1, 1), (1, -1, 1), (0, 0, 2)),
        ((1, 1, 1, 0), (0, 1, -1, -1)), 2),
    4: (((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0),
         (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
        ((6, 0, 0), (-4, -4, -4), (-4, 4, -4), (1, 2, 4), (1, -2, 4), (0, 0, 24)),
        ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)), 24),
}
# 3x3 tap a of output phase p of a stride-2 5x5 transposed convolution (padding 2, output
# padding 1) is its 5x5 tap _PHASE_TAPS[p][a] (None: no tap).
_PHASE_TAPS = ((4, 2, 0), (None, 3, 1))
_EXACT_LIMIT = 2.0**52
# Tile rows per step are chosen so one step's products take at most this many float64s:
# bounded memory on large images, few steps (thread synchronisations) on small ones, and
# below glibc's largest mmap threshold (32 MB), above which every allocation is fresh
# memory whose page faults cost more than the arithmetic.
_STEP_ELEMENTS = 3_500_000


@functools.lru_cache(maxsize=None)
def _winograd_matrices(m: int) -> dict[str, torch.Tensor]:
    """float64 integer matrices of F(m x m, 3x3), n = m + 2, for position ``k = n i + j``:

    ``bt`` (n, n) and ``btk`` = ``kron(B^T, B^T)`` (n^2, n^2); ``in_growth`` (n^2,): the
    largest ``|B^T d B|_k`` for ``|d| <= 1``; ``scale`` (): the square of G's scale;
    ``gk`` (n^2, 9): ``kron(G, G)`` (from 3x3 tap ``3 a + b``); ``gk_phased`` (4 n^2, 25):
    the same for the four phases of a stride-2 5x5 transposed convolution (row
    ``4 k + 2 p + q``, from 5x5 tap ``5 a + b``); ``ak`` (m^2, n^2): ``kron(A^T, A^T)``.
    """
    bt, g, at = (torch.tensor(t, dtype=torch.float64) for t in _WINOGRAD[m][:3])
    gk = torch.kron(g, g)
    select = torch.zeros(2, 2, 9, 25, dtype=torch.float64)  # 3x3 tap of phase (p, q) <- 5x5 tap
    for p in range(2):
        for q in range(2):
            for a, ka in enumerate(_PHASE_TAPS[p]):
                for b, kb in enumerate(_PHASE_TAPS[q]):
                    if ka is not None and kb is not None:
                        select[p, q, 3 * a + b, 5 * ka + kb] = 1.0
    rows = bt.abs().sum(dim=1)
    return {"bt": bt, "btk": torch.kron(bt, bt), "in_growth": torch.outer(rows, rows).reshape(-1), "gk": gk,
            "gk_phased": torch.einsum("kt,pqts->kpqs", gk, select).reshape(-1, 25),
            "ak": torch.kron(at, at), "scale": torch.tensor(float(_WINOGRAD[m][3] ** 2), dtype=torch.float64)}


def winograd_filters(weight: torch.Tensor, transposed: bool, m: int) -> tuple[torch.Tensor, float]:
    """Transformed filters of F(m x m, 3x3) and the bound they imply.

    Args:
      weight: float64 integers, (C_out, C_in, 3, 3), or (C_in, C_out, 5, 5) for a stride-2
        transposed convolution, which becomes a 3x3 convolution with ``4 C_out`` outputs,
        output ``C_out (2 p + q) + c`` holding pixel ``(2 i + p, 2 j + q)`` of channel c:
        output pixel ``2i + p`` of the transposed convolution sums inputs ``i - 1, i, i + 1``
        with the taps ``_PHASE_TAPS[p]`` (per axis).
    Returns:
      (U, r): U float64 (n^2, C_out', C_in) integers, ``G w G^T`` per Winograd position;
      r such that every intermediate (input transform, product sums, output transform) is
      at most ``max|x| r`` in magnitude.
    """
    mats = _winograd_matrices(m)
    if transposed:
        c_in, c_out = weight.shape[:2]
        flat = weight.permute(1, 0, 2, 3).reshape(c_out * c_in, 25)  # rows (c, i)
        u = (mats["gk_phased"] @ flat.t()).view(-1, 4 * c_out, c_in)  # rows (k, p, q), then (c, i)
        taps_abs = weight.abs().sum(dim=0).reshape(c_out, 25)
        per_position = (mats["gk_phased"].abs() @ taps_abs.t()).view(u.shape[0], 4 * c_out)
    else:
        c_out, c_in = weight.shape[:2]
        u = (mats["gk"] @ weight.reshape(c_out * c_in, 9).t()).view(-1, c_out, c_in)
        per_position = mats["gk"].abs() @ weight.abs().sum(dim=1).reshape(c_out, 9).t()
    # |U[k, o, i]| <= sum_t |gk[k, t]| |w[o, i, t]|, so a product sum at position k is at
    # most max|x| in_growth[k] per_position[k, o], and an output sum adds |ak| of those.
    products = per_position * mats["in_growth"][:, None]
    return u, float(max(products.max(), (mats["ak"].abs() @ products).max(), mats["in_growth"].max()))


def winograd_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, transposed: bool = False,
                     filters: Callable[[int], tuple[torch.Tensor, float]] | None = None) -> torch.Tensor | None:
    """Exact 3x3 convolution (stride 1, padding 1) of float64 integers by Winograd's algorithm.

    Bit-identical to ``F.conv2d(x, weight, bias, padding=1)`` evaluated exactly, as the
    direct float64 convolution is (see the module docstring). Every intermediate is an
    integer (the transform matrices are, with G scaled by ``scale``), and the factor
    ``scale**2`` is divided out exactly at the end (the quotient is an integer). F(4x4, 3x3)
    (36 products per 16 outputs) is used when every intermediate is provably below
    ``2**52`` (:func:`winograd_filters` bounds them from ``max|x|`` and the weights), else
    F(2x2, 3x3) (16 per 4, a bound about 5000 times lower), else None is returned and nothing
    is computed. With ``transposed`` the same computes a stride-2 5x5 transposed
    convolution (padding 2, output padding 1).

    Args:
      x: float64 (B, C_in, H, W) integers.
      weight: float64 integers, (C_out, C_in, 3, 3), or (C_in, C_out, 5, 5) if ``transposed``.
      bias: float64 (C_out,) integers.
      transposed: see above.
      filters: ``m -> winograd_filters(weight, transposed, m)``, possibly cached.
    Returns:
      float64 (B, C_out, H, W) integers ((B, C_out, 2H, 2W) if ``transposed``), or None.
    """
    if x.numel() == 0:
        return None
    low, high = torch.aminmax(x)
    largest = max(-low.item(), high.item(), 1.0)
    for m in (4, 2):
        u, r = filters(m) if filters is not None else winograd_filters(weight, transposed, m)
        if largest * r < _EXACT_LIMIT:  # False for NaN too
            return _winograd(x, u, bias, m, transposed)
    return None


def _winograd(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor, m: int, transposed: bool) -> torch.Tensor:
    """F(m x m, 3x3) with transformed filters u (n^2, C_out', C_in); see :func:`winograd_conv3x3`."""
    mats = _winograd_matrices(m)
    scale = mats["scale"]
    n = m + 2
    batch, _, height, width = x.shape
    c_out = u.shape[1]  # 4 C_out if transposed
    th, tw = -(-height // m), -(-width // m)
    xp = F.pad(x, (1, m * tw - width + 1, 1, m * th - height + 1))
    if transposed:
        c = c_out // 4
        out = x.new_empty(batch, c, 2 * m * th, 2 * m * tw)
        # pixel (2 m i + 2 a + p, 2 m j + 2 b + q) as (B, a, b, p, q, C, i, j)
        target = out.view(batch, c, th, m, 2, tw, m, 2).permute(0, 3, 6, 4, 7, 1, 2, 5)
    else:
        out = x.new_empty(batch, c_out, m * th, m * tw)
        target = out.view(batch, c_out, th, m, tw, m).permute(0, 3, 5, 1, 2, 4)  # (B, a, b, C, i, j)
    bias_view = bias.view(-1, 1, 1)
    step = max(1, min(th, _STEP_ELEMENTS // (n * n * c_out * tw)))
    for b in range(batch):
        for r0 in range(0, th, step):
            rows = min(step, th - r0)
            v = _winograd_input(xp[b, :, m * r0:m * (r0 + rows) + 2], mats["btk"], m)
            prod = torch.bmm(u, v)  # (n^2, C_out', rows * tw); one call: few thread synchronisations
            o = torch.mm(mats["ak"], prod.view(n * n, -1))
            # bias + 1 * o / scale: the quotient is an integer, so every step is exact
            torch.addcdiv(bias_view, o.view(target.shape[1:-2] + (rows, tw)), scale,
                          out=target[b, ..., r0:r0 + rows, :])
    size = (2 * height, 2 * width) if transposed else (height, width)
    if out.shape[-2:] != size:
        out = out[:, :, :size[0], :size[1]].contiguous()
    return out


def _winograd_input(xp: torch.Tensor, btk: torch.Tensor, m: int) -> torch.Tensor:
    """Input transform ``B^T d B`` of the (m + 2)^2 tiles (stride m) of padded rows
    (C, m rows + 2, m tw + 2) -> float64 (n^2, C, rows * tw), position ``n i + j``;
    ``btk`` is ``kron(B^T, B^T)``."""
    n = m + 2
    c = xp.shape[0]
    tiles = xp.unfold(1, n, m).unfold(2, n, m)  # (C, rows, tw, n, n), a view
    rows, tw = tiles.shape[1:3]
    # B^T d B = sum over (k, l) of bt[i, k] bt[j, l] d[k, l], as one small GEMM
    v = torch.mm(btk, tiles.permute(3, 4, 0, 1, 2).reshape(n * n, -1))
    return v.view(n * n, c, rows * tw)
