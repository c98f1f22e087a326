# Export a family trained on the default (issue 19, --fresh-only runs) as a shipped model: the
# weights with a card that states the whole lineage and its CPU-hours, and encoder hints measured
# on the training folder.
#   python docs/training/ship_families.py FAMILY SOURCE OUT.safetensors TRAIN_DATA
# FAMILY is region, swinv2 or mixture; SOURCE is the run folder (with checkpoint.pt) or, for a run
# whose checkpoint is gone, the weight file exported from it (its card is kept and extended).
import json
import shutil
import sys
from pathlib import Path

from neurocodec.train.export import cpu_seconds, export_run, read_log, write_probe_hints
from neurocodec.zoo.weights import read_metadata, rewrite_card, weight_hash

DEFAULT = "src/neurocodec/zoo/weights/block-hyperprior-mse.safetensors"
COMMON = (f"--init-from {DEFAULT} --model-option refine_blocks=1 "
          "--model-option refine_hidden=96 --model-option hyper_hidden=64 --fresh-only --scales 0.5,0.75,1 "
          "--rate-proxy round --integer-qualities 0.25 --lr 1e-4 --precision bf16 --nproc 1 --threads 1")
FAMILIES = {
    "region": dict(name="block-region-mse", folder="block-region", seed=43, start="the default exactly",
                   description="Block-DCT codec of the default with zero-initialised region-adaptive stages (grid "
                               "regions, H/8) trained alone on it; qualities 1-8 (MSE)"),
    "swinv2": dict(name="block-swinv2-mse", folder="block-swinv2", seed=53, start="the default exactly",
                   description="Block-DCT codec of the default with zero-initialised residual SwinV2 stages (H/8) "
                               "trained alone on it; qualities 1-8 (MSE)"),
    "mixture": dict(name="block-mixture-mse", folder="block-mixture", seed=47,
                    start="the default's reconstruction; its y bits within 1 %, the extra components at weight 2^-15",
                    description="Block-DCT codec of the default with a Gaussian mixture (K = 3) whose extra "
                                "components were trained alone on it; qualities 1-8 (MSE)"),
}


def main(family: str, source: Path, out: Path, data: Path) -> None:
    spec = FAMILIES[family]
    parent = read_metadata(DEFAULT)["card"]   # the default's own training, which every family starts from
    parent_hours, parent_steps = parent["total_cpu_hours"], parent["total_steps"]
    if source.is_dir():
        records = read_log(source / "log.jsonl")
        steps = records[-1]["step"]
        hours = cpu_seconds(records, 1) / 3600
    else:
        card = read_metadata(source)["card"]
        steps, hours = card["steps"], card["cpu_hours"]
    command = (f"neurocodec train DATA RUN --architecture block-{family} {COMMON} --steps {steps} "
               f"--seed {spec['seed']} --snapshot-every 2000 --quiet   (DATA: ../shared/data/train less "
               f"benchmarks/data/devset.txt); exported by docs/training/ship_families.py {family}")
    extra = {
        "data": "../shared/data/train less the development set (benchmarks/data/devset.txt) at 0.5, 0.75 and 1.0 "
                "scale",
        "lineage": f"block-hyperprior-mse ({weight_hash(DEFAULT).hex()}, {parent_hours} CPU-hours) -> block-{family} at step 0 "
                   f"({spec['start']}) -> the family's additions trained alone (--fresh-only: every parameter "
                   "of the default frozen bit for bit)",
        "command": command,
        "log": f"docs/training/{spec['folder']}/",
        "added_cpu_hours": round(hours, 3),
        "total_cpu_hours": round(parent_hours + hours, 3),
        "total_steps": parent_steps + steps,
        "kodak_rd": "docs/benchmarks.md, 'Shipped models' (python benchmarks/families.py)",
    }
    if source.is_dir():
        digest = export_run(source, out, spec["name"], spec["description"], card_extra=extra)
    else:
        shutil.copyfile(source, out)
        meta = read_metadata(out)
        if meta.get("name") != spec["name"]:
            raise SystemExit(f"{source} is named {meta.get('name')!r}, expected {spec['name']!r}")
        digest = rewrite_card(out, {**meta["card"], **extra}, spec["description"])
        write_probe_hints(out, data)
    print(out, digest.hex(), json.dumps({k: extra[k] for k in ("added_cpu_hours", "total_cpu_hours")}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
