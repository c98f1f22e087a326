"""Rate-distortion training with exact resume.

A run lives in a directory: ``checkpoint.pt`` (model, optimiser, step and RNG states,
written atomically every ``checkpoint_every`` steps), ``log.jsonl`` (one line per
``log_every`` steps) and ``config.json``. Running the same command again resumes from
the checkpoint and continues the log exactly where the checkpoint was taken.

:func:`train` reads as the steps of a run, each a function of this module:

1. :func:`build`: the model (with the transforms in the chosen precision), the optimiser
   and the random streams, as a :class:`Run`;
2. :func:`resume`: the checkpoint's state if the folder has one, else the initial weights;
3. batches drawn ahead in a background thread (:class:`~neurocodec.train.data.Prefetcher`);
4. :func:`step`: one optimiser step;
5. :func:`log`: a line of ``log.jsonl`` every ``log_every`` steps, with the share of the
   time the loop waited for data;
6. :func:`checkpoint` (and :func:`snapshot`): the run's state on disk.

Under ``torchrun`` the same loop trains with DistributedDataParallel; how the batch, the
random streams and the files are shared between processes is described in
:mod:`neurocodec.train.distributed`. The loop is device-agnostic: on CUDA the batches are
pinned and copied asynchronously and the transforms use ``channels_last``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..models import build_model, lambda_for_quality
from . import distributed, precision
from .config import TrainConfig
from .data import CropDataset, Prefetcher
from .losses import MS_SSIM_LAMBDAS, ms_ssim

__all__ = ["Batch", "Run", "TrainConfig", "build", "checkpoint", "draw_qualities", "learning_rate", "log",
           "rd_loss", "resume", "snapshot", "step", "train"]


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


def rd_loss(model, x: torch.Tensor, quality: torch.Tensor, distortion: str = "mse",
            rate_proxy: str = "noise") -> dict[str, torch.Tensor]:
    """Per-batch rate-distortion loss (float32 throughout, whatever the transforms computed in).

    Args:
      x: float32 (B, 3, H, W) in [0, 1]; quality: float32 (B,).
      distortion: ``"mse"`` (loss term lambda * 255^2 * MSE, CompressAI's scale) or
        ``"ms-ssim"`` (lambda_ms * (1 - MS-SSIM), with :data:`MS_SSIM_LAMBDAS`).
      rate_proxy: the training-face rate of the latents (``"noise"`` or ``"round"``, see
        :func:`neurocodec.entropy.residual_bits`).
    Returns:
      dict with ``loss`` (scalar: mean over samples of bpp + distortion term), ``bpp`` and
      ``mse`` (float32 (B,) each; bpp is the differentiable estimate).
    """
    out = model(x, quality, rate_proxy)
    bpp = out.bits().float() / (x.shape[2] * x.shape[3])
    x_hat = out.x_hat.float()
    mse = ((x_hat - x) ** 2).mean(dim=(1, 2, 3))
    on_cpu = quality.cpu()  # the lambda tables are CPU tensors
    if distortion == "mse":
        term = lambda_for_quality(on_cpu).to(x.device) * 255.0**2 * mse
    elif distortion == "ms-ssim":
        term = lambda_for_quality(on_cpu, MS_SSIM_LAMBDAS).to(x.device) * (1.0 - ms_ssim(x_hat, x))
    else:
        raise ValueError(f"distortion must be 'mse' or 'ms-ssim', got {distortion!r}")
    loss = (bpp + term).mean()
    return {"loss": loss, "bpp": bpp, "mse": mse}


@dataclass
class Batch:
    """One step's data for this process, drawn ahead of the step."""

    x: torch.Tensor               # float32 (b, 3, crop, crop) in [0, 1], on the CPU (pinned for CUDA)
    quality: torch.Tensor         # float32 (b,)
    rng_state: dict               # the numpy stream's state after this batch was drawn


@dataclass
class Run:
    """One process's state of a training run (what :func:`build` makes and the steps change)."""

    cfg: TrainConfig
    folder: Path
    ctx: distributed.Context
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator      # crops and qualities: one stream, read only by the prefetch thread once training runs
    autocast: torch.dtype | None  # the transforms' autocast dtype (None: float32)
    precision_note: str = ""
    step: int = 0
    elapsed: float = 0.0          # wall seconds the loop has run, over all invocations
    rng_state: dict = field(default_factory=dict)  # numpy state after the last batch trained on
    net: torch.nn.Module | None = None             # what the step calls: the model, or DDP around it

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def log_path(self) -> Path:
        return self.folder / "log.jsonl"


def train(cfg: TrainConfig, run_dir: str | Path, progress: bool = True, stop_after: int | None = None,
          on_step: Callable | None = None, device: str = "cpu", time_limit: float | None = None) -> Path:
    """Train (or resume) a run in ``run_dir``. Returns the checkpoint path.

    ``cfg`` is validated first (:class:`~neurocodec.train.config.TrainConfigError`, before
    anything is written). ``stop_after`` ends this invocation after that many steps and
    ``time_limit`` after the first step that ends that many wall seconds after the loop
    started; either way the checkpoint is written and the run can be resumed.
    ``on_step(step, model)``, if given, is called on every process after each optimiser
    step with the unwrapped model (for checks and custom evaluation).
    ``device``: ``"cpu"`` or ``"cuda"``. Started by torchrun with several processes, this
    trains with DistributedDataParallel (gloo on CPU, nccl on GPU); ``cfg.batch`` is then
    the global batch, split evenly over the processes (see :mod:`neurocodec.train.distributed`).
    """
    cfg.validate()
    ctx = distributed.setup(device)
    try:
        path = _train(cfg, Path(run_dir), progress, stop_after, on_step, ctx, time_limit)
    except BaseException:
        ctx.close(clean=False)
        raise
    ctx.close()
    return path


def _train(cfg: TrainConfig, folder: Path, progress: bool, stop_after: int | None, on_step,
           ctx: distributed.Context, time_limit: float | None) -> Path:
    run = build(cfg, folder, ctx)
    resume(run)
    data = CropDataset(cfg.data, cfg.crop, tuple(cfg.scales))
    first = run.step
    end = cfg.steps if stop_after is None else min(cfg.steps, run.step + stop_after)
    bar = _progress_bar(run) if progress and ctx.is_main else None
    window = _Window()
    start = tic = time.perf_counter()
    with Prefetcher(_batches(run, data)) as batches:
        while run.step < end:
            waited = time.perf_counter()
            batch = batches.get()
            waited = time.perf_counter() - waited
            if run.step in (first, cfg.entropy_warmup):
                _set_trainable(run.model, entropy_only=run.step < cfg.entropy_warmup, fresh_only=cfg.fresh_only)
                run.net = ctx.wrap(run.model)  # DDP registers the trainable parameters when it is built
            lr = learning_rate(cfg, run.step)
            window.add(step(run, batch, lr), waited)
            if on_step is not None:
                on_step(run.step, run.model)
            if bar is not None:
                bar.update(1)
            now = time.perf_counter()
            run.elapsed += now - tic
            tic = now
            if time_limit is not None and ctx.any(now - start >= time_limit):
                end = run.step
            if run.step % cfg.log_every == 0 or run.step == end:
                row = log(run, window, lr)
                if bar is not None:
                    bar.set_postfix(loss=f"{row['loss']:.3f}", bpp=f"{row['bpp']:.3f}", psnr=f"{row['psnr']:.2f}")
            if run.step % cfg.checkpoint_every == 0 or run.step == end:
                checkpoint(run)
            if cfg.snapshot_every and run.step % cfg.snapshot_every == 0:
                snapshot(run)  # the time spent writing files counts in the next step's interval
    if bar is not None:
        bar.close()
    return run.checkpoint_path


# -- build -------------------------------------------------------------------------------


def build(cfg: TrainConfig, folder: Path, ctx: distributed.Context) -> Run:
    """The model, optimiser and random streams of a fresh run; writes config.json (rank 0)."""
    if ctx.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=list))
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.architecture, **cfg.model_config).to(ctx.device)
    dtype, note = precision.resolve(cfg.precision, ctx.device)
    precision.autocast_transforms(model, ctx.device, dtype)
    if ctx.device.type == "cuda":
        transforms_channels_last(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    return Run(cfg=cfg, folder=folder, ctx=ctx, model=model, optimizer=optimizer, rng=rng, autocast=dtype,
               precision_note=note, rng_state=rng.bit_generator.state)


def transforms_channels_last(model: torch.nn.Module) -> None:
    """Store the transforms' 4-D weights channels-last (faster convolutions on GPUs); the
    entropy model keeps its layout (its fixed-point path is written for contiguous tensors)."""
    for child in model.children():
        if child is not model.entropy_model:
            child.to(memory_format=torch.channels_last)


# -- resume ------------------------------------------------------------------------------


def resume(run: Run) -> bool:
    """Continue from the run folder's checkpoint if it has one (True), else start from
    ``init_from``'s weights or the random initialisation (False).

    Rank 0 reads the checkpoint and sends it to the others (only it needs the run folder).
    A checkpoint written by another number of processes gives each process fresh, distinct
    noise streams (documented in :mod:`neurocodec.train.distributed`).
    """
    cfg, ctx = run.cfg, run.ctx
    path = run.checkpoint_path
    state = ctx.broadcast(torch.load(path, map_location="cpu", weights_only=False)
                          if ctx.is_main and path.exists() else None)
    if state is None:
        if cfg.init_from and ctx.is_main:  # DDP gives the other processes rank 0's weights
            _load_initial_weights(run)
        if ctx.distributed:  # each process its own quantisation noise
            torch.manual_seed(distributed.derived_seed(cfg.seed, 0, ctx.rank))
        return False
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.step = state["step"]
    run.elapsed = state.get("elapsed", 0.0)
    run.rng.bit_generator.state = state["rng"]["numpy"]
    run.rng_state = run.rng.bit_generator.state
    saved = state["rng"].get("torch_ranks") or [{"cpu": state["rng"]["torch"]}]
    if len(saved) == ctx.world_size:
        _restore_torch_state(saved[ctx.rank], ctx.device)
    else:
        torch.manual_seed(distributed.derived_seed(cfg.seed, run.step, ctx.rank))
    if ctx.is_main:
        _truncate_log(run.log_path, run.step)
    return True


def _load_initial_weights(run: Run) -> None:
    from ..zoo.weights import load_state_into

    source = run.cfg.init_from
    if run.cfg.init_shrink:
        from safetensors.torch import load_file

        from .shrink import shrink_state

        source = shrink_state(load_file(run.cfg.init_from), run.model)
    load_state_into(run.model, source)


# -- data --------------------------------------------------------------------------------


def _batches(run: Run, data: CropDataset) -> Callable[[], Batch]:
    """The prefetch thread's draw: the whole global batch from the one seeded stream (every
    process draws the same), this process's part of it kept."""
    cfg, rng = run.cfg, run.rng
    part = run.ctx.part(cfg.batch)
    pin = run.ctx.device.type == "cuda"

    def draw() -> Batch:
        crops = data.batch(rng, cfg.batch, part)
        quality = draw_qualities(cfg, rng)[part]
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)
        q = torch.from_numpy(quality).float()
        if pin:
            x, q = x.pin_memory(), q.pin_memory()
        return Batch(x, q, rng.bit_generator.state)

    return draw


