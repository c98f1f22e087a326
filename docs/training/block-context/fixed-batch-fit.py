"""Can the context networks lower the bits of one fixed batch? Train only them (or, with
`hyper`, only the hyper-synthesis) from the step-1000 snapshot with the context zeroed:
python fixed-batch-fit.py 1e-4 round [hyper]"""
import json, sys, time, torch
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]   # the repository root
SHARED = ROOT.parent / "shared"   # the shared data folder, ../shared
RUNS = ROOT / "runs"   # training run folders
from neurocodec.models import build_model
from neurocodec.train.data import probe_crops
torch.manual_seed(0); torch.set_num_threads(1)
lr = float(sys.argv[1]); proxy = sys.argv[2]
cfg = json.load(open(str(RUNS / 'ctx-v11' / 'config.json')))
st = torch.load(str(RUNS / 'ctx-v11' / 'snapshots' / 'step0001000.pt'), map_location='cpu', weights_only=False)
m = build_model(cfg['architecture'], **cfg['model_config']); m.load_state_dict(st['model'])
with torch.no_grad():
    for net in m.entropy_model.context:
        net.out.weight.zero_(); net.out.bias.zero_()
x = torch.from_numpy(probe_crops(str(SHARED / 'data' / 'train'), 32, count=4, crop=128)).permute(0, 3, 1, 2).float() / 255
q = torch.tensor([1.0, 3.0, 5.0, 8.0])
params = list(m.entropy_model.hyper_synthesis.parameters()) if 'hyper' in sys.argv else [p for net in m.entropy_model.context for p in net.parameters()]
for p in m.parameters(): p.requires_grad_(False)
for p in params: p.requires_grad_(True)
with torch.no_grad():
    gain, _ = m.gains(q); y = m.analysis(x) * gain; lg = m.log2_gains(q)
opt = torch.optim.Adam(params, lr=lr)
t = time.time()
for step in range(301):
    out = m.entropy_model(y, lg, rate_proxy=proxy)
    bits = out['y_bits'].sum()
    if step % 50 == 0: print(step, round(bits.item()), round(time.time() - t), flush=True)
    opt.zero_grad(); bits.backward(); opt.step()
