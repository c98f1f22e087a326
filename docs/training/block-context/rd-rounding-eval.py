"""Context vs hyperprior, each with and without rate-distortion rounding, on the equal-budget
entropy table's weights (500 steps): copy runs/eq/entropy/{hyperprior,context}/final.safetensors
to WORKDIR/{hyper,context}.safetensors, then `python rd-rounding-eval.py 6 WORKDIR` (first 6 Kodak
images). Writes encoder hints beside each copy."""
import sys, json, torch
from pathlib import Path
from neurocodec.bench import evaluate, load_images
from neurocodec.bench.neural import NeuralCodec
from neurocodec.metrics import bd_rate
from neurocodec.train.export import write_probe_hints
SHARED = Path(__file__).resolve().parents[3].parent / "shared"   # the shared data folder, ../shared
torch.set_num_threads(1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
workdir = Path(sys.argv[2])   # holds {hyper,context}.safetensors (required)
imgs = load_images(str(SHARED / "data" / "kodak"))[:n]
qs = [1.0, 3.0, 5.0, 8.0]
curves = {}
for name in ("hyper", "context"):
    path = str(workdir / f"{name}.safetensors")
    write_probe_hints(path, str(SHARED / "data" / "train"))
    for rd in (False, True):
        c = NeuralCodec(weights=path)
        if not rd:
            c.codec.model.channel_energy = None
        assert (c.codec.model.rd_weight(3.0) is not None) == rd
        pts = evaluate(c, imgs, qs, progress=False, with_ms_ssim=False)
        assert not c.mismatches
        curves[f"{name}{'+rd' if rd else ''}"] = ([p.bpp for p in pts], [p.psnr for p in pts])
        print(name, rd, [(round(p.bpp, 4), round(p.psnr, 2)) for p in pts], flush=True)
base = curves["hyper"]
for k, v in curves.items():
    print(k, "vs hyper plain: %+.2f %%" % bd_rate(*base, *v), " vs hyper+rd: %+.2f %%" % bd_rate(*curves["hyper+rd"], *v))
