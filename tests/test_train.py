"""Training: a few steps on a tiny folder, kill, resume, and the log continues exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

TINY_MODEL = {"refine_blocks": 0, "pixel_hidden": 0, "hyper_channels": 8, "hyper_hidden": 16}


@pytest.fixture()
def tiny_folder(tmp_path: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "images" / "nested"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        base = np.linspace(0, 255, 96 * 80).reshape(96, 80)
        img = np.stack([base, np.flipud(base), rng.uniform(0, 255, (96, 80))], -1)
        Image.fromarray(img.astype(np.uint8)).save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return tmp_path / "images"


def _config(data: Path, steps: int):
    from neurocodec.train import TrainConfig

    return TrainConfig(data=str(data), model_config=TINY_MODEL, steps=steps, batch=2, crop=64, scales=(1.0,),
                       checkpoint_every=2, log_every=1, entropy_warmup=1, seed=3)


def _log(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_resume_continues_exactly(tiny_folder: Path, tmp_path: Path):
    from neurocodec.train import train

    straight = tmp_path / "straight"
    train(_config(tiny_folder, 6), straight, progress=False)
    interrupted = tmp_path / "interrupted"
    train(_config(tiny_folder, 6), interrupted, progress=False, stop_after=3)
    assert [r["step"] for r in _log(interrupted)] == [1, 2, 3]
    train(_config(tiny_folder, 6), interrupted, progress=False)
    assert _log(interrupted) == _log(straight)
    assert [r["step"] for r in _log(straight)] == [1, 2, 3, 4, 5, 6]


def test_killed_process_resumes_from_checkpoint(tiny_folder: Path, tmp_path: Path):
    """SIGKILL in the middle of a run: the rerun truncates the log to the checkpoint and
    continues with the same losses as an uninterrupted run."""
    run = tmp_path / "killed"
    script = (
        "import sys, json; sys.path.insert(0, %r)\n"
        "from neurocodec.train import TrainConfig, train\n"
        "cfg = TrainConfig(data=%r, model_config=%r, steps=400, batch=2, crop=64, scales=(1.0,),"
        " checkpoint_every=2, log_every=1, entropy_warmup=1, seed=3)\n"
        "train(cfg, %r, progress=False)\n"
    ) % (str(Path(__file__).resolve().parents[1] / "src"), str(tiny_folder), TINY_MODEL, str(run))
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(_log_lines(run)) < 5:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    import torch

    checkpoint_step = torch.load(run / "checkpoint.pt", weights_only=False)["step"]
    assert checkpoint_step >= 2

    from neurocodec.train import train

    cfg = _config(tiny_folder, 400)  # same schedule as the killed run
    train(cfg, run, progress=False, stop_after=2)
    resumed = _log(run)
    assert [r["step"] for r in resumed] == list(range(1, checkpoint_step + 3))

    reference = tmp_path / "reference"
    train(cfg, reference, progress=False, stop_after=checkpoint_step + 2)
    assert resumed == _log(reference)


def _log_lines(run: Path) -> list[str]:
    try:
        return [ln for ln in (run / "log.jsonl").read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        return []


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    from neurocodec.train import train

    with pytest.raises(FileNotFoundError, match="training folder not found"):
        train(_config(tmp_path / "nope", 2), tmp_path / "run", progress=False)


def test_training_ms_ssim_matches_metric():
    import torch

    from neurocodec.metrics import ms_ssim as reference
    from neurocodec.train.losses import ms_ssim

    rng = np.random.default_rng(1)
    smooth = np.cumsum(rng.random((192, 192, 3)), axis=1)
    a = (smooth / smooth.max() * 255).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 6, a.shape), 0, 255).astype(np.uint8)
    as_tensor = lambda v: torch.from_numpy(v).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    assert abs(float(ms_ssim(as_tensor(a), as_tensor(b))) - reference(a, b)) < 0.005
    assert float(ms_ssim(as_tensor(a), as_tensor(a))) == pytest.approx(1.0, abs=1e-5)


def test_ms_ssim_distortion_trains(tiny_folder: Path, tmp_path: Path):
    from neurocodec.train import train

    cfg = _config(tiny_folder, 2)
    cfg.distortion = "ms-ssim"
    train(cfg, tmp_path / "msssim", progress=False)
    assert [r["step"] for r in _log(tmp_path / "msssim")] == [1, 2]


def test_cpu_seconds_counts_each_stretch_once_per_process_and_thread():
    from neurocodec.train.export import cpu_seconds

    # one process for 0..100 s, then resumed under torchrun with 2 processes
    records = [{"step": 20, "seconds": 40.0}, {"step": 40, "seconds": 100.0},
               {"step": 60, "seconds": 130.0, "processes": 2}, {"step": 80, "seconds": 150.0, "processes": 2}]
    assert cpu_seconds(records) == 100.0 + 2 * 30.0 + 2 * 20.0
    assert cpu_seconds(records, threads=3) == 3 * 200.0
    assert cpu_seconds(records, up_to_step=60) == 160.0
    assert cpu_seconds(records, up_to_step=10) == 0.0
    assert cpu_seconds([]) == 0.0


def test_quality_draw_with_integer_share():
    """A share of 0 draws exactly the continuous stream earlier runs drew (so they resume
    exactly); a share of 1 trains only the integer rows, every one of them reachable; any
    share stays inside [min_quality, max_quality]."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from neurocodec.train import TrainConfig
    from neurocodec.train.loop import draw_qualities

    @settings(max_examples=40, deadline=None)
    @given(share=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1), low=st.sampled_from([1.0, 1.5, 2.0]),
           high=st.sampled_from([6.5, 8.0]))
    def check(share, seed, low, high):
        cfg = TrainConfig(data="unused", batch=64, integer_qualities=share, min_quality=low, max_quality=high)
        q = draw_qualities(cfg, np.random.default_rng(seed))
        assert q.shape == (64,) and np.all((q >= low) & (q <= high))
        if share == 0.0:
            np.testing.assert_array_equal(q, np.random.default_rng(seed).uniform(low, high, 64))
        if share == 1.0:
            assert np.all(q == np.round(q))

    check()
    cfg = TrainConfig(data="unused", batch=4000, integer_qualities=1.0)
    assert set(draw_qualities(cfg, np.random.default_rng(0)).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0}


def test_integer_share_outside_0_1_is_refused(tiny_folder: Path, tmp_path: Path):
    from neurocodec.train import TrainConfig, train

    with pytest.raises(ValueError, match="integer_qualities"):
        train(TrainConfig(data=str(tiny_folder), model_config=TINY_MODEL, steps=1, batch=1, crop=64,
                          integer_qualities=1.5), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything is written
