"""Rate-distortion training with exact resume.

A run lives in a directory: ``checkpoint.pt`` (model, optimiser, step and RNG states,
written atomically every ``checkpoint_every`` steps), ``log.jsonl`` (one line per
``log_every`` steps) and ``config.json``. Running the same command again resumes from
the checkpoint and continues the log exactly where the checkpoint was taken.

Under ``torchrun`` the same loop trains with DistributedDataParallel; how the batch, the
random streams and the files are shared between processes is described in
:mod:`neurocodec.train.distributed`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..entropy import RATE_PROXIES
from ..models import build_model, lambda_for_quality
from . import distributed
from .data import CropDataset
from .losses import MS_SSIM_LAMBDAS, ms_ssim


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as config.json)."""

    data: str
    architecture: str = "block-hyperprior"
    distortion: str = "mse"       # "mse" or "ms-ssim"
    rate_proxy: str = "noise"     # training-face rate of y: "noise" or "round" (see entropy.residual_bits)
    model_config: dict = field(default_factory=dict)
    steps: int = 10000
    batch: int = 8
    crop: int = 128
    scales: tuple = (0.5, 0.75)
    lr: float = 5e-4
    lr_drop_at: float = 0.85      # fraction of ``steps`` after which lr is divided by 10
    clip: float = 1.0
    min_quality: float = 1.0
    max_quality: float = 8.0
    integer_qualities: float = 0.0  # share of crops whose quality is rounded to an integer (the shipped rows)
    seed: int = 0
    threads: int = 1
    checkpoint_every: int = 200
    snapshot_every: int = 0       # keep the model weights every N steps (for RD-vs-CPU-time curves)
    log_every: int = 20
    init_from: str = ""           # optional weights (safetensors) to start from
    init_shrink: bool = False     # init_from is a wider model: keep its most important hidden channels (train.shrink)
    entropy_warmup: int = 0       # first steps train only the entropy model (transforms frozen)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Constant ``lr``, divided by 10 after ``lr_drop_at * steps``."""
    return cfg.lr * (0.1 if step >= cfg.lr_drop_at * cfg.steps else 1.0)


