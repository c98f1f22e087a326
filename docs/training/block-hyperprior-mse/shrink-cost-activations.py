# Variant of shrink-cost.py kept for the record: hidden channels scored by their mean |activation|
# on 256x256 crops of 6 training images at qualities 1, 4, 8 times the L1 norm of their outgoing
# weights, instead of filter norms. 192 -> 96 cost +40 % BD-rate (data-free: +15 %), so train.shrink
# uses the data-free score. usage: shrink-cost-activations.py REFINE_HIDDEN PIXEL_HIDDEN OUT --eval
import sys, torch, copy
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders
sys.path.insert(0, str(ROOT / 'src'))
from neurocodec.zoo import load_weights, export_weights
from neurocodec.zoo.weights import read_metadata
from neurocodec.models import build_model
from neurocodec.bench import load_images
torch.set_num_threads(1)
rh, ph, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
src = str(RUNS / "v6-final-e7b7f4e7.safetensors")
full = load_weights(src)
cfg = dict(read_metadata(src)['config']); cfg.update(refine_hidden=rh, pixel_hidden=ph)
slim = build_model('block-hyperprior', **cfg)
# mean |activation| of every hidden channel on training images, at three qualities
acts = {}
def hook(name):
    def f(mod, inp, outp):
        acts[name] = acts.get(name, 0) + torch.nn.functional.leaky_relu(outp, 0.1).abs().mean((0, 2, 3))
    return f
hid = {'a': full.analysis_refine[0].conv1, 's': full.synthesis_refine[0].conv1}
pr = [m for m in full.pixel_refine.body if isinstance(m, torch.nn.Conv2d)]
hid['p0'], hid['p1'] = pr[0], pr[1]
hs = [m.register_forward_hook(hook(k)) for k, m in hid.items()]
imgs = load_images(str(SHARED / 'data' / 'train'))[:6]
with torch.no_grad():
    for _, img in imgs:
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        x = x[..., :256, :256]
        for q in (1.0, 4.0, 8.0):
            full(x, quality=torch.full((1,), q))
for h in hs: h.remove()
def keep(score, n): return torch.sort(torch.topk(score, n).indices).values
sd = copy.deepcopy(full.state_dict()); new = slim.state_dict()
with torch.no_grad():
    for side, mod in (('analysis_refine', full.analysis_refine[0]), ('synthesis_refine', full.synthesis_refine[0])):
        score = acts[side[0]] * mod.conv2.weight.abs().sum((0, 2, 3))
        k = keep(score, rh)
        sd[f'{side}.0.conv1.weight'] = mod.conv1.weight[k]; sd[f'{side}.0.conv1.bias'] = mod.conv1.bias[k]
        sd[f'{side}.0.conv2.weight'] = mod.conv2.weight[:, k]
    # pixel refiner: body.0 (12->h), body.2 (h->h), body.4 (h->12)
    s1 = acts['p1'] * pr[2].weight.abs().sum((0, 2, 3)); k1 = keep(s1, ph)
    s0 = acts['p0'] * pr[1].weight[k1].abs().sum((0, 2, 3)); k0 = keep(s0, ph)
    sd['pixel_refine.body.0.weight'] = pr[0].weight[k0]; sd['pixel_refine.body.0.bias'] = pr[0].bias[k0]
    sd['pixel_refine.body.2.weight'] = pr[1].weight[k1][:, k0]; sd['pixel_refine.body.2.bias'] = pr[1].bias[k1]
    sd['pixel_refine.body.4.weight'] = pr[2].weight[:, k1]
sd = {k: v for k, v in sd.items() if k in new}
missing = set(new) - set(sd)
print('missing', missing)
for k in new: assert sd[k].shape == new[k].shape, (k, sd[k].shape, new[k].shape)
slim.load_state_dict(sd, strict=True)
print('params full', sum(p.numel() for p in full.parameters()), 'slim', sum(p.numel() for p in slim.parameters()))
export_weights(slim, out, 'slim-candidate')
if '--eval' in sys.argv:
    from neurocodec.bench import evaluate
    from neurocodec.bench.neural import NeuralCodec
    from neurocodec.metrics import bd_rate
    kimgs = load_images(str(SHARED / 'data' / 'kodak'))[::6]
    qs = [1.0, 3, 5, 8]; res = {}
    for name, kw in (('unshrunk', dict(weights=src)), ('slim', dict(weights=out))):
        c = NeuralCodec(**kw)
        pts = evaluate(c, kimgs, qs, progress=False, with_ms_ssim=False)
        res[name] = [(p.bpp, p.psnr) for p in pts]
        print(name, [f"{b:.3f}/{p:.2f}" for b, p in res[name]], flush=True)
    s, c = res['unshrunk'], res['slim']
    print('BD slim vs shipped %+.2f %%' % bd_rate([x[0] for x in s], [x[1] for x in s], [x[0] for x in c], [x[1] for x in c]))
