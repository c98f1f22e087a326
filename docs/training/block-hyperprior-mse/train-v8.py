# v8 of the default model (issue 6: a slimmer CPU default): warm start from v7 at step 8800
# (v7-step8800.safetensors, copied to runs/v7-step8800.safetensors), its refinement blocks cut
# from 192 to 96 hidden channels by neurocodec.train.shrink (init_shrink), the pixel refiner
# unchanged (48); coded-symbol rate, lr 1e-4 then /10 for the last 10 %. Planned for 11000
# steps, shortened to 9500 at step 2600 so the learning-rate drop fell inside the session.
# Run by launch-v8-ddp.sh (torchrun, 2 processes); resumes the run's checkpoint.
from neurocodec.train import TrainConfig, train
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders

cfg = TrainConfig(data=str(SHARED / 'data' / 'train'), architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1, refine_hidden=96), steps=9500, lr_drop_at=0.9, batch=8,
                  crop=128, scales=(0.5, 0.75), lr=1e-4, entropy_warmup=0, snapshot_every=1000, threads=1,
                  seed=11, rate_proxy='round', init_from=str(RUNS / 'v7-step8800.safetensors'), init_shrink=True)
train(cfg, str(RUNS / 'slim-v1'), progress=False)
