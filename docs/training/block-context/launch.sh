#!/bin/bash
# Equivalent CLI: neurocodec train ../shared/data/train runs/ctx-joint --architecture block-context \
#   --model-option refine_blocks=1 --model-option refine_hidden=96 --model-option hyper_hidden=64 \
#   --init-from runs/ctx-v11-step4000.safetensors --rate-proxy round --lr 3e-5 --steps 20000 --seed 29 --integer-qualities 0.25 --nproc 2
cd "$(dirname "$0")/../../.."   # the repository root
exec nice -n 5 env PYTHONPATH=src torchrun --standalone --nproc_per_node 2 docs/training/block-context/train_joint.py   # the run used a copy, runs/ctx-joint/train_joint.py
