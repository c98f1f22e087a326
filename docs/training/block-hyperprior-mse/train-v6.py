# v6 of the default model, run by launch-v6-ddp.sh under torchrun (2 processes).
from neurocodec.train import TrainConfig, train
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders

cfg = TrainConfig(data=str(SHARED / 'data' / 'train'), architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1), steps=16000, lr_drop_at=14500 / 16000, batch=8, crop=128,
                  scales=(0.5, 0.75), lr=1e-4, entropy_warmup=0, snapshot_every=1000, threads=1, seed=5,
                  rate_proxy='round', init_from=str(RUNS / 'v5-final.safetensors'))
train(cfg, str(RUNS / 'block-v6'), progress=False)
