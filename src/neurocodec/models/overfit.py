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
from the quality, :func:`~neurocodec.models.base.lambda_for_quality`), a soft-rounding phase
(C3: soft rounding with annealed temperature around uniform noise) then a straight-through
rounding phase (:data:`FIT_OPTIONS`). Presets by iteration budget: :data:`PRESETS`.

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


def soft_round(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """Soft rounding (Agustsson and Theis, 2020): ``floor(x) + 1/2 + tanh(d / t) / (2 tanh(1 / (2 t)))``
    with ``d = x - floor(x) - 1/2``; the identity as ``t`` grows, rounding as ``t -> 0``;
    differentiable, continuous at the integers' midpoints."""
    floor = torch.floor(x)
    return floor + 0.5 + 0.5 * torch.tanh((x - floor - 0.5) / temperature) / math.tanh(0.5 / temperature)


@dataclass(frozen=True)
class FitOptions:
    """The encoder's optimisation schedule (encoder only: streams and decoders do not depend
    on it). The budget is split into an optional warm-up, a noise phase and a rounding phase.
    The field defaults are the first schedule (plain uniform noise, one learning rate for
    the networks); :data:`FIT_OPTIONS` is the one the encoder uses.

    Attributes:
      quantiser: the noise phase's relaxation of rounding: ``"noise"`` (``y + n``) or
        ``"softround"`` (C3: ``s_t(s_t(y) + n)``, ``s_t`` :func:`soft_round` at temperature
        ``t``, annealed linearly over the phase from ``temperature[0]`` to ``temperature[1]``).
      temperature: (start, end) of the soft-rounding temperature.
      noise: ``"uniform"`` (``n`` uniform in ``[-a/2, a/2]``) or ``"gaussian"`` (std ``a``),
        ``a`` annealed linearly from ``noise_scale[0]`` to ``noise_scale[1]``.
      noise_scale: (start, end) of ``a``.
      noise_fraction: the noise phase's share of the iterations after the warm-up (None: the
        model config's); the rest rounds straight-through.
      ste_temperature: the rounding phase's backward: None for the identity, else the
        derivative of :func:`soft_round` at that temperature.
      latent_lr_scale, arm_lr_scale, synthesis_lr_scale: each group's learning rate relative
        to ``lr`` (latents None: the model config's).
      warmup_candidates, warmup_iterations: with more than one candidate, each starts from
        its own seed and runs ``warmup_iterations`` noisy iterations at the full learning
        rate; the one with the lowest loss (mean of its last quarter) goes on with the rest of
        the budget (the warm-up takes at most half of it).
    """

    quantiser: str = "noise"
    temperature: tuple[float, float] = (0.3, 0.1)
    noise: str = "uniform"
    noise_scale: tuple[float, float] = (1.0, 1.0)
    noise_fraction: float | None = None
    ste_temperature: float | None = None
    latent_lr_scale: float | None = None
    arm_lr_scale: float = 1.0
    synthesis_lr_scale: float = 1.0
    warmup_candidates: int = 1
    warmup_iterations: int = 0

    def __post_init__(self):
        if self.quantiser not in ("noise", "softround"):
            raise ValueError(f"quantiser must be 'noise' or 'softround', got {self.quantiser!r}")
        if self.noise not in ("uniform", "gaussian"):
            raise ValueError(f"noise must be 'uniform' or 'gaussian', got {self.noise!r}")


#: The encoder's schedule: soft rounding (temperature 0.5 -> 0.1, uniform noise) for 90 % of the
#: iterations, the context model at twice the networks' learning rate. Chosen on two fixed
#: 256x256 crops (kodim23, kodim02) at 300 iterations, qualities 2, 4, 6 (docs/overfitted.md:
#: -36 % BD-rate, -22 % RD loss against the FitOptions() defaults, the schedule before).
FIT_OPTIONS = FitOptions(quantiser="softround", temperature=(0.5, 0.1), noise="uniform", noise_scale=(1.0, 1.0),
                         noise_fraction=0.9, arm_lr_scale=2.0)


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
            latent_lr_scale: float | None = None, options: FitOptions | None = None) -> FittedImage:
        """Optimise the latent pyramid and the networks of one image.

        Args:
          x: float32 (1, 3, H, W) in [0, 1].
          quality: in [1, 8]; sets lambda.
          iterations: Adam steps in all, warm-up included (default: the preset's).
          lr: initial learning rate of the networks (default: the config's); cosine decay to zero.
          seed: initialisation and noise (deterministic for a seed and thread count).
          precision: ``"fp32"`` or ``"bf16"`` (bf16 autocast of the upsampling and synthesis;
            the rate is always float32).
          progress: called after every iteration with (iterations done, iterations, bpp, PSNR):
            the training-face estimates of that iteration (noisy latents in the noise phase);
            an exception it raises (e.g. KeyboardInterrupt) ends the fit.
          latent_lr_scale: the latents' learning rate relative to the networks' (default: the
            options', else the config's).
          options: the encoder's schedule (:class:`FitOptions`; default :data:`FIT_OPTIONS`).
        Returns:
          the :class:`FittedImage`.
        """
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        iterations = PRESETS[self.preset] if iterations is None else int(iterations)
        lr = self.lr if lr is None else lr
        opt = FIT_OPTIONS if options is None else options
        noise_fraction = self.noise_fraction if opt.noise_fraction is None else opt.noise_fraction
        scale = latent_lr_scale if latent_lr_scale is not None else (
            self.latent_lr_scale if opt.latent_lr_scale is None else opt.latent_lr_scale)
        base_lrs = [lr * scale, lr * opt.arm_lr_scale, lr * opt.synthesis_lr_scale]
        candidates = max(1, opt.warmup_candidates)
        warm = opt.warmup_iterations if candidates > 1 else 0
        warm = min(warm, iterations // (2 * candidates))  # the warm-up takes at most half the budget
        main = iterations - candidates * warm
        start = time.perf_counter()
        with torch.inference_mode(False), torch.enable_grad():
            x = x.detach().clone().float()
            height, width = x.shape[-2:]
            pixels = height * width
            lam = float(lambda_for_quality(torch.tensor([float(quality)])))
            shapes = level_shapes(height, width, self.levels)
            noisy_until = int(round(noise_fraction * main))
            done = 0
            last = (float("nan"), float("nan"))

            def new_state(candidate: int):
                arm, synthesis = self._new_networks(seed + 7919 * candidate)
                latents = [torch.zeros(1, 1, h, w, requires_grad=True) for h, w in shapes]
                optimizer = torch.optim.Adam([{"params": latents}, {"params": list(arm.parameters())},
                                              {"params": list(synthesis.parameters())}], lr=lr)
                return latents, arm, synthesis, optimizer, torch.Generator().manual_seed(seed + 7919 * candidate)

            def step(state, decay: float, phase: float | None) -> float:
                """One Adam step; ``phase`` in [0, 1) in the noise phase, None when rounding."""
                nonlocal done, last
                latents, arm, synthesis, optimizer, generator = state
                for group, base in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base * decay
                hats = [self._quantise_training(y, opt, phase, generator) for y in latents]
                bits, x_hat = self._training_face(hats, arm, synthesis, precision)
                mse = torch.mean((x_hat - x) ** 2)
                loss = bits / pixels + lam * 255.0**2 * mse
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                done += 1
                if progress is not None or done == iterations:
                    last = (float(bits.detach()) / pixels, -10 * math.log10(max(float(mse.detach()), 1e-12)))
                    if progress is not None:
                        progress(done, iterations, *last)
                return float(loss.detach())

            if candidates > 1 and warm > 0:  # warm-up: a short noisy fit per seed, the best goes on
                best = None
                for c in range(candidates):
                    state = new_state(c)
                    losses = [step(state, 1.0, 0.0) for _ in range(warm)]
                    score = sum(losses[-max(1, warm // 4):]) / max(1, warm // 4)
                    if best is None or score < best[0]:
                        best = (score, state)
                state = best[1]
            else:
                state = new_state(0)
            for it in range(main):
                decay = 0.5 * (1.0 + math.cos(math.pi * it / max(main, 1)))
                step(state, decay, it / max(noisy_until, 1) if it < noisy_until else None)
            latents, arm, synthesis = [y.detach() for y in state[0]], state[1], state[2]
            for p in [*arm.parameters(), *synthesis.parameters()]:
                p.requires_grad_(False)
        stats = dict(iterations=iterations, seconds=time.perf_counter() - start, bpp=last[0], psnr=last[1])
        return FittedImage(x, float(quality), latents, arm, synthesis, stats)

    @staticmethod
    def _quantise_training(y: torch.Tensor, opt: FitOptions, phase: float | None,
                           generator: torch.Generator) -> torch.Tensor:
        """The latents as the training face sees them: ``phase`` (in [0, 1)) in the noise
        phase, None in the rounding phase (see :class:`FitOptions`)."""
        if phase is None:
            if opt.ste_temperature is None:
                return round_ste(y)
            soft = soft_round(y, opt.ste_temperature)
            return soft + (torch.round(y) - soft).detach()
        a, b = opt.noise_scale
        amplitude = a + (b - a) * phase
        if opt.noise == "gaussian":
            noise = torch.randn(y.shape, generator=generator) * amplitude
        else:
            noise = (torch.rand(y.shape, generator=generator) - 0.5) * amplitude
        if opt.quantiser == "noise":
            return y + noise
        t0, t1 = opt.temperature
        t = t0 + (t1 - t0) * phase
        return soft_round(soft_round(y, t) + noise, t)

    @staticmethod
    def _training_face(hats: list[torch.Tensor], arm: ContextMLP, synthesis: PyramidSynthesis,
                       precision: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(total bits, x_hat (1, 3, H, W)) of quantised or noisy latents."""
        values, mean, index = arm(hats)
        bits = laplace_bits(values - mean, inverse_scale_of_index(index)).sum()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            x_hat = synthesis(upsample_pyramid(hats), channels_last_refine=True)
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
                     coder: str = "cpu", rd_rounding: bool = True) -> tuple[list[bytes], DecodedImage]:
        """Fit (if needed), quantise and code an image -> (two segments, what the decoder derives).
        ``rd_rounding`` is the contract's and has no effect here: the fit chooses every symbol.

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