def draw_qualities(cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Qualities of one global batch: float64 (batch,), uniform in ``[min_quality, max_quality]``;
    a share ``integer_qualities`` of them rounded to the nearest integer in that range.

    The integer qualities are the ones users and benchmarks pick, and a continuous draw
    almost never lands on one; rounding only some keeps every quality in between trained.
    With a share of 0 no extra random numbers are drawn, so earlier runs resume exactly.
    """
    quality = rng.uniform(cfg.min_quality, cfg.max_quality, cfg.batch)
    if cfg.integer_qualities > 0:
        rounded = np.clip(np.round(quality), np.ceil(cfg.min_quality), np.floor(cfg.max_quality))
        quality = np.where(rng.random(cfg.batch) < cfg.integer_qualities, rounded, quality)
    return quality


def rd_loss(model, x: torch.Tensor, quality: torch.Tensor, distortion: str = "mse", rate_proxy: str = "noise"
            ) -> dict[str, torch.Tensor]:
    """Per-batch rate-distortion loss.

    Args:
      x: float32 (B, 3, H, W) in [0, 1]; quality: float32 (B,).
      distortion: ``"mse"`` (loss term lambda * 255^2 * MSE, CompressAI's scale) or
        ``"ms-ssim"`` (lambda_ms * (1 - MS-SSIM), with :data:`MS_SSIM_LAMBDAS`).
      rate_proxy: the entropy model's rate term, ``"noise"`` or ``"round"``.
    Returns:
      dict with ``loss`` (scalar: mean over samples of bpp + distortion term), ``bpp`` and
      ``mse`` (float32 (B,) each; bpp is the differentiable estimate).
    """
    out = model(x, quality, rate_proxy)
    pixels = x.shape[2] * x.shape[3]
    bits = out.y_bits.sum(dim=(1, 2, 3)) + out.z_bits.sum(dim=(1, 2, 3))
    bpp = bits / pixels
    mse = ((out.x_hat - x) ** 2).mean(dim=(1, 2, 3))
    if distortion == "mse":
        term = lambda_for_quality(quality) * 255.0**2 * mse
    elif distortion == "ms-ssim":
        term = lambda_for_quality(quality, MS_SSIM_LAMBDAS) * (1.0 - ms_ssim(out.x_hat, x))
    else:
        raise ValueError(f"distortion must be 'mse' or 'ms-ssim', got {distortion!r}")
    loss = (bpp + term).mean()
    return {"loss": loss, "bpp": bpp, "mse": mse}


def _torch_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_torch_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def train(cfg: TrainConfig, run_dir: str | Path, progress: bool = True, stop_after: int | None = None,
          on_step=None, device: str = "cpu") -> Path:
    """Train (or resume) a run in ``run_dir``. Returns the checkpoint path.

    ``stop_after`` ends this invocation after that many steps (the run can be resumed).
    ``on_step(step, model)``, if given, is called on every process after each optimiser
    step with the unwrapped model (for checks and custom evaluation).
    ``device``: ``"cpu"`` or ``"cuda"``. Started by torchrun with several processes, this
    trains with DistributedDataParallel (gloo on CPU, nccl on GPU); ``cfg.batch`` is then
    the global batch, split evenly over the processes (see :mod:`neurocodec.train.distributed`).
    """
    ctx = distributed.setup(device)
    try:
        checkpoint = _train(cfg, Path(run_dir), progress, stop_after, on_step, ctx)
    except BaseException:
        ctx.close(clean=False)
        raise
    ctx.close()
    return checkpoint


def _train(cfg: TrainConfig, run: Path, progress: bool, stop_after: int | None, on_step,
           ctx: distributed.Context) -> Path:
    main = ctx.is_main
    if cfg.rate_proxy not in RATE_PROXIES:
        raise ValueError(f"rate_proxy must be one of {RATE_PROXIES}, got {cfg.rate_proxy!r}")
    if not 0.0 <= cfg.integer_qualities <= 1.0:
        raise ValueError(f"integer_qualities must be a share in [0, 1], got {cfg.integer_qualities!r}")
    ckpt_path = run / "checkpoint.pt"
    log_path = run / "log.jsonl"
    if main:
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=list))
    torch.set_num_threads(cfg.threads)
    part = ctx.part(cfg.batch)

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.architecture, **cfg.model_config).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    step = 0
    elapsed = 0.0
    # rank 0 reads the checkpoint and sends it to the others (only it needs the run folder)
    state = ctx.broadcast(torch.load(ckpt_path, map_location="cpu", weights_only=False)
                          if main and ckpt_path.exists() else None)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        elapsed = state.get("elapsed", 0.0)
        rng.bit_generator.state = state["rng"]["numpy"]
        saved = state["rng"].get("torch_ranks") or [{"cpu": state["rng"]["torch"]}]
        if len(saved) == ctx.world_size:
            _restore_torch_state(saved[ctx.rank], ctx.device)
        else:  # another number of processes: fresh, distinct noise streams (documented)
            torch.manual_seed(distributed.derived_seed(cfg.seed, step, ctx.rank))
        if main:
            _truncate_log(log_path, step)
    else:
        if cfg.init_from and main:  # DDP gives the other processes rank 0's weights
            from ..zoo.weights import load_state_into

            source = cfg.init_from
            if cfg.init_shrink:
                from safetensors.torch import load_file

                from .shrink import shrink_state

                source = shrink_state(load_file(cfg.init_from), model)
            load_state_into(model, source)
        if ctx.distributed:  # each process its own quantisation noise
            torch.manual_seed(distributed.derived_seed(cfg.seed, 0, ctx.rank))

    data = CropDataset(cfg.data, cfg.crop, tuple(cfg.scales))
    start_step = step
    model.train()
    net = model
    end = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    bar = None
    if progress and main:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    window: list[tuple[float, float, float]] = []
    tic = time.perf_counter()
    while step < end:
        # every process draws the whole global batch (same stream) and keeps its part
        crops = data.batch(rng, cfg.batch, part)
        batch = torch.from_numpy(crops).permute(0, 3, 1, 2).float().to(ctx.device) / 255.0
        quality = torch.from_numpy(draw_qualities(cfg, rng)[part]).float()
        quality = quality.to(ctx.device)
        lr = learning_rate(cfg, step)
        if step in (start_step, cfg.entropy_warmup):
            _freeze_transforms(model, step < cfg.entropy_warmup)
            net = ctx.wrap(model)  # DDP registers the trainable parameters when it is built
        for group in optimizer.param_groups:
            group["lr"] = lr
        result = rd_loss(net, batch, quality, cfg.distortion, cfg.rate_proxy)
        optimizer.zero_grad(set_to_none=True)
        result["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        step += 1
        window.append((result["loss"].item(), result["bpp"].mean().item(),
                       float(10 * torch.log10(1.0 / result["mse"].detach().clamp_min(1e-10)).mean())))
        if on_step is not None:
            on_step(step, model)
        if bar is not None:
            bar.update(1)
        if step % cfg.log_every == 0 or step == end:
            now = time.perf_counter()
            elapsed += now - tic
            tic = now
            # equal parts: the mean of the processes' means is the global batch's mean
            loss, bpp, psnr = ctx.mean([float(np.mean(v)) for v in zip(*window)])
            window.clear()
            if main:
                row = {"step": step, "loss": round(loss, 5), "bpp": round(bpp, 5), "psnr": round(psnr, 4),
                       "lr": lr, "seconds": round(elapsed, 2)}
                if ctx.distributed:  # wall seconds x processes = CPU (or GPU) time
                    row["processes"] = ctx.world_size
                with open(log_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.3f}", bpp=f"{bpp:.3f}", psnr=f"{psnr:.2f}")
        if step % cfg.checkpoint_every == 0 or step == end:
            elapsed += time.perf_counter() - tic
            tic = time.perf_counter()
            torch_states = ctx.gather(_torch_state(ctx.device))
            if main:
                _save_checkpoint(ckpt_path, model, optimizer, step, elapsed, rng, torch_states)
        if cfg.snapshot_every and step % cfg.snapshot_every == 0 and main:
            snapshots = run / "snapshots"
            snapshots.mkdir(exist_ok=True)
            torch.save({"model": model.state_dict(), "step": step, "elapsed": elapsed}, snapshots / f"step{step:07d}.pt")
    if bar is not None:
        bar.close()
    return ckpt_path


def _freeze_transforms(model, frozen: bool) -> None:
    """During the entropy warm-up only the entropy model learns.

    An untrained prior makes the rate term huge, and the quickest way for the transforms
    to lower it is to shrink the latents, destroying the linear initialisation; letting the
    prior catch up first avoids that.
    """
    entropy_params = {id(p) for p in model.entropy_model.parameters()}
    for p in model.parameters():
        if id(p) not in entropy_params:
            p.requires_grad_(not frozen)


def _save_checkpoint(path: Path, model, optimizer, step: int, elapsed: float, rng, torch_states: list[dict]) -> None:
    """Write the checkpoint atomically. ``torch_states``: each process's torch generator
    state, in rank order (one entry when training in one process)."""
    rng_state = {"numpy": rng.bit_generator.state, "torch": torch_states[0]["cpu"]}
    if len(torch_states) > 1 or "cuda" in torch_states[0]:
        rng_state["torch_ranks"] = torch_states
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "elapsed": elapsed, "rng": rng_state, "world_size": len(torch_states)}, tmp)
    os.replace(tmp, path)


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint, so a resumed log continues exactly."""
    if not log_path.exists():
        return
    lines = [ln for ln in log_path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln)["step"] <= step]
    log_path.write_text("".join(ln + "\n" for ln in kept))
