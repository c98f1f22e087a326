# v6 of the default model, run by launch-v6-ddp.sh under torchrun (2 processes).
from neurocodec.train import TrainConfig, train

cfg = TrainConfig(data='/work/shared/data/train', architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1), steps=16000, lr_drop_at=14500 / 16000, batch=8, crop=128,
                  scales=(0.5, 0.75), lr=1e-4, entropy_warmup=0, snapshot_every=1000, threads=1, seed=5,
                  rate_proxy='round', init_from='/work/runs/v5-final.safetensors')
train(cfg, '/work/runs/block-v6', progress=False)