# -- step --------------------------------------------------------------------------------


def step(run: Run, batch: Batch, lr: float) -> tuple[float, float, float]:
    """One optimiser step on ``batch`` at learning rate ``lr``. Returns this process's
    (loss, mean bpp, mean PSNR) of the batch."""
    device = run.ctx.device
    x = batch.x.to(device, non_blocking=True)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    quality = batch.quality.to(device, non_blocking=True)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    result = rd_loss(run.net, x, quality, run.cfg.distortion, run.cfg.rate_proxy)
    run.optimizer.zero_grad(set_to_none=True)
    result["loss"].backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.clip)
    run.optimizer.step()
    run.step += 1
    run.rng_state = batch.rng_state
    psnr = 10 * torch.log10(1.0 / result["mse"].detach().clamp_min(1e-10)).mean()
    return result["loss"].item(), result["bpp"].mean().item(), float(psnr)


# -- log ---------------------------------------------------------------------------------


class _Window:
    """The steps since the last log line: their (loss, bpp, PSNR) and the time waited for data."""

    def __init__(self):
        self.rows: list[tuple[float, float, float]] = []
        self.waited = 0.0
        self.started = time.perf_counter()

    def add(self, row: tuple[float, float, float], waited: float) -> None:
        self.rows.append(row)
        self.waited += waited

    def take(self) -> tuple[list[float], float]:
        """(mean loss, bpp, PSNR), share of the wall time spent waiting for data; resets."""
        now = time.perf_counter()
        means = [float(np.mean(v)) for v in zip(*self.rows)]
        share = self.waited / max(now - self.started, 1e-9)
        self.rows, self.waited, self.started = [], 0.0, now
        return means, share


