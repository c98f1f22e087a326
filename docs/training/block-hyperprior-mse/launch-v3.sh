#!/bin/bash
# Warm start from block-v2 at step 1000 (block-v1 800 steps + block-v2 1000 steps before it);
# adds per-quality modulation of the decoder's corrections (initialised to 1: same function).
cd "$(dirname "$0")/../../.."   # the repository root
exec nice -n -10 env PYTHONPATH=src python -c "
from neurocodec.train import TrainConfig, train
cfg = TrainConfig(data='../shared/data/train', architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1), steps=5000, batch=8, crop=128,
                  scales=(0.5, 0.75), lr=5e-4, entropy_warmup=0, snapshot_every=1000, threads=1, seed=2,
                  init_from='runs/v2-warm.safetensors')
train(cfg, 'runs/block-v3', progress=False)
"
