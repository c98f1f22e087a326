"""How many torch threads a coding command uses (``--threads N|auto``).

The command is the owner of its process, so it chooses the thread count; the library never
sets process-wide thread counts. ``auto`` gives one thread per idle core: torch's parallel
regions wait for their slowest thread, so a thread on a core that another process keeps
busy makes every region wait for that core (on a 2-core machine with the other core busy,
encoding at 2 threads took 6x the time of 1 thread; ``docs/benchmarks.md``, section
"Threads under contention", ``benchmarks/contention.py``). Standard library only.
"""

from __future__ import annotations

import contextlib
import os


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _runnable_others() -> int | None:
    """Tasks runnable right now besides this one (Linux: /proc/loadavg's 4th field), or None."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - 1)


def auto_threads() -> tuple[int, str]:
    """(threads, why): the idle cores of this process, at least 1.

    A core counts as busy by the larger of two measures: the 1-minute load average (what
    has kept the machine busy) and the tasks runnable right now besides this process (a
    job that started a second ago, which the average does not show yet).
    """
    cores = _usable_cores()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    now = _runnable_others()
    busy = max(load, now or 0)
    idle = max(0, min(cores, round(cores - busy)))
    runnable = "" if now is None else f", {now} other task{'s' if now != 1 else ''} runnable"
    return max(1, idle), f"{idle} of {cores} cores idle (1-minute load average {load:.2f}{runnable}); at least 1 thread"


def resolve(setting: int | str) -> tuple[int, str]:
    """(threads, why) for a ``--threads`` value: a number, or ``"auto"``."""
    if setting == "auto":
        return auto_threads()
    return int(setting), "--threads"


@contextlib.contextmanager
def torch_threads(setting: int | str):
    """Run the body with torch's intra-op threads set by ``--threads``; restored afterwards
    (the CLI is driven in-process by tests). Yields (threads, why)."""
    import torch

    threads, why = resolve(setting)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads, why
    finally:
        torch.set_num_threads(before)
