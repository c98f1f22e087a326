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
    return [{k: v for k, v in row.items() if k not in ("seconds", "data_wait")} for row in rows]


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


# --------------------------------------------------------------------------- #
# TrainConfig: validated once, options described once, train imports no cli
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("change, field, fragment", [
    ({"steps": 0}, "steps", "at least 1"),
    ({"lr": -1.0}, "lr", "positive"),
    ({"integer_qualities": 1.5}, "integer_qualities", "[0, 1]"),
    ({"rate_proxy": "median"}, "rate_proxy", "noise, round"),
    ({"precision": "fp16"}, "precision", "auto, fp32, bf16"),
    ({"architecture": "no-such-arch"}, "architecture", "no-such-arch"),
    ({"init_shrink": True}, "init_shrink", "needs init_from"),
    ({"model_config": {"no_such_option": 3}}, "model_config", "no_such_option"),
    ({"min_quality": 5.0, "max_quality": 2.0}, "min_quality", "max_quality"),
])
def test_config_validation_names_the_field(change, field, fragment):
    from neurocodec.train import TrainConfig, TrainConfigError

    cfg = TrainConfig(data="unused", **change)
    with pytest.raises(TrainConfigError) as info:
        cfg.validate()
    assert info.value.field == field and isinstance(info.value, ValueError)
    assert str(info.value).startswith(field) and fragment in str(info.value)
    # the commands render the same sentence with their flags
    from neurocodec.train.command import flag_of

    assert info.value.render(flag_of).startswith(flag_of(field))
    assert TrainConfig(data="unused").validate() is not None


