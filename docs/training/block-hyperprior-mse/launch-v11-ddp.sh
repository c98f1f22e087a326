#!/bin/bash
# Equivalent CLI: neurocodec train ../shared/data/train runs/block-v11 --architecture block-hyperprior \
#   --model-option refine_blocks=1 --model-option refine_hidden=96 --model-option hyper_hidden=64 \
#   --init-from runs/v10-step17500.safetensors --rate-proxy round --lr 1e-4 --steps 18000 --seed 19 --integer-qualities 0.25 --nproc 2
cd "$(dirname "$0")/../../.."   # the repository root
exec env PYTHONPATH=src torchrun --standalone --nproc_per_node 2 docs/training/block-hyperprior-mse/train-v11.py   # the run used a copy, runs/block-v11/train_v11.py
