"""``overfit``: an overfitted codec (Cool-chic / C3 style). The encoder learns, for one image,
a latent pyramid and the small networks that decode it; the stream carries both.

Per-image parameters (docs/overfitted.md):

* a latent pyramid of ``levels`` one-channel levels, level ``l`` of ``ceil(H / 2**l) x
  ceil(W / 2**l)`` integers;
* an auto-regressive context model (:class:`~neurocodec.entropy.arm.ContextMLP`): a tiny MLP
  over 12 causal neighbours giving a Laplace mean and scale index per latent, computed in
  exact integer arithmetic at coding time, decoded in wavefronts
  (:mod:`neurocodec.entropy.wavefront`);
* a synthesis (:class:`~neurocodec.transforms.pyramid.PyramidSynthesis`): bilinear upsampling
  of the pyramid, a 1x1 network and a 3x3 refinement.

Each module's parameters are quantised with a step ``2**-k`` chosen by rate-distortion after
the optimisation and coded in the stream (:mod:`neurocodec.entropy.parameters`), so the
stream is self-contained; the weight file holds only the configuration and the integer
Laplace tables.

Encoder: Adam with a cosine schedule on ``bits / pixels + lambda * 255^2 * MSE`` (``lambda``
from the quality, :func:`~neurocodec.models.base.lambda_for_quality`), a noise phase
(latents plus uniform noise) then a straight-through rounding phase. Presets by iteration
budget: :data:`PRESETS`.

Segments per tile: 2, the parameters, then the latent pyramid.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..entropy.arm import WEIGHT_LIMIT, ContextMLP, quantise_arm
from ..entropy.fixedpoint import round_ste
from ..entropy.laplace import inverse_scale_of_index, laplace_bits
from ..entropy.parameters import PARAMETER_LIMIT, best_scale, decode_parameters, encode_parameters
from ..entropy.pyramid import PyramidPrior
from ..entropy.wavefront import decode_pyramid, encode_pyramid, make_schedule, pyramid_symbols
from ..errors import FormatError
from ..transforms.pyramid import PyramidSynthesis, level_shapes, synthesise, upsample_pyramid
from .base import VariableRateCodec, lambda_for_quality

#: Iteration budgets of the encoder presets (``effort`` = 0 uses the config's preset).
PRESETS: dict[str, int] = {"fast": 600, "medium": 2000, "slow": 8000}
#: Candidate step exponents ``k`` (step ``2**-k``) tried per module after the optimisation.
STEP_CANDIDATES = tuple(range(3, 13))
#: Integer latents are clamped to +-LATENT_LIMIT.
LATENT_LIMIT = 2**20
#: Progress callback: (iteration, total, estimated bpp, PSNR in dB).
FitProgress = Callable[[int, int, float, float], None]


class UnsupportedCoderError(ValueError):
    """The overfitted codec writes the ``cpu`` (cpu-range) coder only."""


@dataclass
class PendingImage:
    """What :meth:`OverfitCodec.analysis` returns: the image, fitted when the quality is
    known (:meth:`OverfitCodec.code_latents`). ``x`` float32 (1, 3, H, W) in [0, 1]."""

    x: torch.Tensor


@dataclass
class FittedImage:
    """A fitted image before quantisation of its networks.

    Attributes:
      x: float32 (1, 3, H, W), the image.
      quality: the quality it was fitted for.
      latents: float32 (1, 1, h_l, w_l) per level.
      arm, synthesis: the per-image networks.
      stats: iterations, seconds, and the last training-face bpp and PSNR.
    """

    x: torch.Tensor
    quality: float
    latents: list[torch.Tensor]
    arm: ContextMLP
    synthesis: PyramidSynthesis
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class DecodedImage:
    """Everything a decoder derives from the two segments (the encoder builds the same).

    Attributes:
      levels: int64 (h_l, w_l) per level.
      step_bits: [k_arm, k_mlp, k_refine].
      integers: the integer parameter tensors in stream order (ARM, 1x1 network, refinement).
    """

    levels: list[np.ndarray]
    step_bits: list[int]
    integers: list[np.ndarray]


class OverfitCodec(VariableRateCodec):
    """Registered architecture ``overfit`` (see the module docstring).

    Args:
      levels: pyramid levels (level l at 1 / 2**l of the image size).
      arm_hidden: hidden width of the context model.
      synth_hidden: hidden width of the 1x1 synthesis network.
      refine_hidden: hidden channels of the 3x3 refinement.
      preset: the default iteration budget, a key of :data:`PRESETS`.
      lr: Adam's initial learning rate of the networks.
      latent_lr_scale: the latents' learning rate relative to ``lr``.
      noise_fraction: fraction of the iterations in the noise phase (the rest rounds
        straight-through).
    """

    architecture = "overfit"
    #: Fitted per image at encode time: nothing to learn from a data set (``neurocodec train``
    #: does not offer it).
    learns_per_image = True

    def __init__(self, levels: int = 7, arm_hidden: int = 16, synth_hidden: int = 16, refine_hidden: int = 4,
                 preset: str = "fast", lr: float = 0.03, noise_fraction: float = 0.75, latent_lr_scale: float = 4.0):
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
        self._config = dict(levels=levels, arm_hidden=arm_hidden, synth_hidden=synth_hidden,
                            refine_hidden=refine_hidden, preset=preset, lr=lr, noise_fraction=noise_fraction,
                            latent_lr_scale=latent_lr_scale)
        self.levels, self.arm_hidden, self.synth_hidden, self.refine_hidden = levels, arm_hidden, synth_hidden, refine_hidden
        self.preset, self.lr, self.noise_fraction, self.latent_lr_scale = preset, lr, noise_fraction, latent_lr_scale
        self.latent_channels = levels
        self.pad_multiple = 1
        self.entropy_model = PyramidPrior()
        self._schedules: dict[tuple[int, int], Any] = {}

    # -- shapes -----------------------------------------------------------------------
    @property
    def segments_per_tile(self) -> int:
        return 2

    def parameter_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the per-image network tensors in stream order (ARM, 1x1 net, refinement)."""
        if "_parameter_shapes" not in self.__dict__:
            arm, syn = self._new_networks(0)
            self.__dict__["_parameter_shapes"] = [tuple(t.shape) for t in
                                                  arm.tensors() + syn.mlp_tensors() + syn.refine_tensors()]
        return list(self.__dict__["_parameter_shapes"])

    def _new_networks(self, seed: int) -> tuple[ContextMLP, PyramidSynthesis]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return ContextMLP(self.arm_hidden), PyramidSynthesis(self.levels, self.synth_hidden, self.refine_hidden)

    def schedule(self, height: int, width: int):
        """The wavefront schedule of an image size (cached)."""
        key = (height, width)
        if key not in self._schedules:
            if len(self._schedules) > 8:
                self._schedules.clear()
            self._schedules[key] = make_schedule(level_shapes(height, width, self.levels))
        return self._schedules[key]

    def macs_per_pixel(self, height: int = 512, width: int = 768) -> float:
        """Decoder multiplications per pixel: ARM (per latent), upsampling, synthesis."""
        shapes = level_shapes(height, width, self.levels)
        latents = sum(h * w for h, w in shapes)
        h = self.arm_hidden
        arm = 12 * h + h * h + 2 * h
        # bilinear 2x: 4 multiplications per output value; the stack reaching level l has
        # levels - 1 - l channels
        upsample = sum(4 * (self.levels - 1 - l) * sh * sw for l, (sh, sw) in enumerate(shapes[:-1]))
        _, syn = self._new_networks(0)
        return (arm * latents + upsample) / (height * width) + syn.macs_per_pixel()

    # -- the zoo's hooks ----------------------------------------------------------------
    @torch.no_grad()
    def update_tables(self) -> None:
        self.entropy_model.update_tables()

    def forward(self, x, quality, rate_proxy="noise", generator=None):  # pragma: no cover - by design
        raise NotImplementedError("the overfitted codec has no shared training face: it is fitted per image "
                                  "(OverfitCodec.fit)")

    # -- encoder ------------------------------------------------------------------------
    def analysis(self, x: torch.Tensor) -> PendingImage:
        """The image itself: fitting needs the quality, so it happens in :meth:`code_latents`."""
        return PendingImage(x)

    def refine_latents(self, x: torch.Tensor, quality: float, steps: int, lr: float | None = None,
                       seed: int = 0, progress: FitProgress | None = None) -> FittedImage:
        """Fit ``x`` for ``steps`` iterations, 0 for the preset's (what ``Codec.compress(effort=steps)``
        runs; ``progress`` as in :meth:`fit`)."""
        return self.fit(x, quality, steps or None, lr=lr, seed=seed, progress=progress)

    def fit(self, x: torch.Tensor, quality: float, iterations: int | None = None, lr: float | None = None,
            seed: int = 0, precision: str = "fp32", progress: FitProgress | None = None,
            latent_lr_scale: float | None = None) -> FittedImage:
        """Optimise the latent pyramid and the networks of one image.

        Args:
          x: float32 (1, 3, H, W) in [0, 1].
          quality: in [1, 8]; sets lambda.
          iterations: Adam steps (default: the preset's).
          lr: initial learning rate (default: the config's); cosine decay to zero.
          seed: initialisation and noise (deterministic for a seed and thread count).
          precision: ``"fp32"`` or ``"bf16"`` (bf16 autocast of the upsampling and synthesis;
            the rate is always float32).
          progress: called after every iteration with (iterations done, iterations, bpp, PSNR):
            the training-face estimates of that iteration (noisy latents in the noise phase);
            an exception it raises (e.g. KeyboardInterrupt) ends the fit.
          latent_lr_scale: the latents' learning rate relative to the networks' (default: the
            config's).
        Returns:
          the :class:`FittedImage`.
        """
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        iterations = PRESETS[self.preset] if iterations is None else int(iterations)
        lr = self.lr if lr is None else lr
        start = time.perf_counter()
        with torch.inference_mode(False), torch.enable_grad():
            x = x.detach().clone().float()
            height, width = x.shape[-2:]
            pixels = height * width
            lam = float(lambda_for_quality(torch.tensor([float(quality)])))
            arm, synthesis = self._new_networks(seed)
            latents = [torch.zeros(1, 1, h, w, requires_grad=True) for h, w in level_shapes(height, width, self.levels)]
            scale = self.latent_lr_scale if latent_lr_scale is None else latent_lr_scale
            base_lrs = [lr * scale, lr, lr]
            optimizer = torch.optim.Adam([{"params": latents}, {"params": list(arm.parameters())},
                                          {"params": list(synthesis.parameters())}], lr=lr)
            generator = torch.Generator().manual_seed(seed)
            noisy_until = int(round(self.noise_fraction * iterations))
            bpp = psnr = float("nan")
            for it in range(iterations):
                decay = 0.5 * (1.0 + math.cos(math.pi * it / max(iterations, 1)))
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * decay
                if it < noisy_until:
                    hats = [y + torch.rand(y.shape, generator=generator) - 0.5 for y in latents]
                else:
                    hats = [round_ste(y) for y in latents]
                bits, x_hat = self._training_face(hats, arm, synthesis, precision)
                mse = torch.mean((x_hat - x) ** 2)
                loss = bits / pixels + lam * 255.0**2 * mse
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if progress is not None or it == iterations - 1:
                    bpp, psnr = float(bits.detach()) / pixels, -10 * math.log10(max(float(mse.detach()), 1e-12))
                    if progress is not None:
                        progress(it + 1, iterations, bpp, psnr)
            latents = [y.detach() for y in latents]
            for p in [*arm.parameters(), *synthesis.parameters()]:
                p.requires_grad_(False)
        stats = dict(iterations=iterations, seconds=time.perf_counter() - start, bpp=bpp, psnr=psnr)
        return FittedImage(x, float(quality), latents, arm, synthesis, stats)

    @staticmethod
    def _training_face(hats: list[torch.Tensor], arm: ContextMLP, synthesis: PyramidSynthesis,
                       precision: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(total bits, x_hat (1, 3, H, W)) of quantised or noisy latents."""
        values, mean, index = arm(hats)
        bits = laplace_bits(values - mean, inverse_scale_of_index(index)).sum()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            x_hat = synthesis(upsample_pyramid(hats))
        return bits, x_hat.float()

    @torch.no_grad()
    def quantise_fit(self, fit: FittedImage) -> DecodedImage:
        """Round the latents and choose each module's step by rate-distortion (exact rate of
        the latents under the integer ARM for the ARM's step; parameter bits plus
        ``lambda * 255^2 * SSE`` for the synthesis modules)."""
        tables = self.entropy_model.require_tables()
        levels = [np.clip(np.round(y[0, 0].double().numpy()), -LATENT_LIMIT, LATENT_LIMIT).astype(np.int64)
                  for y in fit.latents]
        height, width = fit.x.shape[-2:]
        schedule = self.schedule(height, width)

        def param_bits(integers: list[np.ndarray]) -> float:
            total = 0.0
            for t in integers:
                flat = t.ravel().astype(np.int32)
                total += tables.ideal_bits(flat, np.full(flat.shape, best_scale(flat, tables), dtype=np.int32))
            return total

        best = None
        for k in STEP_CANDIDATES:
            ints = quantise_arm(fit.arm.tensors(), k)
            symbols, table = pyramid_symbols(levels, schedule, ints, k)
            cost = tables.ideal_bits(symbols.astype(np.int32), table.astype(np.int32)) + param_bits(ints)
            if best is None or cost < best[0]:
                best = (cost, k, ints)
        _, k_arm, arm_ints = best
        lam = float(lambda_for_quality(torch.tensor([fit.quality])))
        z = upsample_pyramid([torch.from_numpy(level).float()[None, None] for level in levels])
        mlp = [t.detach() for t in fit.synthesis.mlp_tensors()]
        ref = [t.detach() for t in fit.synthesis.refine_tensors()]

        def rd(mlp_ints, k_mlp, ref_ints, k_ref, which) -> float:
            x_hat = self._render_from(z, mlp_ints, k_mlp, ref_ints, k_ref)
            sse = float(torch.sum((x_hat.clamp(0, 1) - fit.x) ** 2)) / 3
            return lam * 255.0**2 * sse + param_bits(which)

        def ints_of(tensors, k):
            return [np.clip(np.round(t.double().numpy() * 2.0**k), -PARAMETER_LIMIT, PARAMETER_LIMIT - 1)
                    .astype(np.int64) for t in tensors]

        # the 1x1 network with the refinement at a fine step, then the refinement
        fine = max(STEP_CANDIDATES)
        ref_fine = ints_of(ref, fine)
        k_mlp = min(STEP_CANDIDATES, key=lambda k: rd(ints_of(mlp, k), k, ref_fine, fine, ints_of(mlp, k)))
        mlp_ints = ints_of(mlp, k_mlp)
        k_ref = min(STEP_CANDIDATES, key=lambda k: rd(mlp_ints, k_mlp, ints_of(ref, k), k, ints_of(ref, k)))
        return DecodedImage(levels, [k_arm, k_mlp, k_ref], arm_ints + mlp_ints + ints_of(ref, k_ref))

    @torch.no_grad()
    def code_latents(self, y: PendingImage | FittedImage | DecodedImage, quality: float,
                     coder: str = "cpu") -> tuple[list[bytes], DecodedImage]:
        """Fit (if needed), quantise and code an image -> (two segments, what the decoder derives).

        Raises:
          UnsupportedCoderError: a coder other than ``"cpu"``.
        """
        if coder != "cpu":
            raise UnsupportedCoderError(f"the overfitted codec writes the 'cpu' coder only, got {coder!r}")
        if isinstance(y, PendingImage):
            y = self.fit(y.x, quality)
        decoded = y if isinstance(y, DecodedImage) else self.quantise_fit(y)
        tables = self.entropy_model.require_tables()
        height, width = decoded.levels[0].shape
        arm_ints = decoded.integers[:6]
        segments = [encode_parameters(decoded.step_bits, decoded.integers, tables),
                    encode_pyramid(decoded.levels, self.schedule(height, width), arm_ints, decoded.step_bits[0],
                                   tables)]
        return segments, decoded

    # -- decoder ------------------------------------------------------------------------
    def _render_from(self, z: torch.Tensor, mlp_ints: list[np.ndarray], k_mlp: int, ref_ints: list[np.ndarray],
                     k_ref: int) -> torch.Tensor:
        """Synthesis from the stacked pyramid z (1, L, H, W) and integer parameters (value =
        integer x 2**-k, exact in float32 for integers below 2**24)."""
        mlp = [torch.from_numpy(i.astype(np.float64) * 2.0**-k_mlp).float() for i in mlp_ints]
        refine = [torch.from_numpy(i.astype(np.float64) * 2.0**-k_ref).float() for i in ref_ints]
        return synthesise(z, mlp, refine)

    @torch.no_grad()
    def reconstruct(self, y_hat: DecodedImage, quality: float = 0.0) -> torch.Tensor:
        """What the decoder computes from the decoded parameters: x_hat float32 (1, 3, H, W)."""
        z = upsample_pyramid([torch.from_numpy(level).float()[None, None] for level in y_hat.levels])
        n_arm, n_mlp = 6, 6
        return self._render_from(z, y_hat.integers[n_arm:n_arm + n_mlp], y_hat.step_bits[1],
                                 y_hat.integers[n_arm + n_mlp:], y_hat.step_bits[2])

    @torch.no_grad()
    def compress(self, x: torch.Tensor, quality: float, coder: str = "cpu") -> tuple[list[bytes], torch.Tensor]:
        """x float32 (1, 3, H, W) -> (segments, x_hat): fit with the preset, code, reconstruct."""
        segments, decoded = self.code_latents(PendingImage(x), quality, coder)
        return segments, self.reconstruct(decoded)

    def decode_latents(self, segments: list[bytes], shape: tuple[int, int], quality: float = 0.0,
                       coder: str = "cpu") -> DecodedImage:
        """Segments of one tile -> :class:`DecodedImage` (the per-image networks and the latent
        pyramid; ``quality`` plays no part). Raises FormatError for bad data."""
        if coder != "cpu":
            raise FormatError(f"overfit streams use the cpu-range coder, not {coder!r}")
        if len(segments) != 2:
            raise FormatError(f"an overfit tile has 2 segments, got {len(segments)}")
        tables = self.entropy_model.require_tables()
        steps, integers = decode_parameters(segments[0], self.parameter_shapes(), 3, tables)
        arm_ints = integers[:6]
        if any(a.size and (a.min() < -WEIGHT_LIMIT or a.max() >= WEIGHT_LIMIT) for a in arm_ints):
            raise FormatError("corrupt parameter segment: a context-model weight out of range")
        levels = decode_pyramid(segments[1], self.schedule(*shape), arm_ints, steps[0], tables)
        return DecodedImage(levels, steps, integers)

    @torch.no_grad()
    def decompress(self, segments: list[bytes], shape: tuple[int, int], quality: float = 0.0,
                   coder: str = "cpu") -> torch.Tensor:
        """segments + (H, W) -> x_hat float32 (1, 3, H, W) (the quality plays no part: the
        stream carries the image's own networks)."""
        return self.reconstruct(self.decode_latents(segments, shape, quality, coder))