def test_every_flag_is_described_once_and_both_commands_agree():
    """The options come from TrainConfig's field descriptions: neurocodec train and
    python -m neurocodec.train build the same parser, every config flag is there and
    round-trips through the torchrun argv."""
    import argparse

    from neurocodec.cli import build_parser
    from neurocodec.train.command import add_arguments, config_from_args, torchrun_argv
    from neurocodec.train.config import RATE_PROXY_NAMES, flag_fields
    from neurocodec.entropy import RATE_PROXIES

    assert RATE_PROXY_NAMES == tuple(RATE_PROXIES)
    own = argparse.ArgumentParser()
    add_arguments(own)
    cli = build_parser()
    train_cli = next(a for a in cli._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    flags = lambda p: sorted(s for a in p._actions for s in a.option_strings if s not in ("-h", "--help", "--debug"))  # noqa: E731
    assert flags(own) == flags(train_cli)
    for f in flag_fields():
        assert f.metadata["flag"] in flags(own) and f.metadata["help"]
    argv = ["d", "r", "--steps", "7", "--warmup", "2", "--precision", "fp32", "--init-from", "w", "--init-shrink",
            "--model-option", "refine_blocks=0", "--lr-drop-at", "0.5", "--nproc", "2", "--quiet"]
    args = own.parse_args(argv)
    again = own.parse_args(torchrun_argv(args))
    assert vars(again) == {**vars(args), "nproc": None}
    cfg = config_from_args(again)
    assert (cfg.steps, cfg.entropy_warmup, cfg.precision, cfg.init_shrink, cfg.model_config, cfg.lr_drop_at) == (
        7, 2, "fp32", True, {"refine_blocks": 0}, 0.5)


def test_train_package_never_imports_cli(subprocess_env):
    """python -m neurocodec.train --help runs without the CLI package (and without torch):
    ``-X importtime`` lists every module the command imported."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "neurocodec.train", "--help"],
                            env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--precision" in result.stdout and "--nproc" in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "neurocodec.train.command" in imported
    assert not {m for m in imported if m.split(".")[0] in ("torch", "numpy") or m.startswith("neurocodec.cli")}


def test_module_command_trains_and_reports(tiny_folder: Path, tmp_path: Path, subprocess_env):
    """python -m neurocodec.train: a 2-step run in one process; its output names the
    precision and the data-wait share; a usage error exits 2 with the flag named."""
    run = tmp_path / "run"
    options = ["--steps", "2", "--batch", "2", "--crop", "32", "--log-every", "1", "--nproc", "1", "--quiet",
               "--model-option", "refine_blocks=0", "--model-option", "pixel_hidden=0",
               "--model-option", "hyper_channels=8", "--model-option", "hyper_hidden=16"]
    env = {**subprocess_env, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "neurocodec.train", str(tiny_folder), str(run), *options],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "starting run" in result.stdout and ("bf16" in result.stdout or "fp32" in result.stdout)
    assert "waiting for data" in result.stdout
    rows = _log(run)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(0.0 <= json.loads(line)["data_wait"] <= 1.0 for line in _log_lines(run))
    bad = subprocess.run([sys.executable, "-m", "neurocodec.train", str(tiny_folder), str(tmp_path / "bad"),
                          "--steps", "0"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--steps must be" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- #
# precision, processes, data loading, time limit
# --------------------------------------------------------------------------- #


def test_auto_precision_follows_the_cpu_flags(monkeypatch):
    import torch

    from neurocodec.train import precision

    assert precision.bf16_flags_in("processor : 0\nflags\t\t: fpu sse avx512f avx512_bf16\n") == ("avx512_bf16",)
    assert precision.bf16_flags_in("processor : 0\nflags\t\t: fpu sse avx2\n") == ()
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("amx_bf16",))
    assert precision.resolve("auto", cpu)[0] is torch.bfloat16
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    dtype, note = precision.resolve("auto", cpu)
    assert dtype is None and "no native bf16" in note
    assert precision.resolve("bf16", cpu)[0] is torch.bfloat16 and precision.resolve("fp32", cpu)[0] is None
    # asked for bf16 where it is emulated: still granted, with a warning that says what auto would do
    assert "WARNING" in precision.resolve("bf16", cpu)[1] and "fp32" in precision.resolve("bf16", cpu)[1]
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    assert "WARNING" not in precision.resolve("bf16", cpu)[1]


def test_bf16_runs_only_the_transforms_in_bf16():
    """Under precision bf16 the transforms' convolutions run in bfloat16, the prior and
    the rate terms in float32, and everything handed on is float32."""
    import torch

    from neurocodec.models import build_model
    from neurocodec.train import precision

    torch.manual_seed(0)
    small = dict(refine_blocks=1, refine_hidden=16, pixel_hidden=8, hyper_channels=8, hyper_hidden=16)
    model = build_model("block-hyperprior", **small)
    seen: dict[str, set] = {}

    def record(name):
        return lambda module, inputs, output: seen.setdefault(name, set()).add(output.dtype)

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(record("entropy" if name.startswith("entropy_model") else "transform"))
    precision.autocast_transforms(model, torch.device("cpu"), torch.bfloat16)
    x = torch.rand(2, 3, 64, 64)
    out = model(x, torch.tensor([2.0, 6.0]), "round")
    assert seen["transform"] == {torch.bfloat16} and seen["entropy"] == {torch.float32}
    assert out.x_hat.dtype == out.y_bits.dtype == out.z_bits.dtype == torch.float32
    assert "analysis" not in type(model).__dict__ or type(model).analysis is not model.analysis  # instance only
    assert build_model("block-hyperprior", **small).analysis.__func__ is type(model).analysis


def test_bf16_training_face_still_predicts_the_coded_bytes():
    """The shipped default trained in bf16: its training-face rate ("round") with the
    transforms in bf16 is within the tolerance test_mcquic / test_context hold the training
    face to (3 %) of the bytes the coder writes, and within 1 % of the fp32 estimate."""
    from neurocodec.zoo import load_model

    model = load_model()  # the process-wide cached default: restore what this test changes
    hints = model.channel_energy
    model.eval()
    model.channel_energy = None  # plain rounding: the symbols the training face charges
    try:
        _check_bf16_face(model)
    finally:
        model.channel_energy = hints
        for name in ("analysis", "synthesis"):
            model.__dict__.pop(name, None)


def _check_bf16_face(model) -> None:
    import torch

    from neurocodec.train import precision

    rng = np.random.default_rng(2)
    smooth = np.cumsum(np.cumsum(rng.normal(0, 1, (128, 192, 3)), 0), 1)
    image = (smooth - smooth.min()) / np.ptp(smooth)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    for quality in (2.0, 6.0):
        q = torch.tensor([quality])
        with torch.no_grad():
            fp32 = float(model(x, q, "round").bits().sum())
            segments, _ = model.compress(x, quality)
            precision.autocast_transforms(model, torch.device("cpu"), torch.bfloat16)
            try:
                bf16 = float(model(x, q, "round").bits().sum())
            finally:
                del model.analysis, model.synthesis  # back to the class's methods
        coded = 8 * sum(map(len, segments))
        assert abs(bf16 - coded) <= 0.03 * coded + 64, (quality, bf16, fp32, coded)
        assert abs(bf16 / fp32 - 1) < 0.01, (quality, bf16, fp32)


@pytest.mark.parametrize("precision_name", ["fp32", "bf16"])
def test_resume_is_exact_in_each_precision(tiny_folder: Path, tmp_path: Path, precision_name):
    from neurocodec.train import train

    def config():
        cfg = _config(tiny_folder, 4)
        cfg.precision = precision_name
        return cfg

    train(config(), tmp_path / "straight", progress=False)
    train(config(), tmp_path / "resumed", progress=False, stop_after=2)
    train(config(), tmp_path / "resumed", progress=False)
    assert _log(tmp_path / "resumed") == _log(tmp_path / "straight")


def test_prefetcher_keeps_order_and_raises_the_draws_error():
    from neurocodec.train.data import Prefetcher

    counter = iter(range(5))

    def draw():
        value = next(counter)  # StopIteration after 5 items
        return value

    with Prefetcher(draw) as items:
        assert [items.get() for _ in range(5)] == [0, 1, 2, 3, 4]
        with pytest.raises(StopIteration):
            items.get()


def test_time_limit_stops_with_a_checkpoint(tiny_folder: Path, tmp_path: Path):
    import torch

    from neurocodec.train import train

    cfg = _config(tiny_folder, 10_000)
    train(cfg, tmp_path / "run", progress=False, time_limit=0.0)   # stops after the first step
    assert [r["step"] for r in _log(tmp_path / "run")] == [1]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == 1


def test_auto_nproc_uses_idle_cores(monkeypatch):
    from neurocodec.train import distributed

    monkeypatch.setattr(distributed, "idle_cores", lambda: (2, 2, 0.1))
    n, why = distributed.choose_nproc(8)
    assert n == 2 and "2 of 2 cores idle" in why
    assert distributed.choose_nproc(7)[0] == 1                  # 7 crops do not split over 2
    assert distributed.choose_nproc(8, threads=2)[0] == 1       # one process of 2 threads
    monkeypatch.setattr(distributed, "idle_cores", lambda: (2, 1, 1.1))
    n, why = distributed.choose_nproc(8)
    assert n == 1 and "1 of 2 cores idle" in why and "1.10" in why
    monkeypatch.setattr(distributed, "idle_cores", lambda: (2, 0, 2.5))
    assert distributed.choose_nproc(8)[0] == 1
    assert distributed.choose_nproc(8, device="cuda")[0] == 1


def test_channels_last_transforms_give_the_same_step():
    """channels_last (used on CUDA) changes the layout, not the result."""
    import torch

    from neurocodec.models import build_model
    from neurocodec.train.loop import rd_loss, transforms_channels_last

    losses = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = build_model("block-hyperprior", refine_blocks=1, refine_hidden=16, pixel_hidden=8, hyper_channels=8,
                            hyper_hidden=16)
        x = torch.rand(2, 3, 64, 64)
        if channels_last:
            transforms_channels_last(model)
            x = x.contiguous(memory_format=torch.channels_last)
        # "round": no noise (rand_like follows the memory format, so noise would differ)
        losses.append(float(rd_loss(model, x, torch.tensor([2.0, 5.0]), rate_proxy="round")["loss"].detach()))
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_scales_flag_parses_and_travels_to_the_torchrun_processes():
    import argparse

    from neurocodec.train.command import add_arguments, config_from_args, torchrun_argv

    parser = argparse.ArgumentParser()
    add_arguments(parser)  # DATA_DIR RUN_DIR included
    args = parser.parse_args(["d", "r", "--scales", "0.5,0.75,1", "--fresh-only", "--init-from", "w",
                              "--architecture", "block-region"])
    assert args.scales == (0.5, 0.75, 1.0)
    argv = torchrun_argv(args)
    assert argv[argv.index("--scales") + 1] == "0.5,0.75,1.0" and "--fresh-only" in argv
    again = parser.parse_args(argv)
    cfg = config_from_args(again)
    assert cfg.scales == (0.5, 0.75, 1.0) and cfg.fresh_only
    with pytest.raises(SystemExit):
        parser.parse_args(["d", "r", "--scales", "half"])
