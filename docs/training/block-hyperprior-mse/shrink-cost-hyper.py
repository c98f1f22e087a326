# The RD cost, before any fine-tuning, of narrowing the hyperprior (hyper_hidden 128 -> N) of the
# session-5 default (fa16d7ab8bb3d620) with neurocodec.train.shrink: real files, Kodak images 1,
# 7, 13, 19, qualities 1, 3, 5, 8, BD-rate against the unshrunk weights.
# usage: shrink-cost-hyper.py OUT_DIR N [N ...] (figures in docs/models.md)
import sys, torch
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders
sys.path.insert(0, str(ROOT / 'src'))
from safetensors.torch import load_file
from neurocodec.models import build_model
from neurocodec.train.shrink import shrink_state
from neurocodec.zoo import export_weights
from neurocodec.zoo.weights import load_state_into, read_metadata
from neurocodec.bench import evaluate, load_images
from neurocodec.bench.neural import NeuralCodec
from neurocodec.metrics import bd_rate
torch.set_num_threads(1)
src = str(RUNS / "v8-final-fa16d7ab.safetensors")  # the session-5 default
kimgs = load_images(str(SHARED / 'data' / 'kodak'))[::6]
qs = [1.0, 3, 5, 8]


def rd(weights):
    return [(p.bpp, p.psnr) for p in evaluate(NeuralCodec(weights=weights), kimgs, qs, progress=False,
                                               with_ms_ssim=False)]


base = rd(src)
print('unshrunk', [f"{b:.3f}/{p:.2f}" for b, p in base], flush=True)
for width in map(int, sys.argv[2:]):
    cfg = dict(read_metadata(src)['config']); cfg.update(hyper_hidden=width)
    m = build_model('block-hyperprior', **cfg)
    load_state_into(m, shrink_state(load_file(src), m))
    out = f"{sys.argv[1]}/hyper{width}.safetensors"
    export_weights(m, out, 'shrunk')
    cand = rd(out)
    print(f'hyper_hidden {width}', [f"{b:.3f}/{p:.2f}" for b, p in cand], flush=True)
    print(f'BD hyper_hidden {width} vs unshrunk %+.2f %%' % bd_rate([x[0] for x in base], [x[1] for x in base],
                                                                   [x[0] for x in cand], [x[1] for x in cand]), flush=True)
