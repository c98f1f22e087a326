"""Cascaded multi-codebook vector quantisation (McQuic) with static index tables.

McQuic (Zhu, Yang & Cohen, "Unified multivariate Gaussian mixture for efficient neural
image compression", CVPR 2022) replaces scalar quantisation plus a context model by
vector quantisation: the latent channels are cut into ``M`` sub-vectors, each replaced by
the nearest of ``K`` learned codewords of its own codebook, and only the codeword
*indexes* are entropy coded. Because the indexes of one position are nearly independent
given the codebooks, a static table per codebook codes them well, and coding needs no
network at all: decoding is an entropy decode plus a table lookup.

Structure (the latents ``y`` are (B, C, H, W); ``p`` is the prediction built so far):

* **Coarse levels** ``l = 1..L`` at strides ``s_l`` (default 4 then 2, i.e. H/32 and
  H/16 of the image for the block transform): an analysis head maps the residual
  ``y - p`` to ``D_l`` channels at ``H / s_l``, a :class:`MultiCodebookQuantizer` with
  ``M_l`` codebooks quantises it, and a synthesis head conditioned on ``p`` adds its
  upsampled prediction: ``p <- p + S_l(v_l, p)``. Each level thus quantises what the
  coarser ones left, and its dequantised output conditions the next (the cascade).
* **Fine stages** ``f = 1..F`` at the latent resolution, residual VQ of ``y - p`` with no
  head: the channels, taken in ``channel_order`` (the block model passes DCT frequency
  order, so the first codebook holds the lowest frequencies), are cut into
  ``fine_codebooks`` groups; stage ``f`` quantises what stages ``< f`` left.

**Variable rate by structure.** The coarse levels are always coded. The
``F * fine_codebooks`` fine *units* (stage-major, then codebook, i.e. low frequencies
first) are coded as a prefix whose length is ``units_per_quality[k - 1]`` for
``k = floor(quality + 0.5)``; a unit not coded contributes nothing (its channels keep the
prediction). Since the earlier units' indexes do not depend on which later ones are
coded, the symbols of a lower quality are a subset of those of a higher one: fewer units,
fewer bytes.

**Training face.** Soft assignment by distance, ``softmax(-|x - c_k|^2 * sharpness)``
(a Gaussian mixture with the codewords as means; sharpness learned per codebook), with
a hard forward and a straight-through gradient (the Gumbel-softmax estimator): under
``rate_proxy="noise"`` the hard code is sampled (Gumbel-max on the logits), under
``"round"`` it is the nearest codeword, which is what the coder sends. The rate is
``-log2 p[code]`` under each codebook's index distribution ``p``, a moving average of
the code usage (McQuic's code frequencies), floored as the 16-bit tables built from it
at export will be; a straight-through term through the soft assignment pulls the encoder
towards cheap codewords (entropy-constrained VQ). Codewords are stored in units of each
coordinate's spread (set at seeding), so optimiser steps are relative to it. Dead
codewords (not used over ``reseed_every`` training forwards, and all of them at the
first forward that codes their codebook) are re-seeded from the current inputs, drawn
from a local generator seeded from the training seed and step (deterministic for a seed;
the global RNG is not touched). :mod:`neurocodec.train.kmeans_init` instead fits every
codebook by k-means on a trained transform's latents before any training.

**Coding face (exact).** Indexes are int32 symbols under static integer tables
(:class:`~neurocodec.coding.IntTables`, 16 bits, built at export from the index
distributions and stored in the weight file); a symbol's table is its codebook, so the
probabilities are fixed integers and decoding is exact everywhere. The reconstruction ``y_hat`` is
computed from the indexes by one function that encoder and decoder share
(:meth:`CascadedVQ.cascade`): codebook lookups (exact) and the coarse synthesis heads
(float, like the synthesis transform: bit-identical within a process, within float
rounding across machines; no symbol depends on it). All indexes of a tile go in one
segment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FormatError
from .base import RATE_PROXIES, EntropyModel, EntropyOutput

TABLE_PREFIX = "tables.vq."     # weight-file names of the index tables
TABLE_PRECISION = 16
LEVEL_SCALE = 8.0               # coarse heads see latents / 8 (DC coefficients reach tens)
NEAREST_CHUNK = 16384           # positions per distance block in the coding face (bounds memory)
RESEED_SPREAD = 1e-2            # re-seeded codewords get this fraction of the inputs' std as noise
FREQUENCY_RATE = 0.02           # moving-average rate of the index distributions (per training forward)


class MultiCodebookQuantizer(nn.Module):
    """``M`` codebooks of ``K`` codewords of dimension ``d`` for inputs (B, M*d, H, W).

    Channels ``m*d .. (m+1)*d - 1`` form sub-vector ``m``, quantised by codebook ``m``.

    Args:
      codebooks: M.
      codebook_size: K (at most 2**16 - 1, the table size the coder allows).
      dim: d.
      reseed_every: dead-code window in training forwards (0: never re-seed).

    Parameters: ``codebook`` float32 (M, K, d), the codewords in units of ``spread``
    (see :meth:`codewords`: Adam's steps are then relative to each coordinate's spread,
    which ranges over decades for DCT coefficients); ``log_sharpness`` float32 (M,),
    inverse temperature of the soft assignment.
    Buffers: ``frequency`` float32 (M, K), moving average of the index distribution
    (the rate's model; the coder's tables are built from it); ``spread`` float32 (M, d),
    per-coordinate spread of the inputs, set at seeding; ``usage`` int64 (M, K), hard
    assignments of coded units in the current window; ``forwards`` int64 (), training
    forwards so far; ``seeded`` bool (M,), which codebooks have had their data-dependent
    initialisation (see :meth:`_reseed`).
    """

    def __init__(self, codebooks: int, codebook_size: int, dim: int, reseed_every: int = 50):
        super().__init__()
        if codebooks < 1 or dim < 1 or not 2 <= codebook_size < 2**TABLE_PRECISION:
            raise ValueError(f"need codebooks >= 1, dim >= 1 and 2 <= codebook_size < {2**TABLE_PRECISION}, "
                             f"got {codebooks}, {dim}, {codebook_size}")
        if reseed_every < 0:
            raise ValueError(f"reseed_every must be >= 0, got {reseed_every}")
        self.codebooks, self.codebook_size, self.dim = codebooks, codebook_size, dim
        self.reseed_every = reseed_every
        self.codebook = nn.Parameter(torch.randn(codebooks, codebook_size, dim) * 0.1)
        self.log_sharpness = nn.Parameter(torch.zeros(codebooks))
        self.register_buffer("frequency", torch.full((codebooks, codebook_size), 1.0 / codebook_size))
        self.register_buffer("spread", torch.ones(codebooks, dim))
        self.register_buffer("usage", torch.zeros(codebooks, codebook_size, dtype=torch.int64))
        self.register_buffer("forwards", torch.zeros((), dtype=torch.int64))
        self.register_buffer("seeded", torch.zeros(codebooks, dtype=torch.bool))
        self.salt = 0   # set by CascadedVQ: its quantizers' re-seeding draws differ (not stored)

    # -- layout helpers ----------------------------------------------------------------
    def _flatten(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """(B, m*d, H, W) -> (m, B*H*W, d)."""
        b, _, h, w = x.shape
        return x.reshape(b, m, self.dim, h, w).permute(1, 0, 3, 4, 2).reshape(m, b * h * w, self.dim)

    def _unflatten(self, v: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """(m, B*H*W, d) -> (B, m*d, H, W)."""
        m = v.shape[0]
        b, h, w = shape
        return v.reshape(m, b, h, w, self.dim).permute(1, 0, 4, 2, 3).reshape(b, m * self.dim, h, w)

    def codewords(self) -> torch.Tensor:
        """The codewords, float32 (M, K, d): ``codebook * spread``."""
        return self.codebook * self.spread.unsqueeze(1)

    def _distances(self, flat: torch.Tensor, m: int, codewords: torch.Tensor) -> torch.Tensor:
        """Squared distances (m, N, K) of sub-vectors (m, N, d) to the first m codebooks."""
        c = codewords[:m]
        cross = torch.bmm(flat, c.transpose(1, 2))
        return ((flat * flat).sum(-1, keepdim=True) + (c * c).sum(-1).unsqueeze(1) - 2.0 * cross).clamp_min(0.0)

    def code_lengths(self) -> torch.Tensor:
        """Bits of every index, float32 (M, K): ``-log2`` of the index distribution as the
        16-bit tables will hold it (every index keeps at least ``2**-16``)."""
        floor = 2.0**-TABLE_PRECISION
        p = self.frequency / self.frequency.sum(-1, keepdim=True)
        return -torch.log2(p * (1.0 - (self.codebook_size + 1) * floor) + floor)

    def pmfs(self) -> np.ndarray:
        """The index distribution the coder's tables are built from: float64 (M, K)."""
        p = self.frequency.double()
        return (p / p.sum(-1, keepdim=True)).numpy()

    # -- training face ----------------------------------------------------------------
    def forward(self, x: torch.Tensor, active: torch.Tensor, rate_proxy: str = "noise",
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training face.

        Args:
          x: float32 (B, M*d, H, W).
          active: float32 (B, M), 1 where sub-vector m of sample b is coded, 0 where it is
            dropped (its output and bits are then 0).
          rate_proxy: ``"noise"`` (hard code sampled by Gumbel-max) or ``"round"`` (hard
            code = nearest codeword, as coded).
          generator: source of the Gumbel noise (default: torch's global generator).
        Returns:
          (x_hat, bits, index): x_hat float32 (B, M*d, H, W), the hard codewords with a
          straight-through gradient through the soft assignment; bits float32 (B, M, H, W);
          index int64 (B, M, H, W), the hard codes.
        """
        if rate_proxy not in RATE_PROXIES:
            raise ValueError(f"rate proxy must be one of {RATE_PROXIES}, got {rate_proxy!r}")
        b, _, h, w = x.shape
        m, k = self.codebooks, self.codebook_size
        flat = self._flatten(x, m)
        coded = active.t().reshape(m, b, 1, 1).expand(m, b, h, w).reshape(m, b * h * w)
        if self.training:
            self._reseed(flat.detach(), coded > 0, generator)
        codewords = self.codewords()
        logits = -self._distances(flat, m, codewords) * torch.exp(self.log_sharpness).view(m, 1, 1)
        if rate_proxy == "noise":
            uniform = torch.rand(logits.shape, generator=generator, dtype=logits.dtype, device=logits.device)
            uniform.clamp_(1e-12, 1.0 - 1e-7)
            logits = logits - torch.log(-torch.log(uniform))
        soft = torch.softmax(logits, dim=-1)
        index = logits.argmax(dim=-1)
        hard = F.one_hot(index, k).to(soft.dtype)
        assign = hard + soft - soft.detach()
        x_hat = torch.bmm(assign, codewords) * coded.unsqueeze(-1)
        lengths = self.code_lengths().unsqueeze(1)
        soft_bits = (soft * lengths).sum(-1)
        bits = ((hard * lengths).sum(-1) + soft_bits - soft_bits.detach()) * coded
        if self.training:
            self._count(hard.detach(), coded)
        index_map = index.reshape(m, b, h, w).permute(1, 0, 2, 3)
        return self._unflatten(x_hat, (b, h, w)), bits.reshape(m, b, h, w).permute(1, 0, 2, 3), index_map

    @torch.no_grad()
    def _count(self, hard: torch.Tensor, coded: torch.Tensor) -> None:
        """Training bookkeeping: window usage, and the moving average of the index
        distribution (a running mean over the first ``1 / FREQUENCY_RATE`` forwards, so the
        rate model is fitted from the start). hard float32 (M, N, K), coded (M, N)."""
        counts = (hard * coded.unsqueeze(-1)).sum(1)
        self.usage += counts.to(torch.int64)
        total = counts.sum(-1, keepdim=True)
        rate = max(FREQUENCY_RATE, 1.0 / (int(self.forwards) + 1))
        update = torch.where(total > 0, counts / total.clamp_min(1.0), self.frequency)
        self.frequency.mul_(1.0 - rate).add_(rate * update)
        self.forwards += 1

    def reseed_generator(self, generator: torch.Generator | None = None) -> torch.Generator:
        """The local generator of a re-seeding check: seeded from the training seed (the
        initial seed of ``generator``, or else of torch's global generator, which the trainer
        seeds per step from its seed), this quantizer's ``salt`` and its forwards so far.
        Reading an initial seed draws nothing, so re-seeding leaves every other random stream
        (the global one, the Gumbel noise) as it was."""
        base = generator.initial_seed() if generator is not None else torch.initial_seed()
        mixed = (int(base) * 1_000_003 + int(self.salt) * 7_919 + int(self.forwards)) % (2**63 - 1)
        return torch.Generator().manual_seed(mixed)

    @torch.no_grad()
    def _reseed(self, flat: torch.Tensor, coded: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Dead-code re-seeding, in the training face.

        Every ``reseed_every`` training forwards, the codewords of codebook m that no coded
        sub-vector used since its last check are replaced by random current inputs of that
        codebook (drawn from a local generator, :meth:`reseed_generator`, never the global
        one; plus a little noise so copies of one input differ) and given a 1/K share of the index distribution (the moving average then
        renormalises it); a seeded codebook whose window saw no coded sub-vector is left
        alone (so fitted codebooks, e.g. by k-means, survive the first training forward). A
        codebook not seeded yet is checked at every forward until some
        sample codes it: all its codewords are then dead, so this is a data-dependent
        initialisation, which also sets its ``spread`` and its sharpness from the inputs.

        Args:
          flat: float32 (M, N, d) inputs; coded: bool (M, N), which of them are coded.
          generator: the forward's generator (only its initial seed is read).
        """
        if self.reseed_every == 0:
            return
        window = int(self.forwards) % self.reseed_every == 0
        if not window and bool(self.seeded.all()):
            return
        k = self.codebook_size
        local = self.reseed_generator(generator)
        for m in range(self.codebooks):
            pool = flat[m][coded[m]]
            if not (window or not self.seeded[m]) or pool.shape[0] == 0:
                continue
            # a seeded codebook that no coded sub-vector reached in this window (the first
            # forward after loading fitted codebooks, a unit no sample drew) has no evidence
            # of dead codewords: it is left as it is
            evidence = not self.seeded[m] or bool(self.usage[m].any())
            dead = torch.nonzero(self.usage[m] == 0).squeeze(1)
            if dead.numel() and evidence:
                pick = torch.randint(pool.shape[0], (dead.numel(),), generator=local)
                spread = pool.std(dim=0, unbiased=False) if pool.shape[0] > 1 else pool.abs().mean(0)
                if not self.seeded[m]:  # the codebook's coordinates are in units of this spread
                    self.spread[m] = spread.clamp_min(1e-3 * float(spread.max()) + 1e-8)
                noise = torch.randn(dead.numel(), self.dim, generator=local) * (RESEED_SPREAD * spread + 1e-6)
                self.codebook[m, dead] = (pool[pick] + noise) / self.spread[m]
                self.frequency[m, dead] = float(self.frequency[m].sum()) / k
                if not self.seeded[m]:
                    # Gaussian-mixture reading of the soft assignment: logits -|x - c|^2 / (2 s^2)
                    # with s^2 the per-dimension error a K-word codebook leaves on inputs of
                    # this spread (high-rate approximation var * K^(-2/d)), so sampled codes
                    # start near the nearest one instead of anywhere in the codebook.
                    error = (spread.pow(2).mean() * k ** (-2.0 / self.dim)).clamp_min(1e-8)
                    self.log_sharpness[m] = -torch.log(2.0 * error)
            self.seeded[m] = True
            self.usage[m].zero_()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # Each process re-seeds from its own inputs: keep rank 0's codebooks everywhere.
            # The condition above reads buffers DDP has just broadcast from rank 0, so every
            # process takes this branch at the same forwards.
            for tensor in (self.codebook, self.frequency, self.spread, self.log_sharpness, self.seeded):
                torch.distributed.broadcast(tensor.data, 0)

    # -- coding face --------------------------------------------------------------------
    @torch.no_grad()
    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder: nearest codewords of the first ``m`` sub-vectors.

        Args:
          x: float32 (B, m*d, H, W), m <= M.
        Returns:
          int64 (B, m, H, W) indexes in [0, K).
        """
        b, c, h, w = x.shape
        m = c // self.dim
        flat = self._flatten(x, m)
        codewords = self.codewords()
        index = torch.empty(m, flat.shape[1], dtype=torch.int64)
        for start in range(0, flat.shape[1], NEAREST_CHUNK):
            part = flat[:, start:start + NEAREST_CHUNK]
            index[:, start:start + NEAREST_CHUNK] = self._distances(part, m, codewords).argmin(dim=-1)
        return index.reshape(m, b, h, w).permute(1, 0, 2, 3)

    def lookup(self, index: torch.Tensor) -> torch.Tensor:
        """Decoder (and encoder): codewords of indexes int64 (B, m, H, W), m <= M, in
        [0, K) -> float32 (B, m*d, H, W). A gather, so exact."""
        b, m, h, w = index.shape
        flat = index.permute(1, 0, 2, 3).reshape(m, -1)
        rows = torch.arange(m).unsqueeze(1).expand_as(flat)
        return self._unflatten(self.codewords()[rows, flat], (b, h, w))


class CoarseLevel(nn.Module):
    """One coarse level of the cascade: heads around a :class:`MultiCodebookQuantizer`.

    ``analysis``: residual (B, C, H, W) -> (B, D, H/s, W/s); ``synthesise``: codewords
    (B, D, H/s, W/s) and the prediction so far (B, C, H, W) -> its update (B, C, H, W).

    Args:
      channels: C; width: D (a multiple of ``codebooks``); hidden: head width;
      stride: s; codebooks, codebook_size, reseed_every: of the quantizer.
    """

    def __init__(self, channels: int, width: int, hidden: int, stride: int, codebooks: int, codebook_size: int,
                 reseed_every: int):
        super().__init__()
        if width % codebooks:
            raise ValueError(f"a coarse level's width ({width}) must be a multiple of its codebooks ({codebooks})")
        self.stride = stride
        self.analysis_net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(hidden, width, stride, stride=stride),
        )
        self.up = nn.ConvTranspose2d(width, hidden, stride, stride=stride)
        self.side = nn.Conv2d(channels, hidden, 1)
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)
        with torch.no_grad():  # predictions start at 0: a random head would only add noise
            self.out.weight.zero_()
            self.out.bias.zero_()
        self.quantizer = MultiCodebookQuantizer(codebooks, codebook_size, width // codebooks, reseed_every)

    def analysis(self, residual: torch.Tensor) -> torch.Tensor:
        return self.analysis_net(residual / LEVEL_SCALE)

    def synthesise(self, codewords: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
        hidden = F.leaky_relu(self.up(codewords) + self.side(prediction / LEVEL_SCALE), 0.1)
        return self.out(hidden)


@dataclass(frozen=True)
class VQSymbols:
    """What the coder needs for one image (batch of one).

    Attributes:
      indexes: int64 tensors, one per coarse level (1, M_l, H/s_l, W/s_l), then one per
        fine stage with any coded unit (1, n_f, H, W), n_f its coded codebooks.
      y_hat: float32 (1, C, H, W), the dequantised latents (as the decoder computes them).
      units: fine units coded (see :meth:`CascadedVQ.units`).
    """

    indexes: list
    y_hat: torch.Tensor
    units: int


class CascadedVQ(EntropyModel):
    """McQuic-style entropy model: cascaded multi-codebook VQ, static index tables.

    Args:
      latent_channels: C.
      coarse_widths: D_l of the coarse levels, coarsest first.
      coarse_codebooks: M_l.
      coarse_strides: s_l (powers of two, decreasing); H and W of the latents must be
        multiples of the first.
      fine_stages: F, residual VQ stages at the latent resolution.
      fine_codebooks: codebooks per fine stage; C must be a multiple of it.
      codebook_size: K, codewords per codebook (every level).
      hidden: width of the coarse heads.
      channel_order: permutation of range(C), the order in which fine groups take the
        channels (default: identity).
      units_per_quality: 8 non-decreasing counts of coded fine units for qualities 1..8
        (default ``round(F * fine_codebooks * i / 7)``, i = 0..7).
      reseed_every: dead-code window (training forwards).
    """

    def __init__(self, latent_channels: int, coarse_widths=(64, 128), coarse_codebooks=(2, 4), coarse_strides=(4, 2),
                 fine_stages: int = 2, fine_codebooks: int = 4, codebook_size: int = 256, hidden: int = 96,
                 channel_order=None, units_per_quality=None, reseed_every: int = 50):
        super().__init__()
        c = latent_channels
        if not (len(coarse_widths) == len(coarse_codebooks) == len(coarse_strides)):
            raise ValueError("coarse_widths, coarse_codebooks and coarse_strides need one entry per coarse level")
        strides = [int(s) for s in coarse_strides]
        if any(s < 1 or s & (s - 1) for s in strides) or strides != sorted(strides, reverse=True):
            raise ValueError(f"coarse strides must be decreasing powers of two, got {strides}")
        if fine_stages < 0 or fine_codebooks < 1 or c % fine_codebooks:
            raise ValueError(f"latent channels ({c}) must split into fine_codebooks ({fine_codebooks}) equal groups "
                             f"and fine_stages ({fine_stages}) must be >= 0")
        order = list(range(c)) if channel_order is None else [int(i) for i in channel_order]
        if sorted(order) != list(range(c)):
            raise ValueError(f"channel_order must be a permutation of range({c})")
        units = fine_stages * fine_codebooks
        schedule = ([round(units * i / 7) for i in range(8)] if units_per_quality is None
                    else [int(u) for u in units_per_quality])
        if len(schedule) != 8 or schedule != sorted(schedule) or schedule[0] < 0 or schedule[-1] > units:
            raise ValueError(f"units_per_quality must be 8 non-decreasing counts in [0, {units}], got {schedule}")
        if not strides and units == 0:
            raise ValueError("the cascade needs at least one coarse level or fine unit")
        self.latent_channels = c
        self.fine_codebooks = fine_codebooks
        self.codebook_size = codebook_size
        self.units_per_quality = tuple(schedule)
        self.levels = nn.ModuleList([
            CoarseLevel(c, int(w), hidden, s, int(m), codebook_size, reseed_every)
            for w, m, s in zip(coarse_widths, coarse_codebooks, strides)
        ])
        self.fine = nn.ModuleList([
            MultiCodebookQuantizer(fine_codebooks, codebook_size, c // fine_codebooks, reseed_every)
            for _ in range(fine_stages)
        ])
        for i, quantizer in enumerate(self.quantizers):
            quantizer.salt = i
        self.register_buffer("order", torch.tensor(order, dtype=torch.int64), persistent=False)
        self.register_buffer("inverse_order", torch.argsort(torch.tensor(order)), persistent=False)
        self.latent_multiple = max(strides, default=1)
        self.num_segments = 1
        self.tables = None          # IntTables, built by update_tables() or loaded

    @property
    def quantizers(self) -> list[MultiCodebookQuantizer]:
        """Every quantizer in coding order (coarse levels, then fine stages); quantizer i's
        codebook m is coder table ``table_offsets[i] + m``."""
        return [level.quantizer for level in self.levels] + list(self.fine)

    @property
    def table_offsets(self) -> list[int]:
        counts = [q.codebooks for q in self.quantizers]
        return [sum(counts[:i]) for i in range(len(counts))]

    def units(self, quality: float) -> int:
        """Fine units coded at ``quality`` (float in [1, 8]): ``units_per_quality[k - 1]``,
        ``k = floor(quality + 0.5)``."""
        k = min(max(int(math.floor(float(quality) + 0.5)), 1), 8)
        return self.units_per_quality[k - 1]

    def _check_shape(self, h: int, w: int) -> None:
        if h % self.latent_multiple or w % self.latent_multiple:
            raise ValueError(f"latent height and width must be multiples of {self.latent_multiple}, got {h}x{w}")

    # -- training face -------------------------------------------------------------------
    def forward(self, y: torch.Tensor, log2_gain: torch.Tensor, quality: torch.Tensor,
                rate_proxy: str = "noise", generator: torch.Generator | None = None) -> EntropyOutput:
        """Training face (:meth:`~neurocodec.entropy.base.EntropyModel.forward`).

        Args:
          y: float32 (B, C, H, W) scaled latents.
          log2_gain: float32 (B, C, 1, 1); not used (a codebook has no quantisation step,
            the scale is already in ``y``).
          quality: float32 (B,) in [1, 8]; selects each sample's coded fine units.
          rate_proxy: ``"noise"`` or ``"round"``, see :meth:`MultiCodebookQuantizer.forward`.
          generator: source of the Gumbel noise.
        Returns:
          ``y_hat`` float32 (B, C, H, W); ``y_bits`` float32 (B, 1, H, W), bits of the fine
          units; ``z_bits`` float32 (B, 1, 1, 1), bits of the coarse levels.
        """
        b, c, h, w = y.shape
        self._check_shape(h, w)
        k = torch.clamp(torch.floor(quality.detach().float() + 0.5), 1, 8).long()
        units = torch.tensor(self.units_per_quality)[k - 1]
        p = torch.zeros_like(y)
        z_bits = y.new_zeros(b, 1, 1, 1)
        for level in self.levels:
            v, bits, _ = level.quantizer(level.analysis(y - p), y.new_ones(b, level.quantizer.codebooks), rate_proxy,
                                         generator)
            p = p + level.synthesise(v, p)
            z_bits = z_bits + bits.sum(dim=(1, 2, 3)).view(b, 1, 1, 1)
        residual = (y - p).index_select(1, self.order)
        refined = torch.zeros_like(y)
        y_bits = y.new_zeros(b, 1, h, w)
        for f, quantizer in enumerate(self.fine):
            first = f * self.fine_codebooks
            active = (torch.arange(first, first + self.fine_codebooks).view(1, -1) < units.view(-1, 1)).to(y.dtype)
            v, bits, _ = quantizer(residual, active, rate_proxy, generator)
            residual = residual - v
            refined = refined + v
            y_bits = y_bits + bits.sum(dim=1, keepdim=True)
        return EntropyOutput(p + refined.index_select(1, self.inverse_order), y_bits, z_bits)

    # -- shared reconstruction -------------------------------------------------------------
    def cascade(self, y: torch.Tensor | None, indexes: list | None, shape: tuple[int, int, int, int], units: int
                ) -> tuple[list, torch.Tensor]:
        """The one path from indexes to ``y_hat``, shared by encoder and decoder.

        Args:
          y: float32 (1, C, H, W) scaled latents (encoder: indexes are chosen on the way),
            or None (decoder).
          indexes: None (encoder), or the decoder's indexes in the layout of
            :class:`VQSymbols`.
          shape: (1, C, H, W) of the latents.
          units: fine units coded.
        Returns:
          (indexes, y_hat float32 (1, C, H, W)).
        """
        encoding = y is not None
        given = iter(indexes or [])
        chosen = []
        p = torch.zeros(shape)
        for level in self.levels:
            index = level.quantizer.nearest(level.analysis(y - p)) if encoding else next(given)
            p = p + level.synthesise(level.quantizer.lookup(index), p)
            chosen.append(index)
        refined = torch.zeros(shape)
        residual = (y - p).index_select(1, self.order) if encoding else None
        group = self.latent_channels // self.fine_codebooks
        for f, quantizer in enumerate(self.fine):
            n = min(max(units - f * self.fine_codebooks, 0), self.fine_codebooks)
            if n == 0:
                break
            index = quantizer.nearest(residual[:, :n * group]) if encoding else next(given)
            v = quantizer.lookup(index)
            refined[:, :n * group] += v
            if encoding:
                residual[:, :n * group] -= v
            chosen.append(index)
        return chosen, p + refined.index_select(1, self.inverse_order)

    def _layout(self, shape: tuple[int, int, int, int], units: int) -> list[tuple[int, tuple[int, ...]]]:
        """(first table, index shape) of every coded index tensor, in coding order."""
        _, _, h, w = shape
        offsets = self.table_offsets
        out = []
        for i, level in enumerate(self.levels):
            out.append((offsets[i], (1, level.quantizer.codebooks, h // level.stride, w // level.stride)))
        for f in range(len(self.fine)):
            n = min(max(units - f * self.fine_codebooks, 0), self.fine_codebooks)
            if n:
                out.append((offsets[len(self.levels) + f], (1, n, h, w)))
        return out

    def _table_indexes(self, layout) -> np.ndarray:
        parts = [np.broadcast_to((first + np.arange(s[1], dtype=np.int32)).reshape(1, -1, 1, 1), s).ravel()
                 for first, s in layout]
        return np.concatenate(parts) if parts else np.zeros(0, np.int32)

    # -- coding face ----------------------------------------------------------------------
    @torch.no_grad()
    def update_tables(self, log_gain: torch.Tensor | None = None) -> None:
        """Build the integer index tables from the learned index distributions (export time
        only). ``log_gain`` is accepted for the common export interface and unused: no
        gain enters these tables."""
        from ..coding import build_tables

        pmfs = [row for q in self.quantizers for row in q.pmfs()]
        self.tables = build_tables(pmfs, np.zeros(len(pmfs), np.int32), precision=TABLE_PRECISION)

    def coding_state(self) -> dict[str, torch.Tensor]:
        """The coding state a weight file stores next to the parameters: the index tables
        as ``tables.vq.{freqs, offsets, minima, precision}``."""
        self._require_tables()
        return {TABLE_PREFIX + k: torch.from_numpy(a.copy()) for k, a in self.tables.to_arrays().items()}

    def load_coding_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`coding_state`; ``tensors`` may hold other names (ignored).
        Raises ValueError if the tables do not fit this model's codebooks."""
        from ..coding import IntTables

        arrays = {k[len(TABLE_PREFIX):]: v.numpy() for k, v in tensors.items() if k.startswith(TABLE_PREFIX)}
        if not arrays:
            raise ValueError("weight file has no VQ index tables (tables.vq.*)")
        tables = IntTables.from_arrays(arrays)
        expected = sum(q.codebooks for q in self.quantizers)
        if tables.num_tables != expected or np.any(tables.sizes != self.codebook_size) or np.any(tables.minima != 0):
            raise ValueError(f"weight file's VQ tables ({tables.num_tables} tables) do not fit this model "
                             f"({expected} codebooks of {self.codebook_size} codewords)")
        self.tables = tables

    def _require_tables(self) -> None:
        if self.tables is None:
            raise RuntimeError("entropy model has no coding tables: call update_tables() or load a weight file")

    @torch.no_grad()
    def quantise(self, y: torch.Tensor, quality: float, distortion_weight: np.ndarray | None = None
                 ) -> VQSymbols:
        """Encoder side: scaled latents float32 (1, C, H, W) at ``quality`` -> indexes and
        y_hat (nearest codewords: a ``distortion_weight`` raises ValueError)."""
        self.check_distortion_weight(distortion_weight)
        self._require_tables()
        self._check_shape(y.shape[2], y.shape[3])
        units = self.units(quality)
        indexes, y_hat = self.cascade(y.float(), None, tuple(y.shape), units)
        return VQSymbols(indexes, y_hat, units)

    def encode(self, symbols: VQSymbols, coder: str = "cpu") -> list[bytes]:
        """Indexes -> [one segment]: every index, each under its codebook's table."""
        from ..coding import get_backend

        self._require_tables()
        values = np.concatenate([i.to(torch.int32).numpy().ravel() for i in symbols.indexes])
        layout = self._layout(tuple(symbols.y_hat.shape), symbols.units)
        return [get_backend(coder).encode(values, self._table_indexes(layout), self.tables)]

    @torch.no_grad()
    def decode(self, segments: list[bytes], y_shape: tuple[int, int, int, int], quality: float,
               coder: str = "cpu") -> torch.Tensor:
        """[segment] -> y_hat float32 ``y_shape`` (1, C, H, W). Raises FormatError on a
        stream that does not decode to valid indexes."""
        from ..coding import get_backend

        self._require_tables()
        self.check_segments(segments)
        self._check_shape(y_shape[2], y_shape[3])
        units = self.units(quality)
        layout = self._layout(y_shape, units)
        values = get_backend(coder).decode(segments[0], self._table_indexes(layout), self.tables)
        if values.size and (int(values.min()) < 0 or int(values.max()) >= self.codebook_size):
            raise FormatError(f"stream holds codeword indexes outside [0, {self.codebook_size})")
        indexes, start = [], 0
        for _, s in layout:
            count = int(np.prod(s))
            indexes.append(torch.from_numpy(values[start:start + count].astype(np.int64)).reshape(s))
            start += count
        return self.cascade(None, indexes, tuple(y_shape), units)[1]
