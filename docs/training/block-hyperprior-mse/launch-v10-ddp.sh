#!/bin/bash
# Equivalent CLI: neurocodec train ../shared/data/train runs/block-v10 --architecture block-hyperprior \
#   --model-option refine_blocks=1 --model-option refine_hidden=96 --model-option hyper_hidden=64 \
#   --init-from runs/v9-step5600.safetensors --init-shrink --warmup 1000 --steps 17500 ... --nproc 2
cd "$(dirname "$0")/../../.."   # the repository root
exec env PYTHONPATH=src torchrun --standalone --nproc_per_node 2 docs/training/block-hyperprior-mse/train-v10.py   # the run used a copy, runs/block-v10/train_v10.py
