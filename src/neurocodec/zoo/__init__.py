"""Model zoo: the models shipped inside the package, loaded offline.

Every ``*.safetensors`` file in ``neurocodec/zoo/weights/`` is a model; its name is the
file's stem. Nothing is ever downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import UnknownModelError
from .weights import (export_weights, load_state_into, load_weights, read_metadata, weight_hash,
                      write_encoder_hints)

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "block-hyperprior-mse"


@dataclass(frozen=True)
class ModelInfo:
    """What ``neurocodec models`` lists about a shipped model."""

    name: str
    architecture: str
    description: str
    weight_hash: bytes
    path: Path
    size_bytes: int
    card: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_MODEL


def _info(path: Path) -> ModelInfo:
    stat = path.stat()
    return _info_cached(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=None)
def _info_cached(path: Path, mtime_ns: int, size: int) -> ModelInfo:  # keyed on mtime: files may be replaced
    meta = read_metadata(path)
    return ModelInfo(name=path.stem, architecture=meta["architecture"], description=meta.get("description", ""),
                     weight_hash=weight_hash(path), path=path, size_bytes=path.stat().st_size, card=meta["card"])


def file_info(path) -> ModelInfo:
    """Info of any weight file (not necessarily shipped). Raises FileNotFoundError."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    return _info(path)


def list_models() -> list[ModelInfo]:
    """All shipped models, sorted by name."""
    return [_info(p) for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))]


def model_info(name: str | None = None) -> ModelInfo:
    """Info of model ``name`` (None = the default). Unknown names raise UnknownModelError."""
    name = DEFAULT_MODEL if name is None else name
    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.is_file():
        known = ", ".join(m.name for m in list_models()) or "none"
        raise UnknownModelError(f"unknown model {name!r}; shipped models: {known}")
    return _info(path)


@lru_cache(maxsize=8)
def load_model(name: str | None = None):
    """The model ``name`` (None = default), loaded once per process and cached. Eval mode."""
    return load_weights(model_info(name).path)


def find_model(name: str, expected_hash: bytes) -> ModelInfo:
    """The shipped model a stream asks for, checking its weight hash.

    Raises UnknownModelError saying which model and hash the stream needs.
    """
    try:
        info = model_info(name)
    except UnknownModelError:
        raise UnknownModelError(
            f"stream needs model {name!r} (weights {expected_hash.hex()}), which this installation does not ship; "
            f"shipped: {', '.join(m.name for m in list_models()) or 'none'}") from None
    if info.weight_hash != expected_hash:
        raise UnknownModelError(
            f"stream needs model {name!r} with weights {expected_hash.hex()}, but the shipped {name!r} has weights "
            f"{info.weight_hash.hex()} (a different release of neurocodec wrote this file)")
    return info


__all__ = ["DEFAULT_MODEL", "ModelInfo", "WEIGHTS_DIR", "export_weights", "file_info", "find_model", "list_models",
           "load_model", "load_state_into", "load_weights", "model_info", "weight_hash", "write_encoder_hints"]
