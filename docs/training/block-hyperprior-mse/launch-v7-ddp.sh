#!/bin/bash
# v7 (sessions 4-5, stopped at step 8800 of 20000; not shipped): 2 processes under torchrun from
# step 600 (steps 0-600 ran in 1 process). Resumes runs/block-v7/checkpoint.pt if it
# exists; elsewhere, warm-start a new run from v7-step8800.safetensors (init_from).
cd "$(dirname "$0")/../../.."   # the repository root
exec env PYTHONPATH=src torchrun --standalone --nproc_per_node 2 docs/training/block-hyperprior-mse/train-v7.py
