"""Multi-process training with torch.distributed: what :func:`neurocodec.train.train` needs
to run under ``torchrun`` (DistributedDataParallel, one process per CPU socket / GPU).

The training loop asks :func:`setup` for a :class:`Context` and uses it everywhere it
must behave differently with several processes; with one process (no ``torchrun``, or
``WORLD_SIZE=1``) every method is the identity, so single-process training is exactly
what it was before distributed training existed.

How a run is split (the decisions, also in docs/scale-out.md):

* ``TrainConfig.batch`` is the *global* batch: each of the N processes trains on
  ``batch / N`` crops and DDP averages the gradients, so one step has the same
  meaning (and the same learning rate is right) for any N.
* Every process draws the whole global batch from the same seeded numpy stream and
  keeps its own slice (:meth:`Context.part`), which makes the crops and qualities of a
  step independent of N: the checkpoint's numpy state is valid for any world size.
* The quantisation noise (torch's generator) is per process. The checkpoint keeps each
  process's torch state; a resume with the same N restores them (exact resume), a
  resume with another N reseeds process r with ``(seed, step, r)``: the run goes on
  correctly but is not bit-identical to an uninterrupted one.
* Rank 0 alone writes config.json, log.jsonl, checkpoints and snapshots, and shows the
  progress bar; it reads the checkpoint and sends it to the others, so only rank 0
  needs the run folder (every node needs the training images).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch


def env_rank() -> int:
    """This process's rank as torchrun sets it (0 when not under torchrun)."""
    return int(os.environ.get("RANK", "0"))


def env_world_size() -> int:
    """The number of training processes as torchrun sets it (1 when not under torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@dataclass
class Context:
    """This process's place in a (possibly one-process) training run."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # the process group was created by setup() and is destroyed by close()

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def part(self, global_batch: int) -> slice:
        """This process's slice of a global batch of ``global_batch`` samples.

        Raises ValueError if the batch does not split evenly (unequal slices would weight
        the processes' gradients unequally in DDP's average).
        """
        if global_batch % self.world_size:
            raise ValueError(f"the batch of {global_batch} crops does not split evenly over {self.world_size} "
                             "processes; use a batch that is a multiple of the number of processes")
        size = global_batch // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to call in training: DDP around ``model`` with several processes.

        DDP registers the parameters that require gradients when it is built, so the loop
        wraps again whenever it freezes or unfreezes parameters. ``static_graph``: between
        two wraps every step uses the same parameters, which lets DDP cope with parameters
        the loss never reaches (in some configurations) without searching the autograd
        graph at every step as ``find_unused_parameters`` would.
        """
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        _outputs_visible_to_ddp()
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, static_graph=True)

    def mean(self, values: list[float]) -> list[float]:
        """Element-wise mean of ``values`` over the processes (float64)."""
        if not self.distributed:
            return values
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return [float(v) / self.world_size for v in tensor.cpu()]

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any (for decisions all must share,
        such as stopping at a time limit)."""
        if not self.distributed:
            return bool(flag)
        import torch.distributed as dist

        tensor = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every process (any picklable object)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]

    def gather(self, obj) -> list:
        """Every process's ``obj``, in rank order, on every process."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def close(self, clean: bool = True) -> None:
        """Leave the process group this context created (no-op otherwise).

        ``clean``: every process got here without an error, so they first wait for each
        other; one leaving while another still talks to it can abort the other at exit.
        """
        if self.owns_group:
            import gc

            import torch.distributed as dist

            # DistributedDataParallel's reducer keeps the group alive through reference
            # cycles; free it now, not during interpreter shutdown, where gloo aborts.
            gc.collect()
            if clean:
                dist.barrier()
            dist.destroy_process_group()
            self.owns_group = False


def _outputs_visible_to_ddp() -> None:
    """Register the models' typed output (a dataclass) as a pytree node, if nothing has.

    DDP finds the tensors a forward returns by flattening its output as a pytree; a
    dataclass it cannot flatten hides them, and with ``static_graph`` the gradients are
    then silently not averaged (each process drifts on its own; the two-process test
    catches it).
    """
    from torch.utils import _pytree as pytree

    from ..models.outputs import ModelOutput

    if ModelOutput not in pytree.SUPPORTED_NODES:
        pytree.register_dataclass(ModelOutput)


def setup(device: str = "cpu") -> Context:
    """Join the process group torchrun describes (env:// rendezvous), if any.

    ``device``: ``"cpu"`` (backend gloo) or ``"cuda"`` (backend nccl, one GPU per
    process, chosen by LOCAL_RANK). Outside torchrun (or with one process) nothing is
    initialised and the context is the single-process one.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no GPU")
    import torch.distributed as dist

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else env_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = torch.device("cuda", local_rank) if device == "cuda" else torch.device("cpu")
    if world <= 1:
        return Context(device=torch.device("cuda", 0) if device == "cuda" else target)
    if device == "cuda":
        torch.cuda.set_device(target)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
        owns = True
    return Context(rank=dist.get_rank(), world_size=dist.get_world_size(), device=target, owns_group=owns)


def derived_seed(seed: int, step: int, rank: int) -> int:
    """A seed for process ``rank`` at ``step`` of a run seeded ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def idle_cores() -> tuple[int, int, float]:
    """(cores this process may use, how many of them are idle, the 1-minute load average).

    Idle cores are the usable ones less the load average, rounded (a core busy with
    another training job counts as busy); where the load average is unknown (Windows), all
    usable cores count as idle.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return usable, usable, float("nan")
    return usable, max(0, min(usable, usable - round(load))), load


def choose_nproc(batch: int, threads: int = 1, device: str = "cpu") -> tuple[int, str]:
    """How many training processes ``neurocodec train`` starts when ``--nproc`` is not given,
    and why (one line for its output).

    On the CPU: one process per idle core (``threads`` cores each), at most as many as split
    the global ``batch`` evenly, at least one. On CUDA: one process (one GPU); ``--nproc N``
    trains on N GPUs.
    """
    if device == "cuda":
        return 1, "one GPU; --nproc N trains on N GPUs"
    usable, idle, load = idle_cores()
    n = max(1, idle // max(1, threads))
    while n > 1 and batch % n:
        n -= 1
    why = f"{idle} of {usable} cores idle, 1-minute load average {load:.2f}"
    if threads > 1:
        why += f", {threads} threads per process"
    if n < max(1, idle // max(1, threads)):
        why += f", batch {batch} splits evenly over {n}"
    return n, why


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``python -m neurocodec.train ARGV`` in ``nproc`` processes on this machine, as
    ``torchrun --standalone --nproc_per_node NPROC`` would (a private rendezvous on a free
    local port), with torchrun's agent in this process. Returns 0, or 1 if a process
    failed (its own error message is already on stderr; torchrun's report of it is not
    repeated). For several machines call torchrun directly (docs/scale-out.md).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args(["--standalone", "--nproc_per_node", str(nproc),
                                         "-m", "neurocodec.train", *argv])
    try:
        run(args)
    except ChildFailedError:
        return 1
    except SignalException:  # Ctrl-C or SIGTERM: the agent has stopped the processes
        raise KeyboardInterrupt from None
    return 0
