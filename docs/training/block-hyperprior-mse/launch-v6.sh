#!/bin/bash
# Continues the shipped v5 weights (19b1c0cd931c6e18) with the coded-symbol rate; long and
# resumable: rerun this script to resume from the checkpoint.
cd "$(dirname "$0")/../../.."   # the repository root
exec env PYTHONPATH=src python -c "
from neurocodec.train import TrainConfig, train
cfg = TrainConfig(data='../shared/data/train', architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1), steps=20000, batch=8, crop=128,
                  scales=(0.5, 0.75), lr=1e-4, entropy_warmup=0, snapshot_every=1000, threads=1, seed=5,
                  rate_proxy='round', init_from='runs/v5-final.safetensors')
train(cfg, 'runs/block-v6', progress=False)
"
