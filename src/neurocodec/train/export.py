"""Export a training run's checkpoint as a shipped weight file with a model card."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..models import build_model
from ..zoo.weights import export_weights


def export_run(run_dir: str | Path, out_path: str | Path, name: str, description: str = "",
               card_extra: dict | None = None) -> bytes:
    """Load ``run_dir/checkpoint.pt`` and write fp16 safetensors with integer tables.

    The model card records the training config, steps, CPU time and the final training
    log line; ``card_extra`` (e.g. measured Kodak RD) is merged in. Returns the weight hash.
    """
    run = Path(run_dir)
    config = json.loads((run / "config.json").read_text())
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    model = build_model(config["architecture"], **config.get("model_config", {}))
    model.load_state_dict(state["model"])
    log_lines = [ln for ln in (run / "log.jsonl").read_text().splitlines() if ln.strip()] if (run / "log.jsonl").exists() else []
    card = {
        "training_config": config,
        "steps": state["step"],
        "cpu_hours": round(state.get("elapsed", 0.0) * config.get("threads", 1) / 3600.0, 3),
        "last_log": json.loads(log_lines[-1]) if log_lines else None,
    }
    card.update(card_extra or {})
    return export_weights(model, out_path, name, description, card)
