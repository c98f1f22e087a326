# v9 of the default model: warm start from the shipped v8 weights (fa16d7ab8bb3d620, copied to
# runs/v8-final-fa16d7ab.safetensors), same widths (refine_hidden 96), coded-symbol rate,
# lr 1e-4 then /10 for the last 10 % of a planned 20000 steps, shortened to 17000 at step 4200 (session 6) to fit the session. Run by launch-ddp.sh (torchrun,
# 2 processes); resumes the run's checkpoint.
from neurocodec.train import TrainConfig, train
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders

cfg = TrainConfig(data=str(SHARED / 'data' / 'train'), architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1, refine_hidden=96), steps=17000, lr_drop_at=0.9, batch=8,
                  crop=128, scales=(0.5, 0.75), lr=1e-4, entropy_warmup=0, snapshot_every=1000, threads=1,
                  seed=13, rate_proxy='round', init_from=str(RUNS / 'v8-final-fa16d7ab.safetensors'))
train(cfg, str(RUNS / 'block-v9'), progress=False)
