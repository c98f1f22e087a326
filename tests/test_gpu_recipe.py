"""The GPU recipe's plumbing on the CPU: a few seconds of training from the shipped weights
on tiny data, export, evaluation against the shipped model, and the keep-or-drop decision."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a subprocess imports torch, trains ~3 s and codes a small image 8 times
def test_recipe_runs_end_to_end_on_cpu(tmp_path: Path, subprocess_env):
    from PIL import Image

    data, kodak = tmp_path / "train", tmp_path / "kodak"
    data.mkdir()
    kodak.mkdir()
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(0, 1, (160, 160, 3)), 0), 1)
    picture = ((smooth - smooth.min()) / np.ptp(smooth) * 255).astype(np.uint8)
    Image.fromarray(picture).save(data / "a.png")
    Image.fromarray(picture[:64, :96]).save(kodak / "kodim01.png")
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_recipe.py"), "--device", "cpu", "--minutes", "0.05",
               "--data", str(data), "--kodak", str(kodak), "--images", "1", "--batch", "2", "--crop", "64",
               "--scales", "1.0", "--workers", "1", "--out", str(out)]
    result = subprocess.run(command, env={**subprocess_env, "OMP_NUM_THREADS": "1"}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] >= 1 and report["train_seconds"] < 30
    assert [row[0] for row in report["curves"]["shipped"]] == [1.0, 3.0, 5.0, 8.0]
    assert all(row[1] > 0 and row[2] > 20 for curve in report["curves"].values() for row in curve)
    weights = out / "block-hyperprior-mse-gpu.safetensors"
    assert report["kept"] == weights.exists() == (report["bd_rate_vs_shipped"] is not None
                                                  and report["bd_rate_vs_shipped"] < 0)
    card = json.loads((out / "card.json").read_text())
    assert card["architecture"] == "block-hyperprior" and card["card"]["warm_start"] == "block-hyperprior-mse"
    assert card["card"]["training_config"]["init_from"].endswith("block-hyperprior-mse.safetensors")
    assert (out / "run" / "log.jsonl").exists() and (out / "report.md").read_text().startswith("# GPU recipe")
