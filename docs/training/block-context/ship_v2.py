# Export the session-9 context run (train_ctx_v2.py) as the shipped block-context-mse, with its
# encoder hints and a card that states the whole lineage and its CPU-hours.
#   python ship_v2.py RUN_DIR OUT.safetensors
import json
import sys
from pathlib import Path

from neurocodec.train.export import cpu_seconds, export_run, read_log

run, out = Path(sys.argv[1]), Path(sys.argv[2])
here = Path(__file__).parent
probe_hours = cpu_seconds(read_log(here / "log-probe.jsonl"), 1) / 3600
run_hours = cpu_seconds(read_log(run / "log.jsonl"), 1) / 3600
default_hours = 18.191  # block-hyperprior-mse's card: total_cpu_hours
card = {
    "data": "../shared/data/train less the development set (benchmarks/data/devset.txt) at 0.5, 0.75 and 1.0 scale; "
            "the probe used all 105 photographs at 0.5 and 0.75",
    "lineage": "block-hyperprior-mse (v11, 68fd59e94af0dff2, 18.19 CPU-hours) -> context probe (4000 steps, prior only, "
               "lr 2e-4 then 2e-5; ctx-v11-step4000.safetensors) -> v2 (prior only, transforms frozen, lr 3e-5 then 3e-6, "
               "full-scale crops added; train_ctx_v2.py); the transforms are the default's, unchanged",
    "command": "docs/training/block-context/: train_ctx.py (probe), train_ctx_v2.py (v2), ship_v2.py (this export)",
    "total_cpu_hours": round(default_hours + probe_hours + run_hours, 3),
    "added_cpu_hours": round(probe_hours + run_hours, 3),
    "total_steps": 90600 + 4000 + read_log(run / "log.jsonl")[-1]["step"],  # default + probe + this run
    "kodak_rd": "docs/benchmarks.md, 'Shipped models' (python benchmarks/families.py)",
}
digest = export_run(run, out, "block-context-mse",
                    "Block-DCT codec of the default with a checkerboard x channel-slice context model (fixed point); "
                    "qualities 1-8 (MSE)", card_extra=card)
print(out, digest.hex(), json.dumps({k: card[k] for k in ("total_cpu_hours", "added_cpu_hours")}))
