# v11 of the default model: continues v10 (hyper_hidden 64, refine_hidden 96) from its final
# weights (docs/training/block-hyperprior-mse/v10-step17500.safetensors, copied to
# runs/v10-step17500.safetensors) with a fresh Adam at lr 1e-4, /10 for the last 10 % of a
# planned 30000 steps (cut to 18000 at the session-7 resume from step 6800, so the drop falls at 16200). v10 ended at +2.0 % BD-rate against the shipped default, all of it from an
# inefficient quality-2 operating point (nearly constant channels whose rounding flips with the
# gain); v11 trains a quarter of the crops at integer qualities (integer_qualities=0.25), the
# rows users pick, to see whether that removes it.
# Run by launch-ddp.sh (torchrun, 2 processes); resumes the run's checkpoint.
from neurocodec.train import TrainConfig, train
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders

cfg = TrainConfig(data=str(SHARED / 'data' / 'train'), architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1, refine_hidden=96, hyper_hidden=64), steps=18000, lr_drop_at=0.9,
                  batch=8, crop=128, scales=(0.5, 0.75), lr=1e-4, entropy_warmup=0, snapshot_every=1000, threads=1,
                  seed=19, rate_proxy="round", integer_qualities=0.25, init_from=str(RUNS / 'v10-step17500.safetensors'))
train(cfg, str(RUNS / 'block-v11'), progress=False)
