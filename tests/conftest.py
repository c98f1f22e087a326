"""Shared test set-up.

The test machine has two cores and one of them is usually busy (training), so torch
runs on one thread: the environment variables are set before anything imports torch
(they are inherited by subprocesses too), and a fixture pins torch's intra-op threads
in case something imported it earlier.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:  # a checkout without `pip install -e .`
    sys.path.insert(0, str(SRC))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """torch on one thread (only if a test or the code under test imported it)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def subprocess_env() -> dict:
    """An environment for a Python subprocess that imports this checkout's neurocodec."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return env
