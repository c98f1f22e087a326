#!/bin/bash
# Warm start: transforms, gains, h_a, z density and h_s hidden layers from block-v1 at
# step 800 (0.24 CPU-hours); h_s output layer re-initialised (quality-aware prior).
cd "$(dirname "$0")/../../.."   # the repository root
exec nice -n -10 env PYTHONPATH=src python -c "
from neurocodec.train import TrainConfig, train
cfg = TrainConfig(data='../shared/data/train', architecture='block-hyperprior',
                  model_config=dict(refine_blocks=1), steps=9000, batch=8, crop=128,
                  scales=(0.5, 0.75), lr=5e-4, entropy_warmup=200, snapshot_every=1000, threads=1, seed=1,
                  init_from='runs/v1-warm.safetensors')
train(cfg, 'runs/block-v2', progress=False)
"
