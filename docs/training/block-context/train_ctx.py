# Probe for issue 3: does the checkerboard x channel-slice context model gain over the shipped
# hyperprior at a longer budget than the equal-budget table's 500 steps? Warm start from the
# shipped v11 weights (the context networks start at zero output, i.e. exactly v11's prior);
# the transforms stay frozen the whole run (entropy_warmup = steps), so only the prior learns
# and the distortion is v11's. Resumes its checkpoint.
import sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders
from neurocodec.train import TrainConfig, train

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
cfg = TrainConfig(data=str(SHARED / 'data' / 'train'), architecture='block-context',
                  model_config=dict(refine_blocks=1, refine_hidden=96, hyper_hidden=64), steps=steps, lr_drop_at=0.9,
                  batch=8, crop=128, scales=(0.5, 0.75), lr=2e-4, entropy_warmup=steps, snapshot_every=1000, threads=1,
                  seed=23, rate_proxy="round", integer_qualities=0.25, init_from=str(RUNS / 'v11-step18000.safetensors'))
train(cfg, str(RUNS / 'ctx-v11'), progress=False)
