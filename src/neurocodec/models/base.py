"""Variable-rate transform codec: the part every architecture shares.

An architecture supplies ``analysis`` (image -> latents) and ``synthesis`` (latents ->
image). This base adds what makes one set of weights cover the whole rate range (gain
units, Cui et al., CVPR 2021): a learned per-channel gain vector for each of the eight
quality levels, interpolated geometrically for fractional qualities, that scales the
latents before quantisation, and a separate inverse gain after it. It also holds the
entropy model and the rate-distortion trade-off of each quality.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..entropy import EntropyModel, MeanScaleHyperprior
from ..entropy.rd_rounding import RD_KAPPA
from .outputs import ModelOutput
from ..quality import MAX_QUALITY, MIN_QUALITY, check_quality  # noqa: F401 - re-exported by models

# Rate-distortion trade-offs of the integer qualities 1..8 of neurocodec.quality's scale
# (distortion = lambda * 255^2 * MSE), the values CompressAI uses, so quality q here is
# comparable with quality q there.
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
assert len(LAMBDAS) == MAX_QUALITY - MIN_QUALITY + 1


def lambda_for_quality(quality: torch.Tensor, table: tuple[float, ...] = LAMBDAS) -> torch.Tensor:
    """Log-linear interpolation of a per-quality table (default :data:`LAMBDAS`);
    quality float (B,) -> lambda float (B,)."""
    logs = torch.log(torch.tensor(table, dtype=quality.dtype))
    return torch.exp(interpolate_qualities(logs.unsqueeze(1), quality).squeeze(1))


def interpolate_qualities(table: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` (8, K) linearly interpolated at qualities (B,) -> (B, K)."""
    position = torch.clamp(quality - 1.0, 0.0, len(LAMBDAS) - 1.0)
    low = torch.clamp(torch.floor(position), max=len(LAMBDAS) - 2).long()
    frac = (position - low).unsqueeze(1).to(table.dtype)
    return table[low] * (1 - frac) + table[low + 1] * frac


class ProbeTooSmallError(ValueError):
    """Probe images too small for :meth:`VariableRateCodec.measure_channel_energy`."""


