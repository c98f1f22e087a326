# v10 of the default model: the hyperprior narrowed from 128 to 64 hidden channels (hyper_hidden,
# for encode/decode speed, issue 6), warm-started by neurocodec.train.shrink from v9's step 5600
# (exported to runs/v9-step5600.safetensors); the first 1000 steps train only the entropy
# model (transforms frozen), then everything; lr 1e-4, /10 for the last 10 % of 17500 steps (planned 16000, lengthened at step 1800 once the step time was known).
# Run by launch-ddp.sh (torchrun, 2 processes); resumes the run's checkpoint.
from neurocodec.train import TrainConfig, train
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders

cfg = TrainConfig(data=str(SHARED / 'data' / 'train'), architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1, refine_hidden=96, hyper_hidden=64), steps=17500, lr_drop_at=0.9,
                  batch=8, crop=128, scales=(0.5, 0.75), lr=1e-4, entropy_warmup=1000, snapshot_every=1000, threads=1,
                  seed=17, rate_proxy='round', init_from=str(RUNS / 'v9-step5600.safetensors'), init_shrink=True)
train(cfg, str(RUNS / 'block-v10'), progress=False)
