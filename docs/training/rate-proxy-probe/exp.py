"""Rate-proxy experiment: fine-tune the shipped weights N steps with the usual additive-noise
rate proxy vs the rate of the rounded symbols (straight-through), then measure real RD."""
import sys, json, torch, numpy as np
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders
from neurocodec.entropy import hyperprior as hp
from neurocodec.entropy.fixedpoint import round_ste
from neurocodec.entropy.gaussian import gaussian_bits
from neurocodec.train import TrainConfig, train
from neurocodec.train.export import export_run

mode, steps = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(1)
if mode == "round":
    orig = hp.MeanScaleHyperprior.forward
    def forward(self, y, log2_gain):
        z = self.hyper_analysis(y * hp.HYPER_INPUT_SCALE)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_bits = self.z_density.bits(z_noisy)
        z_hat = torch.clamp(round_ste(z), -hp.Z_LIMIT, hp.Z_LIMIT)
        mean, index = self.hyper_synthesis(z_hat, log2_gain)
        scale = torch.exp2(hp.LOG2_SCALE_MIN + index * hp.LOG2_SCALE_STEP)
        v = round_ste(y - mean)
        return {"y_hat": mean + v, "y_bits": gaussian_bits(v, scale), "z_bits": z_bits}
    hp.MeanScaleHyperprior.forward = forward
run = RUNS / "proxy-exp" / f"{mode}-{steps}"
if not (run / "done").exists():
    cfg = TrainConfig(data=str(SHARED / 'data' / 'train'), architecture='block-hyperprior',
                      model_config=dict(refine_blocks=1), steps=steps, batch=8, crop=128,
                      scales=(0.5, 0.75), lr=1e-4, entropy_warmup=0, snapshot_every=0, threads=1, seed=11,
                      init_from=str(RUNS / 'v3-final.safetensors'))
    train(cfg, run, progress=False)
    export_run(run, run / "weights.safetensors", "block-hyperprior-mse")
    (run / "done").write_text("1")
