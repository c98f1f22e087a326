#!/bin/bash
# v6, session 4: the same run resumed on both cores of the machine, 2 processes under
# torchrun (global batch 8 = 2 x 4 crops), 16000 steps with the learning rate divided by 10
# from step 14500 (train-v6.py). Steps 0-6000 ran in session 3 with launch-v6.sh; steps
# 6000-7200 ran with launch-v6.sh changed to steps=13000 (the learning rate is 1e-4 up to
# step 11500 either way); from 7200 this script. Resumable: rerun it.
cd "$(dirname "$0")/../../.."   # the repository root
exec env PYTHONPATH=src torchrun --standalone --nproc_per_node 2 docs/training/block-hyperprior-mse/train-v6.py
