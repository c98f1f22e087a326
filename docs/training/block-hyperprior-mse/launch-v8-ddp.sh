#!/bin/bash
# v8 (session 5): 2 processes under torchrun, global batch 8 (2 x 4). Resumes
# runs/slim-v1/checkpoint.pt if it exists, else starts from v7-step8800.safetensors.
# The same with the CLI:
#   neurocodec train ../shared/data/train runs/v8 --nproc 2 --steps 9500 --lr 1e-4 --rate-proxy round \
#       --seed 11 --snapshot-every 1000 --init-from v7-step8800.safetensors --init-shrink \
#       --model-option refine_blocks=1 --model-option refine_hidden=96
# (the CLI's learning-rate drop comes after 85 % of the steps, this run's after 90 %).
cd "$(dirname "$0")/../../.."   # the repository root
exec env PYTHONPATH=src torchrun --standalone --nproc_per_node 2 docs/training/block-hyperprior-mse/train-v8.py
