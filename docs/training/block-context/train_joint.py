# Joint training of block-context (transforms + prior) from the context probe's step-4000
# weights (v11's transforms and hyperprior, context networks trained 4000 steps alone). Issue 3
# question: does the context gain once the transforms can adapt to it? Compare with the
# training curve of the hyperprior (docs/benchmarks.md) at the same added CPU-hours. lr 3e-5: the
# context probe gained only after its learning rate dropped from 2e-4 to 2e-5.
# Run by launch.sh (torchrun, 2 processes); resumes its checkpoint.
from neurocodec.train import TrainConfig, train
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders

cfg = TrainConfig(data=str(SHARED / 'data' / 'train'), architecture='block-context',
                  model_config=dict(refine_blocks=1, refine_hidden=96, hyper_hidden=64), steps=20000, lr_drop_at=0.9,
                  batch=8, crop=128, scales=(0.5, 0.75), lr=3e-5, entropy_warmup=0, snapshot_every=1000, threads=1,
                  seed=29, rate_proxy="round", integer_qualities=0.25, init_from=str(RUNS / 'ctx-v11-step4000.safetensors'))
train(cfg, str(RUNS / 'ctx-joint'), progress=False)
