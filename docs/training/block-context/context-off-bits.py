"""Training-face bits of a snapshot on 8 probe crops at qualities 1, 3, 5, 8, with the learned
context and with its output layers zeroed (= the hyperprior alone). python context-off-bits.py [STEP]"""
import json, copy, sys, torch, numpy as np
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders
from neurocodec.models import build_model
from neurocodec.train.data import probe_crops
torch.manual_seed(0)
cfg = json.load(open(str(RUNS / 'ctx-v11' / 'config.json')))
step = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
st = torch.load(RUNS / 'ctx-v11' / 'snapshots' / f'step{step:07d}.pt', map_location='cpu', weights_only=False)
m = build_model(cfg['architecture'], **cfg['model_config']); m.load_state_dict(st['model']); m.eval()
m.entropy_model.rate_proxy = 'round'   # the bits of the coded symbols: deterministic
z = copy.deepcopy(m)
with torch.no_grad():
    for net in z.entropy_model.context:
        net.out.weight.zero_(); net.out.bias.zero_()
x = torch.from_numpy(probe_crops(str(SHARED / 'data' / 'train'), 32, count=8)).permute(0, 3, 1, 2).float() / 255
print(x.shape)
for q in (1.0, 3.0, 5.0, 8.0):
    qq = torch.full((x.shape[0],), q)
    with torch.no_grad():
        a = m(x, qq); b = z(x, qq)
    ya, yb = a['y_bits'].sum().item() if 'y_bits' in a else None, b['y_bits'].sum().item() if 'y_bits' in b else None
    print(q, {k: (v.shape if hasattr(v,'shape') else v) for k, v in a.items()} if q == 1.0 else '', ya, yb, ya / yb - 1 if ya else None)
for s, net in enumerate(m.entropy_model.context):
    print(s, float(net.out.weight.detach().abs().mean()), float(net.out.bias.detach().abs().mean()))
