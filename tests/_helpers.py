"""Helpers shared by several test modules (imported as ``_helpers``: pytest puts tests/ on
the path because the folder is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def load_module(name: str, path: Path):
    """Import the Python file ``path`` (a benchmark script, another test module) as module
    ``name``, once per process."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def export_tiny(model, folder: Path, name: str, description: str) -> Path:
    """Export a test model as ``folder/name.safetensors`` (tables built) and return the path."""
    from neurocodec.zoo import export_weights

    path = Path(folder) / f"{name}.safetensors"
    export_weights(model, path, name, description=description)
    return path
