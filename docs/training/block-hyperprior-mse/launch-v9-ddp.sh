#!/bin/bash
# v9 (session 5, stopped at step 4200 of 20000; not shipped): 2 processes under torchrun, global
# batch 8. Resumes runs/block-v9/checkpoint.pt if it exists; elsewhere, warm-start a new
# run from v9-step4200.safetensors (init_from).
cd "$(dirname "$0")/../../.."   # the repository root
exec env PYTHONPATH=src torchrun --standalone --nproc_per_node 2 docs/training/block-hyperprior-mse/train-v9.py
