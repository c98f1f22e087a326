#!/bin/bash
cd "$(dirname "$0")/../../.."   # the repository root
exec nice -n 5 env PYTHONPATH=src python -c "
from neurocodec.train import TrainConfig, train
cfg = TrainConfig(data='../shared/data/train', architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1), steps=12000, batch=8, crop=128,
                  scales=(0.5, 0.75), lr=5e-4, entropy_warmup=300, snapshot_every=1000, threads=1, seed=0)
train(cfg, 'runs/block-v1', progress=False)
"
