#!/bin/bash
# Continues the shipped block-hyperprior-mse weights (block-v3 final, 6800 steps in all):
# a second cycle at a lower learning rate, dropped x10 for the last 15 %.
cd "$(dirname "$0")/../../.."   # the repository root
exec env PYTHONPATH=src python -c "
from neurocodec.train import TrainConfig, train
cfg = TrainConfig(data='../shared/data/train', architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1), steps=9000, batch=8, crop=128,
                  scales=(0.5, 0.75), lr=3e-4, entropy_warmup=0, snapshot_every=1000, threads=1, seed=3,
                  init_from='runs/v3-final.safetensors')
train(cfg, 'runs/block-v4', progress=False)
"
