import sys, json, torch
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
from neurocodec.bench import load_images
from neurocodec.bench.runner import evaluate
from neurocodec.bench.neural import NeuralCodec
from neurocodec.metrics import bd_rate
torch.set_num_threads(1)
imgs = load_images(str(SHARED / 'data' / 'kodak'))[::6]
res = {}
for w in sys.argv[1:]:
    pts = evaluate(NeuralCodec(weights=w, threads=1), imgs, [1, 2, 3, 4, 5, 6, 7, 8], progress=False, with_ms_ssim=False)
    res[w] = [(p.bpp, p.psnr) for p in pts]
    print(w, " ".join(f"{b:.3f}/{p:.2f}" for b, p in res[w]), flush=True)
ref = sys.argv[1]
for w in sys.argv[2:]:
    print("BD-rate", w, "vs", ref, "%.2f%%" % (bd_rate([b for b, _ in res[ref]], [p for _, p in res[ref]], [b for b, _ in res[w]], [p for _, p in res[w]])))
