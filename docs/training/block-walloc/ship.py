# Export block-walloc (issue 19) as the shipped model block-walloc-mse: the trained run's weights
# with a card that states the whole lineage (the default -> least-squares encoder fit -> joint
# training) and its CPU-hours, and encoder hints measured on the training folder.
#   python docs/training/block-walloc/ship.py RUN FIT.safetensors OUT.safetensors
# RUN is the training run folder (config.json, checkpoint.pt, log.jsonl); FIT the weight file
# neurocodec.train.encoder_fit wrote, which the run started from.
import json
import sys
from pathlib import Path

from neurocodec.train.export import cpu_seconds, export_run, read_log
from neurocodec.zoo.weights import read_metadata, weight_hash

DEFAULT = "src/neurocodec/zoo/weights/block-hyperprior-mse.safetensors"
NAME = "block-walloc-mse"
DESCRIPTION = ("WaLLoC's split on the default: a linear encoder (block DCT + one 1x1 projection, a seventh of the "
               "default's analysis multiply-adds) with the default's decoder and hyperprior, trained together; "
               "qualities 1-8 (MSE)")


def main(run: Path, fit: Path, out: Path) -> None:
    parent = read_metadata(DEFAULT)["card"]
    fit_card = read_metadata(fit)["card"]
    records = read_log(run / "log.jsonl")
    config = json.loads((run / "config.json").read_text())
    steps = records[-1]["step"]
    hours = (cpu_seconds(records, config.get("threads", 1)) + fit_card["cpu_seconds"]) / 3600
    extra = {
        "data": "../shared/data/train less the development set (benchmarks/data/devset.txt) at 0.5, 0.75 and 1.0 "
                "scale",
        "lineage": f"block-hyperprior-mse ({weight_hash(DEFAULT).hex()}, {parent['total_cpu_hours']} CPU-hours) -> "
                   f"block-walloc at step 0 (the default's decoder, hyperprior and gains; the encoder the "
                   f"least-squares fit of the default's latents: {fit_card['fit']['residual_rms_steps']} steps RMS "
                   f"residual) -> every parameter trained together for {steps} steps",
        "command": (f"{fit_card['command']}; then neurocodec train DATA RUN --architecture block-walloc --init-from "
                    f"{fit.name} --model-option refine_blocks=1 --model-option refine_hidden=96 --model-option "
                    f"hyper_hidden=64 --scales 0.5,0.75,1 --rate-proxy round --integer-qualities 0.25 --steps "
                    f"{config['steps']} --lr {config['lr']} --precision auto --nproc 1 --threads 1 --snapshot-every "
                    f"2000 --seed {config['seed']} --quiet   (DATA: ../shared/data/train less "
                    "benchmarks/data/devset.txt); exported by docs/training/block-walloc/ship.py"),
        "encoder_fit": fit_card["fit"],
        "log": "docs/training/block-walloc/",
        "added_cpu_hours": round(hours, 3),
        "total_cpu_hours": round(parent["total_cpu_hours"] + hours, 3),
        "total_steps": parent["total_steps"] + steps,
        "kodak_rd": "docs/benchmarks.md, 'Shipped models' (python benchmarks/families.py)",
    }
    digest = export_run(run, out, NAME, DESCRIPTION, card_extra=extra)
    print(out, digest.hex(), json.dumps({k: extra[k] for k in ("added_cpu_hours", "total_cpu_hours")}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
