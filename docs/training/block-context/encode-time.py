"""Encode time of the context probe's step-4000 weights (exported to WORKDIR/ctx.safetensors)
with and without rate-distortion rounding, and decode time: 2 Kodak images, quality 4, 1 thread,
3 rounds, medians. python encode-time.py WORKDIR/ctx.safetensors"""
import sys, time, torch, numpy as np, statistics as st
from pathlib import Path
from neurocodec import Codec
from neurocodec.bench import load_images
from neurocodec.train.export import write_probe_hints
SHARED = Path(__file__).resolve().parents[3].parent / "shared"   # the shared data folder, ../shared
weights = sys.argv[1]   # the exported weights (WORKDIR/ctx.safetensors)
torch.set_num_threads(1)
write_probe_hints(weights, str(SHARED / 'data' / 'train'))
imgs = [im[1] if isinstance(im, tuple) else im for im in load_images(str(SHARED / 'data' / 'kodak'))[:2]]
rd = Codec(weights=weights, quality=4.0)
plain = Codec(weights=weights, quality=4.0); plain.model.channel_energy = None
t = {'rd': [], 'plain': [], 'decode': []}
for r in range(3):
    for im in imgs:
        for name, c in (('rd', rd), ('plain', plain)):
            a = time.perf_counter(); data = c.compress(im); t[name].append(time.perf_counter() - a)
        a = time.perf_counter(); rd.decompress(data); t['decode'].append(time.perf_counter() - a)
print({k: round(st.median(v), 3) for k, v in t.items()})
