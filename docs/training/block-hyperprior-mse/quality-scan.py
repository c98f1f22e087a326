# Mean bpp (real files) and PSNR of a weight file on Kodak images 1-2 at the given qualities: how
# v10's defective quality-2 operating point was found (docs/training/block-hyperprior-mse/README.md).
# usage: quality-scan.py WEIGHTS 1.5,1.8,2.0,2.06,2.08,2.1,2.2,2.5
import sys, numpy as np, torch
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
sys.path.insert(0, str(ROOT / 'src'))
torch.set_num_threads(1)
from neurocodec import Codec
from neurocodec.bench import load_images
from neurocodec.metrics import psnr
imgs = load_images(str(SHARED / 'data' / 'kodak'))[:2]
w = sys.argv[1]
for q in [float(x) for x in sys.argv[2].split(',')]:
    c = Codec(None, weights=w, quality=q)
    b = p = 0
    for _, arr in imgs:
        d = c.compress(arr); r = c.decompress(d)
        b += len(d) * 8 / (arr.shape[0] * arr.shape[1]); p += psnr(arr, r)
    print(q, '%.4f %.3f' % (b / 2, p / 2), flush=True)
