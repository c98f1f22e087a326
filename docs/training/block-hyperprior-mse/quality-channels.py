# Per-quality statistics of the coded latents of kodim02 (bytes, escapes, share of non-zero symbols,
# mean table index) and the channels whose share of non-zero symbols changes most between
# consecutive qualities: what located v10's quality-2 defect (README.md, v10).
# usage: quality-channels.py WEIGHTS 2.0,2.05,2.08,2.1
import sys, numpy as np, torch
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
sys.path.insert(0, str(ROOT / 'src'))
torch.set_num_threads(1)
from neurocodec import Codec
from neurocodec.bench import load_images
arr = load_images(str(SHARED / 'data' / 'kodak'))[1][1]
codec = Codec(None, weights=sys.argv[1])
em = codec.model.entropy_model
quantise, captured = em.quantise, {}
em.quantise = lambda y, quality: captured.setdefault('last', quantise(y, quality))  # the coded symbols
t = em.y_tables
prev = None
for q in [float(x) for x in sys.argv[2].split(',')]:
    d = codec.compress(arr, quality=q)
    s = captured.pop('last')
    sym, idx = s.y_symbols, s.y_indexes
    lo = t.minima[idx]; hi = lo + t.sizes[idx]
    esc = (sym < lo) | (sym >= hi)
    per_ch_nz = (sym != 0).reshape(sym.shape[1], -1).mean(1)
    print(q, 'bytes', len(d), 'escapes', int(esc.sum()), 'nonzero %.4f' % (sym != 0).mean(), 'idx mean %.2f' % idx.mean(), 'idx==0 %.3f' % (idx == 0).mean(), flush=True)
    if prev is not None:
        top = np.argsort(-np.abs(per_ch_nz - prev))[:5]
        print('   channels with largest change in nonzero fraction:', [(int(ch), round(float(prev[ch]), 3), round(float(per_ch_nz[ch]), 3)) for ch in top])
    prev = per_ch_nz
