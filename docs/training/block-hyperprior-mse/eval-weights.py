# Ship check: RD of a weight file (or the shipped default, 'shipped') on the 24 Kodak images at
# qualities 1-8, real files; with two result files, the BD-rate of the second against the first.
# usage: eval-weights.py WEIGHTS|shipped OUT.json      (one process per file, one per core)
#        eval-weights.py --bd REFERENCE.json CANDIDATE.json
import sys, json, torch
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
sys.path.insert(0, str(ROOT / 'src'))
from neurocodec.metrics import bd_rate
if sys.argv[1] == '--bd':
    s, c = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
    print('BD-rate %s against %s: %+.2f %%' % (sys.argv[3], sys.argv[2], bd_rate(
        [x[0] for x in s], [x[1] for x in s], [x[0] for x in c], [x[1] for x in c])))
    sys.exit()
from neurocodec.bench import evaluate, load_images
from neurocodec.bench.neural import NeuralCodec
torch.set_num_threads(1)
w, out = sys.argv[1], sys.argv[2]
c = NeuralCodec(**({} if w == 'shipped' else dict(weights=w)))
pts = evaluate(c, load_images(str(SHARED / 'data' / 'kodak')), [1.0, 2, 3, 4, 5, 6, 7, 8], progress=False, with_ms_ssim=False)
assert c.mismatches == 0
res = [(p.bpp, p.psnr) for p in pts]
print(w, [f"{b:.3f}/{p:.2f}" for b, p in res], flush=True)
json.dump(res, open(out, 'w'))
