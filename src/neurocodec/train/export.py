"""Export a training run's checkpoint as a shipped weight file with a model card."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..models import build_model
from ..models.base import ProbeTooSmallError
from ..zoo.weights import export_weights


def export_run(run_dir: str | Path, out_path: str | Path, name: str, description: str = "",
               card_extra: dict | None = None) -> bytes:
    """Load ``run_dir/checkpoint.pt`` and write fp16 safetensors with integer tables.

    The model card records the training config, steps, CPU time and the final training
    log line; ``card_extra`` (e.g. measured Kodak RD) is merged in. Returns the weight hash.
    """
    run = Path(run_dir)
    config = json.loads((run / "config.json").read_text())
    model, state = load_trained(run / "checkpoint.pt", config)
    records = read_log(run / "log.jsonl")
    threads = config.get("threads", 1)
    seconds = cpu_seconds(records, threads) if records else state.get("elapsed", 0.0) * threads
    card = {
        "training_config": config,
        "steps": state["step"],
        "cpu_hours": round(seconds / 3600.0, 3),
        "last_log": records[-1] if records else None,
    }
    card.update(card_extra or {})
    digest = export_weights(model, out_path, name, description, card)
    write_probe_hints(out_path, config["data"])
    return digest


def export_fitted(model, out: str | Path, name: str, init_from: str | Path, data: str | Path, crops: int,
                  fitted: dict, command: str, cpu_start: float, description: str) -> bytes:
    """Export a model made from a parent weight file with no training (a closed-form or
    clustering fit: ``neurocodec.train.kmeans_init``, ``neurocodec.train.encoder_fit``), with
    the card those share: method, lineage, parent file, the crops it was fitted on, what was
    fitted (``fitted``: card fields of the tool's own), the command, CPU seconds since
    ``cpu_start`` (``time.process_time``) and zero training hours. Returns the weight hash.

    ``fitted["method"]`` names the tool; the crop settings go in ``fitted["data"]``.
    """
    import time

    from ..zoo.weights import read_metadata

    parent = read_metadata(init_from)
    card = dict(fitted, lineage=[parent.get("name", Path(init_from).stem), name], parent_file=Path(init_from).name,
                command=command, cpu_seconds=round(time.process_time() - cpu_start, 1), training_cpu_hours=0.0)
    card["data"] = dict(folder=Path(data).name, crops=int(crops), **fitted.get("data", {}))
    return export_weights(model, out, name, description=description, card=card)


def load_trained(state_path: str | Path, config: dict):
    """The model of a run's checkpoint or snapshot (``checkpoint.pt``, ``snapshots/stepN.pt``),
    built from the run's ``config.json`` contents. Returns (model, the saved dict, whose
    ``step`` is the training step)."""
    state = torch.load(state_path, map_location="cpu", weights_only=False)
    model = build_model(config["architecture"], **config.get("model_config", {}))
    model.load_state_dict(state["model"])
    return model, state


def read_log(path: str | Path) -> list[dict]:
    """The records of a run's ``log.jsonl`` (an empty list if there is none)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cpu_seconds(records: list[dict], threads: int = 1, up_to_step: int | None = None) -> float:
    """CPU time of a run from its log records, up to ``up_to_step`` (default: all).

    Each record's ``seconds`` is the run's cumulative wall time; the time between two
    records counts once per process that trained it (``processes``, 1 if absent: a run
    may move between one process and torchrun's several when it is resumed) and per
    torch thread. On a shared machine wall time overstates the work, so this is an upper
    bound of the compute used.
    """
    total, previous = 0.0, 0.0
    for record in records:
        if up_to_step is not None and record["step"] > up_to_step:
            break
        total += (record["seconds"] - previous) * record.get("processes", 1) * threads
        previous = record["seconds"]
    return total


def write_probe_hints(weights_path: str | Path, data_folder: str | Path) -> Path | None:
    """Write the encoder hints of a weight file, measured (on its fp16-rounded weights, as
    loaded) on :func:`~neurocodec.train.data.probe_crops` of the training folder. Returns
    their path, or None (with a warning) for an entropy model without rate-distortion
    rounding or training images too small to probe; the model then codes with plain
    rounding."""
    import warnings

    from ..zoo.weights import load_weights, write_encoder_hints
    from .data import probe_crops

    model = load_weights(weights_path)
    if not model.entropy_model.rd_rounding:
        return None
    probe = torch.from_numpy(probe_crops(data_folder, model.pad_multiple)).permute(0, 3, 1, 2).float() / 255.0
    try:
        return write_encoder_hints(model, weights_path, probe)
    except ProbeTooSmallError as error:
        warnings.warn(f"no encoder hints written for {weights_path}: {error}", stacklevel=2)
        return None
