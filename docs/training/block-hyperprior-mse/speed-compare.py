# Encode / decode time of weight files against the shipped default and CompressAI, interleaved in
# one process (Kodak images 1-3, quality 4, 3 rounds, medians). Run with the CompressAI venv of
# benchmarks/speed.py: speed-compare.py THREADS OTHER.safetensors ...
import sys, time, statistics, numpy as np, torch
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
sys.path.insert(0, str(ROOT / 'benchmarks')); sys.path.insert(0, str(ROOT / 'src'))
from PIL import Image
torch.set_num_threads(int(sys.argv[1]))
import speed
from neurocodec import Codec
class W:
    def __init__(self, weights, label):
        self.codec = Codec(None, weights=weights, quality=4.0) if weights else Codec.from_pretrained(None, quality=4.0); self.label = label
    def encode(self, img): return self.codec.compress(img)
    def decode(self, d): return self.codec.decompress(d)
workers = [speed.CompressAIWorker(4.0, None), W(None, 'shipped')] + [W(p, Path(p).stem) for p in sys.argv[2:]]
paths = sorted((SHARED / 'data' / 'kodak').glob('*.png'))[:3]
res = {w.label: ([], []) for w in workers}
with torch.inference_mode():
  for path in paths:
    img = np.asarray(Image.open(path).convert('RGB')).copy()
    for w in workers: w.decode(w.encode(img))
    for r in range(3):
        for w in workers:
            t0 = time.perf_counter(); d = w.encode(img); t1 = time.perf_counter(); w.decode(d); t2 = time.perf_counter()
            res[w.label][0].append(t1 - t0); res[w.label][1].append(t2 - t1)
base = res[workers[0].label]
for k, (e, d) in res.items():
    print(f"{k[:30]:30s} enc {statistics.median(e)*1000:6.1f} ms ({statistics.median(e)/statistics.median(base[0]):.3f})  dec {statistics.median(d)*1000:6.1f} ms ({statistics.median(d)/statistics.median(base[1]):.3f})")
