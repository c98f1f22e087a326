# v7 of the default model (not shipped): warm start from the shipped v6 weights (e7b7f4e7ce5fd256,
# copied to /work/runs/v6-final-e7b7f4e7.safetensors), coded-symbol rate, lr 1e-4 then /10 for the
# last 10 %. Run by launch-v7-ddp.sh; resumes the run's checkpoint.
from neurocodec.train import TrainConfig, train

cfg = TrainConfig(data='/work/shared/data/train', architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1), steps=20000, lr_drop_at=0.9, batch=8, crop=128,
                  scales=(0.5, 0.75), lr=1e-4, entropy_warmup=0, snapshot_every=1000, threads=1, seed=7,
                  rate_proxy='round', init_from='/work/runs/v6-final-e7b7f4e7.safetensors')
train(cfg, '/work/runs/block-v7', progress=False)
