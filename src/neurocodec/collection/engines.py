"""Engines that run a job's tasks in parallel: a local process pool, or Ray.

Both take the job's :class:`~.worker.Spec` and its tasks and yield ``(record, latents)``
in completion order, from :class:`~.worker.Worker` objects that live in the worker
processes (one model load per worker, not per file). A worker process that dies fails
the files it had in flight (recorded, like any failed file) and the job goes on.

Ray is imported only inside :func:`run_ray`, so nothing here needs it.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Iterable, Iterator

from .manifest import CollectionError
from .worker import Spec, Task, Worker, failed_record

ENGINES = ("local", "ray")
#: Tasks queued per worker beyond the one it is working on, so no worker waits for the
#: driver between files.
QUEUED_PER_WORKER = 1


class EngineUnavailableError(CollectionError):
    """The engine asked for cannot run here (Ray not installed, or no cluster at --address)."""


def usable_cpus() -> int:
    """CPU cores this process may run on (the local engine's default worker count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run(engine: str, spec: Spec, tasks: Iterable[Task], workers: int | None, address: str | None = None
        ) -> Iterator[tuple[dict, object]]:
    """Run ``tasks`` on ``engine`` with ``workers`` processes (None: one per CPU of the
    machine or of the Ray cluster; never more than there are tasks). ``address`` is the
    Ray cluster to join (Ray only)."""
    tasks = list(tasks)
    if engine == "local":
        if address:
            raise CollectionError("--address is for the Ray engine; the local engine runs on this machine")
        return run_local(spec, tasks, min(workers or usable_cpus(), len(tasks)))
    if engine == "ray":
        return run_ray(spec, tasks, None if workers is None else min(workers, len(tasks)), address)
    raise CollectionError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


# --------------------------------------------------------------------------- local

_LOCAL_WORKER: Worker | None = None


def _init_local(spec: Spec) -> None:
    import signal

    global _LOCAL_WORKER
    # Ctrl-C reaches every process of the terminal's group; only the driver acts on it
    # (it stops handing out files and lets the files in flight finish), so workers
    # ignore it instead of each printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _LOCAL_WORKER = Worker(spec)


def _run_local(task: Task):
    return _LOCAL_WORKER.run(task)


def _ready() -> None:
    """Runs in a new pool to check that its processes start at all."""


def run_local(spec: Spec, tasks: Iterable[Task], workers: int) -> Iterator[tuple[dict, object]]:
    """A pool of ``workers`` processes on this machine (started with "spawn": forking a
    process that has loaded torch can deadlock in its thread pools)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    queue = deque(tasks)
    context = multiprocessing.get_context("spawn")
    while queue:
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_local, initargs=(spec,))
        pending: dict = {}
        broken = False
        try:
            try:
                pool.submit(_ready).result()
            except BrokenProcessPool:
                broken = True
                raise CollectionError(
                    "the local worker processes could not start; a script that calls encode_dir or decode_dir "
                    "must do so under 'if __name__ == \"__main__\":' (workers are started with 'spawn', which "
                    "imports the main module again)") from None
            while (queue or pending) and not broken:
                while queue and len(pending) < workers * (1 + QUEUED_PER_WORKER):
                    task = queue.popleft()
                    pending[pool.submit(_run_local, task)] = task
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = pending.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        broken = True
                        yield _died(spec, task, "a worker process died (crash or out of memory)"), None
            # Which in-flight file killed the pool is unknown: all of them are recorded as
            # failed (--retry-failed tries them again) and a new pool takes the rest.
            for task in pending.values():
                yield _died(spec, task, "a worker process died (crash or out of memory)"), None
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)


def _died(spec: Spec, task: Task, what: str) -> dict:
    return failed_record(spec, task, f"{task.path}: {what} while this file was in flight")


# --------------------------------------------------------------------------- Ray


def start_ray(address: str | None = None, num_cpus: int | None = None, attempts: int = 2) -> bool:
    """Connect to Ray: the runtime this process already has (returns False), else the
    cluster at ``address``, else a new local runtime with ``num_cpus`` CPUs (default: the
    usable cores); returns True when this call started or joined it (the caller shuts it
    down). A local start is tried ``attempts`` times: Ray gives its node a fixed 30 s to
    come up, which a heavily loaded machine can miss once.

    Raises EngineUnavailableError: Ray is not installed, the cluster is unreachable, or
    the local runtime did not start.
    """
    try:
        import ray
    except ImportError:
        raise EngineUnavailableError("the Ray engine needs Ray: pip install 'neurocodec[ray]'") from None
    import logging

    if ray.is_initialized():
        return False
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    if address:
        try:
            ray.init(address=address, **options)
        except ConnectionError as exc:
            raise EngineUnavailableError(f"cannot reach a Ray cluster at {address}: {' '.join(str(exc).split())}"
                                         ) from None
        return True
    for attempt in range(attempts):
        try:
            ray.init(num_cpus=num_cpus or usable_cpus(), **options)
            return True
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception when its node times out
            ray.shutdown()
            if attempt == attempts - 1:
                raise EngineUnavailableError(f"a local Ray runtime did not start: {' '.join(str(exc).split())}"
                                             ) from None
    return False  # not reached


def run_ray(spec: Spec, tasks: Iterable[Task], workers: int | None, address: str | None
            ) -> Iterator[tuple[dict, object]]:
    """Ray actors, one :class:`Worker` each, fed a bounded number of files at a time.

    Joins the cluster at ``address`` (e.g. ``auto`` on a cluster node, or
    ``ray://head:10001``), uses the Ray runtime this process has already started, or
    else starts a local one with ``workers`` CPUs. Workers read sources and write outputs
    themselves, so on a cluster both paths must be the same on every node (a shared file
    system); only records (and latents) travel back to the driver.
    """
    started = start_ray(address, workers)
    import ray

    actors: list = []
    queue = deque(tasks)
    try:
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // spec.threads))
        remote = ray.remote(num_cpus=spec.threads, max_restarts=-1, max_task_retries=0)(Worker)
        actors = [remote.remote(spec) for _ in range(min(workers, len(queue)))]
        pending: dict = {}          # object ref -> (task, actor index)
        load = [0] * len(actors)    # files submitted to each actor and not yet returned
        while queue or pending:
            for k, actor in enumerate(actors):
                while queue and load[k] < 1 + QUEUED_PER_WORKER:
                    task = queue.popleft()
                    pending[actor.run.remote(task)] = (task, k)
                    load[k] += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                task, k = pending.pop(ref)
                load[k] -= 1
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayActorError:  # the actor restarts by itself (max_restarts)
                    yield _died(spec, task, "the Ray worker died (crash or out of memory)"), None
                except ray.exceptions.RayError as exc:
                    yield failed_record(spec, task, f"{task.path}: Ray error: {' '.join(str(exc).split())[:300]}"), None
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
