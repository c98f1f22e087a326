# v7 of the default model (not shipped): warm start from the shipped v6 weights (e7b7f4e7ce5fd256,
# copied to runs/v6-final-e7b7f4e7.safetensors), coded-symbol rate, lr 1e-4 then /10 for the
# last 10 %. Run by launch-v7-ddp.sh; resumes the run's checkpoint.
from neurocodec.train import TrainConfig, train
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders

cfg = TrainConfig(data=str(SHARED / 'data' / 'train'), architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1), steps=20000, lr_drop_at=0.9, batch=8, crop=128,
                  scales=(0.5, 0.75), lr=1e-4, entropy_warmup=0, snapshot_every=1000, threads=1, seed=7,
                  rate_proxy='round', init_from=str(RUNS / 'v6-final-e7b7f4e7.safetensors'))
train(cfg, str(RUNS / 'block-v7'), progress=False)