def log(run: Run, window: _Window, lr: float) -> dict:
    """Average the window over the processes and append a line to log.jsonl (rank 0).

    Keys: step, loss, bpp, psnr (the window's means), lr, seconds (the run's cumulative
    wall time), data_wait (share of the window's wall time the loop waited for a batch),
    and processes (with several). Returns the row.
    """
    means, share = window.take()
    # equal parts: the mean of the processes' means is the global batch's mean
    loss, bpp, psnr, share = run.ctx.mean([*means, share])
    row = {"step": run.step, "loss": round(loss, 5), "bpp": round(bpp, 5), "psnr": round(psnr, 4),
           "lr": lr, "seconds": round(run.elapsed, 2), "data_wait": round(share, 4)}
    if run.ctx.distributed:  # wall seconds x processes = CPU (or GPU) time
        row["processes"] = run.ctx.world_size
    if run.ctx.is_main:
        with open(run.log_path, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row


def _progress_bar(run: Run):
    from tqdm import tqdm

    return tqdm(total=run.cfg.steps, initial=run.step, desc="train", unit="step", dynamic_ncols=True)


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint, so a resumed log continues exactly."""
    if not log_path.exists():
        return
    lines = [ln for ln in log_path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln)["step"] <= step]
    log_path.write_text("".join(ln + "\n" for ln in kept))


# -- checkpoint --------------------------------------------------------------------------


def checkpoint(run: Run) -> None:
    """Write checkpoint.pt atomically (rank 0): model, optimiser, step, elapsed time, the
    numpy stream's state after the last batch trained on, and every process's torch
    generator state (gathered in rank order)."""
    torch_states = run.ctx.gather(_torch_state(run.ctx.device))
    if not run.ctx.is_main:
        return
    rng_state = {"numpy": run.rng_state, "torch": torch_states[0]["cpu"]}
    if len(torch_states) > 1 or "cuda" in torch_states[0]:
        rng_state["torch_ranks"] = torch_states
    tmp = run.checkpoint_path.with_suffix(".tmp")
    torch.save({"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(), "step": run.step,
                "elapsed": run.elapsed, "rng": rng_state, "world_size": len(torch_states)}, tmp)
    os.replace(tmp, run.checkpoint_path)


def snapshot(run: Run) -> None:
    """Keep the model weights of this step in snapshots/ (rank 0)."""
    if not run.ctx.is_main:
        return
    snapshots = run.folder / "snapshots"
    snapshots.mkdir(exist_ok=True)
    torch.save({"model": run.model.state_dict(), "step": run.step, "elapsed": run.elapsed},
               snapshots / f"step{run.step:07d}.pt")


def _torch_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_torch_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _set_trainable(model, entropy_only: bool, fresh_only: bool) -> None:
    """Choose which parameters learn.

    ``entropy_only`` (the entropy warm-up): an untrained prior makes the rate term huge, and
    the quickest way for the transforms to lower it is to shrink the latents, destroying the
    linear initialisation; letting the prior catch up first avoids that.

    ``fresh_only``: only the parameters the warm start did not load (the model's
    ``warm_start_fresh`` prefixes) learn, so training adds what the family brings and cannot
    move the trained default it starts from.
    """
    entropy_params = {id(p) for p in model.entropy_model.parameters()}
    fresh = tuple(getattr(model, "warm_start_fresh", ()))
    for name, p in model.named_parameters():
        learns = not (entropy_only and id(p) not in entropy_params)
        if fresh_only:
            learns = learns and name.startswith(fresh)
        p.requires_grad_(learns)
