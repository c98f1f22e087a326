"""Train a realism decoder (issue 21) for a shipped model, its encoder, prior and MSE decoder frozen.

    python -m neurocodec.train.realism DATA RUN [--base MODEL] [--steps N] [--time-limit S]
    python -m neurocodec.train.realism DATA RUN --export OUT.safetensors

Objective (per crop, R drawn in [0, 1]): the distortion of ``x_R`` relative to the MSE
decoder's own (so every quality weighs the same), plus R times ``beta`` times a hinge
adversarial term from a small conditional PatchGAN that sees the candidate beside the MSE
reconstruction. Only the correction network (``neurocodec.transforms.realism``) and the
discriminator learn, so the streams, and the pixels at R = 0, are the base model's.

The run folder holds ``config.json``, ``checkpoint.pt`` (every 200 steps and at the end;
the same command resumes) and ``log.jsonl``. ``--export`` writes the shipped file: the
correction network in fp16 and a card naming the base model's decoding digest, which is how
the codec pairs the two (:func:`neurocodec.zoo.realism.find_realism`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..transforms.realism import RealismSynthesis
from ..zoo.realism import KIND as REALISM_KIND
from .data import CropDataset

CHECKPOINT_EVERY = 200


@dataclass
class RealismConfig:
    """Everything that defines a realism training run (saved as RUN/config.json)."""

    data: str
    base: str = "block-hyperprior-mse"
    steps: int = 20000
    batch: int = 8
    crop: int = 128
    scales: tuple = (0.5, 0.75, 1.0)
    lr: float = 2e-4
    beta: float = 0.1
    min_quality: float = 1.0
    max_quality: float = 6.0
    hidden: int = 48
    seed: int = 0
    threads: int = 1


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: (candidate, MSE reconstruction), each (B, 3, H, W) -> logits (B, 1, H/8, W/8).

    Spectral normalisation on every layer keeps it Lipschitz, which is what lets a
    discriminator this small train stably on a CPU-sized budget.
    """

    def __init__(self, width: int = 32):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(6, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(4 * width, 1, 3, padding=1)))

    def forward(self, candidate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([candidate, reference], dim=1) * 2 - 1)


def high_frequency_share(x: torch.Tensor) -> torch.Tensor:
    """Share of a batch's spectral energy above a quarter of the sampling rate, float (B,)."""
    spectrum = torch.fft.rfft2(x - x.mean(dim=(-2, -1), keepdim=True)).abs().pow(2).sum(1)
    fy = torch.fft.fftfreq(x.shape[-2]).abs()[:, None]
    fx = torch.fft.rfftfreq(x.shape[-1])[None, :]
    high = (torch.maximum(fy, fx) >= 0.25).to(spectrum.dtype)
    return (spectrum * high).sum((-2, -1)) / spectrum.sum((-2, -1)).clamp_min(1e-12)