class VariableRateCodec(nn.Module):
    """Base class of every registered architecture.

    Subclasses set ``self.latent_channels`` and ``self.pad_multiple`` and implement
    :meth:`analysis` and :meth:`synthesis`; they call :meth:`init_gains` once.

    Faces:
      * training: ``forward(x, quality, rate_proxy)`` -> :class:`~neurocodec.models.outputs.ModelOutput`,
        with x float32 (B, 3, H, W) in [0, 1], H and W multiples of ``pad_multiple``,
        quality float32 (B,) in [1, 8];
      * coding: ``compress(x, quality)`` -> (segments, x_hat) and
        ``decompress(segments, shape, quality)`` -> x_hat, for a batch of one.
    """

    architecture: str = ""
    latent_channels: int
    pad_multiple: int
    entropy_model: EntropyModel
    #: Parameter-name prefixes a weight file of the architecture this one extends lacks
    #: (kept at initialisation when warm-starting from one; see
    #: :func:`neurocodec.zoo.weights.load_state_into`).
    warm_start_fresh: tuple[str, ...] = ()
    #: True for a codec that learns each image's networks at encode time (``overfit``): it has
    #: nothing to learn from a data set, so ``neurocodec train`` does not offer it.
    learns_per_image: bool = False

    def init_gains(self, initial_steps: torch.Tensor | None = None) -> None:
        """Create gain tables. ``initial_steps`` float (8, C): quantisation step per quality and
        channel at initialisation (default: ones)."""
        if initial_steps is None:
            initial_steps = torch.ones(len(LAMBDAS), self.latent_channels)
        self.log_gain = nn.Parameter(-torch.log(initial_steps))
        self.log_inverse_gain = nn.Parameter(torch.log(initial_steps).clone())

    @property
    def segments_per_tile(self) -> int:
        """Container segments one tile's stream consists of (2 for the plain hyperprior:
        z and y; more for context models, one per coding pass)."""
        return self.entropy_model.num_segments

    def make_entropy_model(self, hyper_channels: int = 64, hidden: int = 128) -> None:
        self.entropy_model = MeanScaleHyperprior(self.latent_channels, hyper_channels, hidden)

    @torch.no_grad()
    def update_tables(self) -> None:
        """Build the entropy model's coding state from the current parameters (export time)."""
        self.entropy_model.update_tables(self.log_gain.detach())

    # -- to implement ---------------------------------------------------------------
    def analysis(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def synthesis(self, y_hat: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Dequantised, unscaled latents and quality float (B,) -> image (B, 3, H, W)."""
        raise NotImplementedError

    # -- gains --------------------------------------------------------------------------
    def gains(self, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """quality float (B,) -> (gain, inverse gain), each float32 (B, C, 1, 1)."""
        gain = torch.exp(interpolate_qualities(self.log_gain, quality))
        inverse = torch.exp(interpolate_qualities(self.log_inverse_gain, quality))
        return gain[:, :, None, None], inverse[:, :, None, None]

    def log2_gains(self, quality: torch.Tensor) -> torch.Tensor:
        """quality float (B,) -> log2 of the gains, float32 (B, C, 1, 1) (for the prior)."""
        return (interpolate_qualities(self.log_gain, quality) / math.log(2.0))[:, :, None, None]

    # -- training face ------------------------------------------------------------------
    def forward(self, x: torch.Tensor, quality: torch.Tensor, rate_proxy: str = "noise",
                generator: torch.Generator | None = None) -> ModelOutput:
        """Training face: x float32 (B, 3, H, W) in [0, 1], quality float32 (B,) ->
        :class:`~neurocodec.models.outputs.ModelOutput` (``x_hat`` not clamped; ``y_bits``
        and ``z_bits`` as the entropy model gives them). ``rate_proxy`` and ``generator``
        go to the entropy model (:meth:`~neurocodec.entropy.base.EntropyModel.forward`)."""
        gain, inverse = self.gains(quality)
        y = self.analysis(x) * gain
        rate = self.entropy_model(y, self.log2_gains(quality), quality, rate_proxy, generator)
        return ModelOutput(self.synthesis(rate.y_hat * inverse, quality), rate.y_bits, rate.z_bits)

    # -- coding face ----------------------------------------------------------------------
    @torch.no_grad()
    def compress(self, x: torch.Tensor, quality: float, coder: str = "cpu") -> tuple[list[bytes], torch.Tensor]:
        """x float32 (1, 3, H, W) in [0, 1], padded -> (segments, x_hat float32 (1, 3, H, W)).

        ``x_hat`` is computed from the dequantised symbols exactly as :meth:`decompress` does.
        """
        segments, y_hat = self.code_latents(self.analysis(x), quality, coder)
        return segments, self.reconstruct(y_hat, quality)

    def refine_latents(self, x: torch.Tensor, quality: float, steps: int, lr: float = 0.003,
                       seed: int = 0) -> torch.Tensor:
        """Encode-time optimisation of one image's latents for its own RD cost.

        Starts from ``analysis(x)`` and runs ``steps`` Adam steps on
        ``bits + lambda * 255^2 * MSE`` (the training loss, with the networks frozen), with
        the rate of the symbols actually coded and the reconstruction from them, both
        through straight-through rounding (``rate_proxy="round"``: the noise relaxation
        misjudges the rate of an individual image); the learning rate decays linearly to zero. The optimisation runs on the gain-scaled
        latents, where the quantisation step is 1 in every channel and quality, so ``lr``
        is a fraction of a quantisation step. Only the encoder changes: any decoder reads
        the result. Deterministic for a given ``seed``; the noise comes from a generator
        of its own and gradients are taken for the latents alone, so the model (which
        several codecs may share, in several threads) is not touched.

        Args:
          x: float32 (1, 3, H, W) in [0, 1], padded.
        Returns:
          float32 (1, C, h, w): refined unscaled latents, for :meth:`code_latents`.
        """
        q = torch.tensor([quality], dtype=torch.float32)
        lam = float(lambda_for_quality(q))
        pixels = x.shape[2] * x.shape[3]
        with torch.no_grad():
            gain, inverse = self.gains(q)
            log2_gain = self.log2_gains(q)
            scaled = (self.analysis(x) * gain).clone()
        scaled.requires_grad_(True)
        optimizer = torch.optim.Adam([scaled], lr=lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0 - i / max(steps, 1))
        generator = torch.Generator(device=x.device).manual_seed(seed)
        with torch.enable_grad():
            for _ in range(steps):
                rate = self.entropy_model(scaled, log2_gain, q, "round", generator)
                x_hat = self.synthesis(rate.y_hat * inverse, q)
                bits = rate.y_bits.sum() + rate.z_bits.sum()
                loss = bits / pixels + lam * 255.0**2 * torch.mean((x_hat - x) ** 2)
                # autograd.grad, not backward: nothing accumulates in the model's .grad
                (scaled.grad,) = torch.autograd.grad(loss, [scaled])
                optimizer.step()
                schedule.step()
        return (scaled / gain).detach()

    @torch.no_grad()
    def code_latents(self, y: torch.Tensor, quality: float, coder: str = "cpu",
                     rd_rounding: bool = True) -> tuple[list[bytes], torch.Tensor]:
        """Unscaled latents (1, C, h, w) from :meth:`analysis` -> (segments, scaled y_hat).

        Split from :meth:`compress` so rate control can try several qualities on one
        analysis pass. With :attr:`channel_energy` set and ``rd_rounding``, symbols are chosen by
        rate-distortion rounding (:mod:`neurocodec.entropy.rd_rounding`); latents from
        :meth:`refine_latents` are coded with ``rd_rounding=False``: the refinement already
        traded their rate against distortion, and rounding for rate on top removes bits twice
        (measured on kodim23: docs/overfitted.md, "Missing").
        """
        gain, _ = self.gains(torch.tensor([quality], dtype=torch.float32))
        weight = self.rd_weight(quality) if rd_rounding else None
        if weight is None:
            symbols = self.entropy_model.quantise(y * gain, quality)
        else:
            symbols = self.entropy_model.quantise(y * gain, quality, distortion_weight=weight)
        return self.entropy_model.encode(symbols, coder), symbols.y_hat

    # -- rate-distortion rounding (encoder only) ----------------------------------------
    #: float32 (8, C) or None: the squared pixel error (pixels in [0, 1], mean over the
    #: colour channels, summed over positions) one unit of error in a gain-scaled latent of
    #: each channel causes, at each quality. Encoder-side data from a weight file's hints
    #: (:func:`neurocodec.zoo.write_encoder_hints`); None codes with plain rounding.
    channel_energy: torch.Tensor | None = None

    def rd_weight(self, quality: float) -> np.ndarray | None:
        """Per-channel distortion weight of rate-distortion rounding at ``quality``:
        ``RD_KAPPA * lambda * 255^2 * energy`` (energy interpolated geometrically between
        qualities), float64 (1, C, 1, 1) in bits per unit of squared latent error; None
        without :attr:`channel_energy` or for an entropy model that does not support it."""
        if self.channel_energy is None or not self.entropy_model.rd_rounding:
            return None
        q = torch.tensor([quality], dtype=torch.float64)
        energy = torch.exp(interpolate_qualities(torch.log(self.channel_energy.double()), q))
        weight = RD_KAPPA * float(lambda_for_quality(q)) * 255.0**2 * energy
        return weight.numpy().reshape(1, -1, 1, 1)

    @torch.no_grad()
    def measure_channel_energy(self, x: torch.Tensor, spacing: int = 6, samples: int = 4) -> torch.Tensor:
        """Measure :attr:`channel_energy` through the synthesis on probe images.

        The latents of ``x`` (plainly rounded) are cut into cells of ``spacing`` x
        ``spacing`` latents; in each synthesis pass, the latent at the centre of every
        cell is perturbed by +1 in one channel (a different channel per cell and pass),
        and the squared change of the output inside the cell's pixels, averaged over
        colour channels, is one sample of that channel's energy. Cells are wide enough
        that the changes of neighbouring cells do not overlap; ``samples`` samples per
        channel and quality are averaged.

        Args:
          x: float32 (B, 3, H, W) in [0, 1], H and W multiples of :attr:`pad_multiple`
            and of at least ``spacing`` latents.
        Returns:
          float32 (8, C), positive.
        Raises:
          ProbeTooSmallError: the latents of ``x`` hold no cell.
        """
        channels = self.latent_channels
        rows = []
        for quality in range(1, len(LAMBDAS) + 1):
            q = torch.full((x.shape[0],), float(quality))
            gain, inverse = self.gains(q)
            y_hat = torch.round(self.analysis(x) * gain)
            base = self.synthesis(y_hat * inverse, q)
            cells_h, cells_w = y_hat.shape[2] // spacing, y_hat.shape[3] // spacing
            if cells_h == 0 or cells_w == 0:
                raise ProbeTooSmallError(f"probe images of {tuple(x.shape[2:])} pixels hold no cell of "
                                         f"{spacing} x {spacing} latents")
            cell_px = spacing * (x.shape[2] // y_hat.shape[2])
            b, i, j = (t.flatten() for t in torch.meshgrid(torch.arange(x.shape[0]), torch.arange(cells_h),
                                                             torch.arange(cells_w), indexing="ij"))
            total = torch.zeros(channels, dtype=torch.float64)
            count = torch.zeros(channels, dtype=torch.float64)
            for first in range(0, samples * channels, len(b)):
                channel = (torch.arange(len(b)) + first) % channels
                perturbed = y_hat.clone()
                perturbed[b, channel, i * spacing + spacing // 2, j * spacing + spacing // 2] += 1
                change = ((self.synthesis(perturbed * inverse, q) - base).double() ** 2).mean(1)
                change = change[:, :cells_h * cell_px, :cells_w * cell_px]
                per_cell = change.reshape(x.shape[0], cells_h, cell_px, cells_w, cell_px).sum((2, 4))
                total.index_add_(0, channel, per_cell[b, i, j])
                count.index_add_(0, channel, torch.ones(len(b), dtype=torch.float64))
            rows.append(total / count)
        return torch.stack(rows).clamp_min(1e-12).float()

    @torch.no_grad()
    def reconstruct(self, y_hat: torch.Tensor, quality: float) -> torch.Tensor:
        """Scaled, dequantised latents -> x_hat float32 (1, 3, H, W) (the decoder's computation)."""
        q = torch.tensor([quality], dtype=torch.float32)
        _, inverse = self.gains(q)
        return self.synthesis(y_hat * inverse, q)

    @torch.no_grad()
    def decompress(self, segments: list[bytes], shape: tuple[int, int], quality: float,
                   coder: str = "cpu") -> torch.Tensor:
        """segments + padded (H, W) -> x_hat float32 (1, 3, H, W)."""
        return self.reconstruct(self.decode_latents(segments, shape, quality, coder), quality)

    @torch.no_grad()
    def decode_latents(self, segments: list[bytes], shape: tuple[int, int], quality: float,
                       coder: str = "cpu") -> torch.Tensor:
        """segments + padded (H, W) -> the scaled, dequantised latents y_hat float32 (1, C, H/s, W/s)
        that :meth:`reconstruct` turns into pixels (a realism decoder reads them too)."""
        h, w = shape
        stride = self.pad_multiple // 4
        return self.entropy_model.decode(segments, (1, self.latent_channels, h // stride, w // stride), quality, coder)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable)."""
        return dict(self._config)
