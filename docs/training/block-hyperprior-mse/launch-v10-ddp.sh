#!/bin/bash
# Equivalent CLI: neurocodec train /work/shared/data/train /work/runs/block-v10 --architecture block-hyperprior \
#   --model-option refine_blocks=1 --model-option refine_hidden=96 --model-option hyper_hidden=64 \
#   --init-from /work/runs/v9-step5600.safetensors --init-shrink --warmup 1000 --steps 17500 ... --nproc 2
cd /work/main
exec env PYTHONPATH=src /work/venv/bin/torchrun --standalone --nproc_per_node 2 /work/runs/block-v10/train_v10.py
