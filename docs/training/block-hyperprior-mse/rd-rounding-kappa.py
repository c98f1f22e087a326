# RD of a weight file with its encoder hints (rate-distortion rounding) and without (plain rounding)
# on the first N Kodak images, and the BD-rate of the first against the second; every decode is
# checked against the encoder's reconstruction. How RD_KAPPA was chosen (docs/models.md):
#   KAPPA=13 rd-rounding-kappa.py WEIGHTS 3 1,2,3,4,6,8     (WEIGHTS with WEIGHTS' .hints beside it)
# IMAGES=FOLDER measures on the N smallest images of FOLDER instead (e.g. training images, to check
# that the constant chosen on Kodak is not fitted to the test images).
import os, sys, numpy as np, torch
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
sys.path.insert(0, str(ROOT / 'src'))
torch.set_num_threads(1)
import neurocodec.models.base as base
from neurocodec import Codec
from neurocodec.bench import load_images
from neurocodec.metrics import psnr, bd_rate
base.RD_KAPPA = float(os.environ.get('KAPPA', base.RD_KAPPA))
w, n, qs = sys.argv[1], int(sys.argv[2]), [float(x) for x in sys.argv[3].split(',')]
if os.environ.get('IMAGES'):
    imgs = sorted(load_images(os.environ['IMAGES']), key=lambda item: item[1].size)[:n]
else:
    imgs = load_images(str(SHARED / 'data' / 'kodak'))[:n]
curves = {}
for mode in ('hints', 'plain'):
    pts = []
    for q in qs:
        c = Codec(None, weights=w, quality=q)   # a fresh model per codec: the hints are loaded each time
        assert c.model.channel_energy is not None, 'no encoder hints beside ' + w
        if mode == 'plain':
            c.model.channel_energy = None
        b = p = 0
        for _, arr in imgs:
            d, rec_enc = c.compress_with_reconstruction(arr)
            rec = c.decompress(d)
            assert np.array_equal(rec, rec_enc)
            b += len(d) * 8 / (arr.shape[0] * arr.shape[1]); p += psnr(arr, rec)
        pts.append((b / n, p / n))
    curves[mode] = pts
    print(mode, ' '.join('%.3f/%.2f' % x for x in pts), flush=True)
h, pl = curves['hints'], curves['plain']
print('kappa %g: BD-rate hints vs plain: %+.2f %%' % (base.RD_KAPPA, bd_rate([x[0] for x in pl], [x[1] for x in pl], [x[0] for x in h], [x[1] for x in h])))
