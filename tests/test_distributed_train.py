"""Distributed training: torchrun with two CPU processes (gloo), identical weights on both
ranks after every step, rank 0 alone writes the run, and a resume with another number of
processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_train import TINY_MODEL, _config, _log, tiny_folder  # noqa: F401 - tiny_folder is a fixture

# Run by torchrun in each process: train 3 steps, record a hash of the weights after every
# step (through train's on_step hook) and the final weights, per rank.
SCRIPT = """
import hashlib, json, os, sys
import torch
from neurocodec.train import TrainConfig, train

data, run, out = sys.argv[1:4]
rank = os.environ["RANK"]

def record(step, model):
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    with open(os.path.join(out, f"rank{rank}.jsonl"), "a") as f:
        f.write(json.dumps({"step": step, "sha256": digest.hexdigest()}) + "\\n")
    if step == 3:
        torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))

cfg = TrainConfig(data=data, model_config=%r, steps=3, batch=2, crop=64, scales=(1.0,),
                  checkpoint_every=2, log_every=1, entropy_warmup=1, seed=3)
train(cfg, run, progress=False, on_step=record)
""" % (TINY_MODEL,)


@pytest.mark.slow  # two processes import torch
def test_torchrun_two_processes_keep_identical_weights(tiny_folder: Path, tmp_path: Path, subprocess_env):
    import torch

    run, out = tmp_path / "run", tmp_path / "ranks"
    out.mkdir()
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(tiny_folder), str(run), str(out)]
    result = subprocess.run(command, env={**subprocess_env, "OMP_NUM_THREADS": "1"}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]

    hashes = [[json.loads(line) for line in (out / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    assert [h["step"] for h in hashes[0]] == [1, 2, 3]
    assert hashes[0] == hashes[1]                              # identical weights after each step
    assert len({h["sha256"] for h in hashes[0]}) == 3          # ... and they did change

    checkpoint = torch.load(run / "checkpoint.pt", weights_only=False)
    assert checkpoint["step"] == 3 and checkpoint["world_size"] == 2
    final = torch.load(out / "rank0.pt")
    assert all(torch.equal(final[k], checkpoint["model"][k]) for k in final)
    noise = checkpoint["rng"]["torch_ranks"]
    assert len(noise) == 2 and not torch.equal(noise[0]["cpu"], noise[1]["cpu"])  # per-process noise
    log = _log(run)
    assert [row["step"] for row in log] == [1, 2, 3]           # one writer: no duplicated lines
    assert all(row["processes"] == 2 for row in log)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.json", "log.jsonl"]

    # resume the 2-process run in 1 process: the data stream goes on, the log continues
    from neurocodec.train import train

    train(_config(tiny_folder, 4), run, progress=False)
    assert [row["step"] for row in _log(run)] == [1, 2, 3, 4]
    assert "processes" not in _log(run)[-1]
    assert torch.load(run / "checkpoint.pt", weights_only=False)["world_size"] == 1


def test_batch_parts_follow_one_stream(tiny_folder: Path):
    """The crops of a global batch do not depend on how many processes share it."""
    from neurocodec.train.data import CropDataset
    from neurocodec.train.distributed import Context

    data = CropDataset(tiny_folder, 32, (1.0,))
    whole_rng, part_rngs = np.random.default_rng(5), [np.random.default_rng(5) for _ in range(2)]
    for _ in range(3):
        whole = data.batch(whole_rng, 4)
        parts = [data.batch(part_rngs[r], 4, Context(rank=r, world_size=2).part(4)) for r in range(2)]
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert all(rng.bit_generator.state == whole_rng.bit_generator.state for rng in part_rngs)
    with pytest.raises(ValueError, match="does not split evenly over 3 processes"):
        Context(rank=0, world_size=3).part(4)


def test_cli_nproc_launches_torchrun(tiny_folder: Path, tmp_path: Path, monkeypatch):
    from neurocodec.cli import main
    from neurocodec.train import distributed

    calls = []
    monkeypatch.setattr(distributed, "launch", lambda nproc, argv: calls.append((nproc, argv)) or 0)
    run = tmp_path / "run"
    assert main(["train", str(tiny_folder), str(run), "--nproc", "2", "--batch", "4", "--steps", "3",
                 "--init-from", "w.safetensors", "--quiet"]) == 0
    assert calls == [(2, [str(tiny_folder), str(run), "--steps", "3", "--batch", "4", "--init-from",
                          "w.safetensors", "--device", "cpu", "--quiet"])]
    assert main(["train", str(tiny_folder), str(run), "--nproc", "3", "--batch", "4"]) == 2   # uneven split
    assert main(["train", str(tiny_folder), str(run), "--nproc", "0"]) == 2
    assert len(calls) == 1


def test_distributed_launch_runs_torchrun_standalone(monkeypatch):
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from neurocodec.train import distributed

    seen = []
    monkeypatch.setattr(torchrun, "run", lambda args: seen.append(args))
    assert distributed.launch(2, ["data", "run", "--steps", "3"]) == 0
    (args,) = seen
    assert (args.standalone, args.nproc_per_node, args.module) == (True, "2", True)
    assert (args.training_script, args.training_script_args) == ("neurocodec.train", ["data", "run", "--steps", "3"])

    def fail(args):
        raise ChildFailedError.__new__(ChildFailedError)  # as torchrun does when a process exits non-zero

    monkeypatch.setattr(torchrun, "run", fail)
    assert distributed.launch(2, ["data", "run"]) == 1


def test_cli_without_nproc_uses_the_idle_cores_and_says_so(tiny_folder: Path, tmp_path: Path, monkeypatch, capsys):
    from neurocodec.cli import main
    from neurocodec.train import distributed

    calls = []
    monkeypatch.setattr(distributed, "launch", lambda nproc, argv: calls.append((nproc, argv)) or 0)
    monkeypatch.setattr(distributed, "idle_cores", lambda: (2, 2, 0.05))
    run = tmp_path / "run"
    assert main(["train", str(tiny_folder), str(run), "--steps", "3", "--quiet"]) == 0
    assert [nproc for nproc, _ in calls] == [2] and "--nproc" not in calls[0][1]
    assert "processes: 2 (2 of 2 cores idle, 1-minute load average 0.05" in capsys.readouterr().out
    # a busy machine: one process, in this one (the loop itself is stubbed out here)
    import neurocodec.train

    trained = []
    monkeypatch.setattr(neurocodec.train, "train", lambda cfg, run_dir, **kw: trained.append(cfg) or run_dir)
    monkeypatch.setattr(distributed, "idle_cores", lambda: (2, 1, 1.2))
    assert main(["train", str(tiny_folder), str(run), "--steps", "3", "--quiet"]) == 0
    assert len(calls) == 1 and len(trained) == 1
    assert "processes: 1 (1 of 2 cores idle" in capsys.readouterr().out
