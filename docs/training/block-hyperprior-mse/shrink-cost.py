# The RD cost, before any fine-tuning, of shrinking the session-4 default (e7b7f4e7ce5fd256,
# block-hyperprior refine_hidden 192, pixel_hidden 48) with neurocodec.train.shrink: real files,
# Kodak images 1, 7, 13, 19, qualities 1, 3, 5, 8, BD-rate against the unshrunk weights.
# usage: shrink-cost.py REFINE_HIDDEN PIXEL_HIDDEN OUT.safetensors (figures in docs/models.md)
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
src = str(RUNS / "v6-final-e7b7f4e7.safetensors")  # the session-4 default (git show dbf3b67:src/neurocodec/zoo/weights/block-hyperprior-mse.safetensors)
cfg = dict(read_metadata(src)['config']); cfg.update(refine_hidden=int(sys.argv[1]), pixel_hidden=int(sys.argv[2]))
m = build_model('block-hyperprior', **cfg)
load_state_into(m, shrink_state(load_file(src), m))
export_weights(m, sys.argv[3], 'shrunk')
kimgs = load_images(str(SHARED / 'data' / 'kodak'))[::6]
qs = [1.0, 3, 5, 8]; res = {}
for name, kw in (('unshrunk', dict(weights=src)), ('shrunk', dict(weights=sys.argv[3]))):
    pts = evaluate(NeuralCodec(**kw), kimgs, qs, progress=False, with_ms_ssim=False)
    res[name] = [(p.bpp, p.psnr) for p in pts]
    print(name, [f"{b:.3f}/{p:.2f}" for b, p in res[name]], flush=True)
s, c = res['unshrunk'], res['shrunk']
print('BD shrunk vs unshrunk %+.2f %%' % bd_rate([x[0] for x in s], [x[1] for x in s], [x[0] for x in c], [x[1] for x in c]))
