"""Realism decoders (issue 21): correction networks that pair with a shipped model's MSE decoder.

A realism file ``weights/realism/NAME.safetensors`` holds the fp16 parameters of a
:class:`~neurocodec.transforms.realism.RealismSynthesis` and, as metadata, ``kind``
(``realism-decoder``), ``config`` (JSON constructor arguments), ``base_digest`` (the
decoding digest of the weights it was trained on, :func:`~neurocodec.zoo.weights.decoding_digest`)
and ``card`` (JSON: steps, CPU-hours, command). The pairing goes by decoding digest, so a
card rewrite of the base model (which changes its weight hash, not its pixels) keeps it.

Nothing here is loaded until a decode asks for realism.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from . import WEIGHTS_DIR, ModelInfo
from .weights import read_metadata

REALISM_DIR = WEIGHTS_DIR / "realism"
KIND = "realism-decoder"


def realism_files() -> list[Path]:
    """Every shipped realism file."""
    return sorted(REALISM_DIR.glob("*.safetensors")) if REALISM_DIR.is_dir() else []


def find_realism(info: ModelInfo) -> Path | None:
    """The realism file trained on the model ``info`` describes (same decoding digest), or None."""
    for candidate in realism_files():
        meta = read_metadata(candidate)
        if meta.get("kind") == KIND and meta.get("base_digest") == info.decoding_digest:
            return candidate
    return None


@lru_cache(maxsize=4)
def load_realism(path: Path):
    """The :class:`~neurocodec.transforms.realism.RealismSynthesis` of a realism file (float32, eval mode)."""
    from safetensors.torch import load_file

    from ..transforms.realism import RealismSynthesis

    meta = read_metadata(path)
    module = RealismSynthesis(**meta["config"])
    module.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    return module.eval()


__all__ = ["KIND", "REALISM_DIR", "find_realism", "load_realism", "realism_files"]
