"""Encode time of the context probe's step-4000 weights (exported to /tmp/ctxw/ctx.safetensors)
with and without rate-distortion rounding, and decode time: 2 Kodak images, quality 4, 1 thread,
3 rounds, medians."""
import time, torch, numpy as np, statistics as st
from neurocodec import Codec
from neurocodec.bench import load_images
from neurocodec.train.export import write_probe_hints
torch.set_num_threads(1)
write_probe_hints('/tmp/ctxw/ctx.safetensors', '/work/shared/data/train')
imgs = [im[1] if isinstance(im, tuple) else im for im in load_images('/work/shared/data/kodak')[:2]]
rd = Codec(weights='/tmp/ctxw/ctx.safetensors', quality=4.0)
plain = Codec(weights='/tmp/ctxw/ctx.safetensors', quality=4.0); plain.model.channel_energy = None
t = {'rd': [], 'plain': [], 'decode': []}
for r in range(3):
    for im in imgs:
        for name, c in (('rd', rd), ('plain', plain)):
            a = time.perf_counter(); data = c.compress(im); t[name].append(time.perf_counter() - a)
        a = time.perf_counter(); rd.decompress(data); t['decode'].append(time.perf_counter() - a)
print({k: round(st.median(v), 3) for k, v in t.items()})
