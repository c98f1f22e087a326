# Session 9 (issue 19): the context prior carried on from the probe's end (step 4000, the
# learning-rate drop is where it gained), prior only (transforms frozen, so the distortion stays
# the shipped default's), at a low learning rate, with full-scale crops added and the
# development set (benchmarks/data/devset.txt) kept out of the training folder.
#   python train_ctx_v2.py DATA_DIR RUN_DIR INIT_WEIGHTS [STEPS]
# DATA_DIR: ../shared/data/train less the development set; INIT_WEIGHTS: ctx-v11-step4000.safetensors.
# Resumes RUN_DIR's checkpoint.
import sys

import torch

from neurocodec.train import TrainConfig, train

data, run, init = sys.argv[1:4]
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
torch.set_num_threads(1)
cfg = TrainConfig(data=data, architecture='block-context',
                  model_config=dict(refine_blocks=1, refine_hidden=96, hyper_hidden=64), steps=steps,
                  lr_drop_at=0.85, batch=8, crop=128, scales=(0.5, 0.75, 1.0), lr=3e-5, entropy_warmup=steps,
                  snapshot_every=1000, checkpoint_every=200, threads=1, seed=31, rate_proxy="round",
                  integer_qualities=0.25, init_from=init)
train(cfg, run, progress=False)
