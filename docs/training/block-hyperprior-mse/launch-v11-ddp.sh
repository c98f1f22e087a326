#!/bin/bash
# Equivalent CLI: neurocodec train /work/shared/data/train /work/runs/block-v11 --architecture block-hyperprior \
#   --model-option refine_blocks=1 --model-option refine_hidden=96 --model-option hyper_hidden=64 \
#   --init-from /work/runs/v10-step17500.safetensors --rate-proxy round --lr 1e-4 --steps 18000 --seed 19 --integer-qualities 0.25 --nproc 2
cd /work/main
exec env PYTHONPATH=src /work/venv/bin/torchrun --standalone --nproc_per_node 2 /work/runs/block-v11/train_v11.py