class BaseDecoder:
    """The frozen base model's face for this training: crops -> (y_hat, x0)."""

    def __init__(self, name: str):
        from ..zoo import load_model, model_info

        self.info = model_info(name)
        self.model = load_model(name)
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x float32 (B, 3, H, W) in [0, 1], quality (B,) -> (y_hat (B, C, H/8, W/8), x0 (B, 3, H, W) in [0, 1])."""
        model = self.model
        gain, inverse = model.gains(quality)
        y = model.analysis(x) * gain
        rate = model.entropy_model(y, model.log2_gains(quality), quality, "round", None)
        x0 = model.synthesis(rate.y_hat * inverse, quality).clamp(0, 1)
        return rate.y_hat, x0


class RealismRun:
    """Models, optimisers and counters of one run; :meth:`save` / :meth:`load` the checkpoint."""

    def __init__(self, cfg: RealismConfig, folder: Path):
        torch.manual_seed(cfg.seed)
        self.cfg, self.folder = cfg, folder
        self.base = BaseDecoder(cfg.base)
        self.generator = RealismSynthesis(self.base.model.latent_channels, hidden=cfg.hidden)
        self.discriminator = PatchDiscriminator()
        betas = (0.5, 0.9)  # the usual GAN setting: less momentum than Adam's default
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=betas)
        self.rng = np.random.default_rng(cfg.seed)
        self.step = 0
        self.elapsed = 0.0

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / "checkpoint.pt"

    def save(self) -> None:
        state = {"generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "step": self.step,
                 "elapsed": self.elapsed, "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state()}
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)

    def load(self) -> None:
        state = torch.load(self.checkpoint_path, weights_only=False)
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])


def train_step(run: RealismRun, crops: np.ndarray) -> dict[str, float]:
    """One discriminator and one correction-network update on uint8 crops (B, H, W, 3)."""
    cfg = run.cfg
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255)
    b = x.shape[0]
    quality = torch.from_numpy(run.rng.uniform(cfg.min_quality, cfg.max_quality, b)).float()
    realism = torch.from_numpy(run.rng.uniform(0, 1, b)).float()
    realism[: max(1, b // 4)] = 1.0  # a quarter at the end point the benchmark judges
    y_hat, x0 = run.base(x, quality)
    noise = torch.rand(b, run.generator.noise_channels, x.shape[-2] // 2, x.shape[-1] // 2) * 2 - 1
    x_r = run.generator(x0, y_hat, quality, realism, noise)

    d_real = run.discriminator(x, x0)
    d_fake = run.discriminator(x_r.detach(), x0)
    loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    run.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    run.opt_d.step()

    mse0 = (x0 - x).pow(2).mean((1, 2, 3)).clamp_min(1e-6)
    mse_r = (x_r - x).pow(2).mean((1, 2, 3))
    adversarial = -run.discriminator(x_r, x0).mean((1, 2, 3))
    loss_g = (mse_r / mse0 + cfg.beta * realism * adversarial).mean()
    run.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    nn.utils.clip_grad_norm_(run.generator.parameters(), 1.0)
    run.opt_g.step()
    run.step += 1

    with torch.no_grad():
        at_one = realism == 1.0
        hf = high_frequency_share(x[at_one]).mean().clamp_min(1e-12)  # batch means: a flat crop has none
        return {"loss_g": loss_g.item(), "loss_d": loss_d.item(), "mse_ratio": (mse_r / mse0).mean().item(),
                "psnr0": (-10 * torch.log10(mse0[at_one])).mean().item(),
                "psnr1": (-10 * torch.log10(mse_r[at_one].clamp_min(1e-10))).mean().item(),
                "hf_share0": (high_frequency_share(x0[at_one]).mean() / hf).item(),
                "hf_share1": (high_frequency_share(x_r[at_one].detach()).mean() / hf).item()}


def train(cfg: RealismConfig, folder: Path, time_limit: float | None = None, say=print) -> RealismRun:
    """Run (or resume) training in ``folder`` until ``cfg.steps`` or ``time_limit`` seconds."""
    torch.set_num_threads(cfg.threads)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.json"
    if not config_path.exists():
        config_path.write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    run = RealismRun(cfg, folder)
    if run.checkpoint_path.exists():
        run.load()
        say(f"resumed {folder} at step {run.step}")
    data = CropDataset(cfg.data, cfg.crop, tuple(cfg.scales))
    start = tic = time.perf_counter()
    window: list[dict] = []
    with (folder / "log.jsonl").open("a") as log:
        while run.step < cfg.steps:
            window.append(train_step(run, data.batch(run.rng, cfg.batch)))
            now = time.perf_counter()
            run.elapsed += now - tic
            tic = now
            stop = time_limit is not None and now - start >= time_limit
            if run.step % 20 == 0 or stop or run.step == cfg.steps:
                row = {"step": run.step, **{k: round(float(np.mean([w[k] for w in window])), 5) for k in window[0]},
                       "seconds": round(run.elapsed, 2)}
                log.write(json.dumps(row) + "\n")
                log.flush()
                window.clear()
            if run.step % CHECKPOINT_EVERY == 0 or stop or run.step == cfg.steps:
                run.save()
            if stop:
                break
    return run


def training_command(cfg: RealismConfig) -> str:
    """The command that trains ``cfg`` (DATA and RUN left as names: no machine-local path)."""
    defaults = RealismConfig(data="")
    options = [f"--{k.replace('_', '-')} {v}" for k, v in asdict(cfg).items()
               if k not in ("data", "scales") and v != getattr(defaults, k)]
    return " ".join(["python -m neurocodec.train.realism DATA RUN", *options])


def export(folder: Path, out: Path) -> Path:
    """Write RUN's correction network as a shipped realism file (fp16 + card); returns ``out``."""
    from safetensors.torch import save

    from ..zoo.weights import write_weights_file

    cfg = RealismConfig(**json.loads((folder / "config.json").read_text()))
    state = torch.load(folder / "checkpoint.pt", weights_only=False)
    base = BaseDecoder(cfg.base)
    generator = RealismSynthesis(base.model.latent_channels, hidden=cfg.hidden)
    generator.load_state_dict(state["generator"])
    card = {"base_model": cfg.base, "base_digest": base.info.decoding_digest, "steps": state["step"],
            "cpu_hours": round(state["elapsed"] * cfg.threads / 3600, 2),
            "training": {k: v for k, v in asdict(cfg).items() if k != "data"}, "command": training_command(cfg)}
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in generator.state_dict().items()}
    metadata = {"kind": REALISM_KIND, "config": json.dumps(generator.config(), sort_keys=True),
                "base_digest": base.info.decoding_digest, "card": json.dumps(card, sort_keys=True)}
    write_weights_file(out, save(tensors, metadata=metadata))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurocodec.train.realism", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="folder of training images")
    parser.add_argument("run", help="run folder (created; an existing run resumes)")
    defaults = RealismConfig(data="")
    for name in ("base", "steps", "batch", "crop", "lr", "beta", "min_quality", "max_quality", "hidden", "seed",
                 "threads"):
        value = getattr(defaults, name)
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value,
                            help=f"(default: {value})")
    parser.add_argument("--time-limit", type=float, default=None, metavar="S", help="stop after S seconds")
    parser.add_argument("--export", type=Path, default=None, metavar="OUT.safetensors",
                        help="write RUN's weights as a realism decoder file and exit")
    args = parser.parse_args(argv)
    folder = Path(args.run)
    if args.export is not None:
        if not (folder / "checkpoint.pt").exists():
            parser.error(f"{folder} holds no checkpoint to export")
        print(export(folder, args.export))
        return 0
    if not Path(args.data).is_dir():
        parser.error(f"{args.data} is not a folder")
    fields = {k: getattr(args, k) for k in asdict(defaults) if k != "data" and k != "scales"}
    cfg = RealismConfig(data=str(args.data), **fields)
    if (folder / "config.json").exists():  # a resumed run keeps its configuration
        saved = json.loads((folder / "config.json").read_text())
        cfg = RealismConfig(**{**saved, "data": str(args.data), "steps": args.steps})
    if not math.isfinite(cfg.beta) or cfg.beta < 0:
        parser.error("--beta must be a non-negative number")
    train(cfg, folder, args.time_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
