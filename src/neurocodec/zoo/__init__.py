"""Model zoo: the models shipped inside the package, loaded offline.

Where models come from, in the order a name is looked up:

1. **Shipped**: every ``*.safetensors`` file in ``neurocodec/zoo/weights/``.
2. **Your own**: the folders named in the environment variable ``NEUROCODEC_MODEL_PATH``
   (separated like ``PATH``), e.g. where ``neurocodec train --export`` wrote a model. A model
   is known by the name recorded in its file (``--name``), or else by the file's stem.
3. **Decode-only** (``neurocodec/zoo/weights/legacy/``): the weights of earlier releases,
   kept so that every stream a release wrote stays decodable. They are never used to encode
   and are not listed by ``neurocodec models``.

Compatibility policy (docs/format.md, "Old streams"): ``zoo/releases.json`` records, for each
release, the weight hash of every shipped model and its decoding digest (what decoding depends
on: tensors, architecture, config). A stream decodes if some available weight file has the
hash it names, or the decoding digest that hash was released with (a card rewritten, the
tensors identical). The package version changes whenever a shipped model does (a test holds it).
Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import UnknownModelError
from ..format import weight_hash_of
from .weights import (decoding_digest_of, export_weights, load_state_into, load_weights, read_metadata, weight_hash,
                      write_encoder_hints)

WEIGHTS_DIR = Path(__file__).parent / "weights"
LEGACY_DIR = WEIGHTS_DIR / "legacy"
RELEASES_FILE = Path(__file__).parent / "releases.json"
MODEL_PATH_ENV = "NEUROCODEC_MODEL_PATH"
DEFAULT_MODEL = "block-hyperprior-mse"


@dataclass(frozen=True)
class ModelInfo:
    """What ``neurocodec models`` lists about a model.

    ``origin`` is ``"shipped"``, ``"search path"`` (``NEUROCODEC_MODEL_PATH``), ``"file"``
    (a weight file named directly) or ``"legacy"`` (decode-only). ``stream_hashes`` are the
    weight hashes of the streams this file decodes: its own, and those of earlier releases
    with the same decoding digest. ``decoding_digest`` is the file's
    (:func:`~neurocodec.zoo.weights.decoding_digest`): what pairs it with a realism decoder.
    """

    name: str
    architecture: str
    description: str
    weight_hash: bytes
    path: Path
    size_bytes: int
    card: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    origin: str = "shipped"
    stream_hashes: frozenset = field(default_factory=frozenset, compare=False, hash=False)
    decoding_digest: str = field(default="", compare=False, hash=False)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_MODEL and self.origin == "shipped"

    @property
    def decode_only(self) -> bool:
        return self.origin == "legacy"


def _info(path: Path, origin: str) -> ModelInfo:
    stat = path.stat()
    return _info_cached(path, stat.st_mtime_ns, stat.st_size, origin)


@lru_cache(maxsize=None)
def _info_cached(path: Path, mtime_ns: int, size: int, origin: str) -> ModelInfo:  # keyed on mtime: files may be replaced
    meta = read_metadata(path)
    data = path.read_bytes()  # read once: the hash and the decoding digest
    own = weight_hash_of(data)
    digest = decoding_digest_of(data)
    name = path.stem if origin == "shipped" else (meta.get("name") or path.stem)
    return ModelInfo(name=name, architecture=meta["architecture"], description=meta.get("description", ""),
                     weight_hash=own, path=path, size_bytes=size, card=meta["card"], origin=origin,
                     stream_hashes=frozenset({own} | _released_aliases(name, digest)), decoding_digest=digest)


@lru_cache(maxsize=1)
def releases() -> list[dict]:
    """The release table: ``[{"version", "models": {name: {"hash", "digest"}}}]``, oldest first."""
    return json.loads(RELEASES_FILE.read_text())["releases"]


def release_of(name: str, hash_: bytes) -> str | None:
    """The first release (package version) that shipped model ``name`` with weights ``hash_``
    (later releases may ship the same file), or None."""
    for release in releases():
        entry = release["models"].get(name)
        if entry and entry["hash"] == hash_.hex():
            return release["version"]
    return None


def _released_aliases(name: str, digest: str) -> set[bytes]:
    """Hashes of released weights of ``name`` that decode exactly as a weight file of decoding
    digest ``digest``."""
    return {bytes.fromhex(r["models"][name]["hash"]) for r in releases()
            if name in r["models"] and r["models"][name]["digest"] == digest}


def search_path() -> list[Path]:
    """The folders of ``NEUROCODEC_MODEL_PATH``, in order (missing ones skipped)."""
    value = os.environ.get(MODEL_PATH_ENV, "")
    return [Path(p) for p in value.split(os.pathsep) if p and Path(p).is_dir()]


def _user_models() -> list[ModelInfo]:
    return [_info(p.resolve(), "search path") for folder in search_path() for p in sorted(folder.glob("*.safetensors"))]


def file_info(path) -> ModelInfo:
    """Info of any weight file (not necessarily shipped). Raises FileNotFoundError."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    return _info(path, "file")


def list_models(include_legacy: bool = False) -> list[ModelInfo]:
    """Shipped models sorted by name, then those of ``NEUROCODEC_MODEL_PATH`` (and, if asked,
    the decode-only weights of earlier releases)."""
    found = [_info(p, "shipped") for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))] + _user_models()
    if include_legacy:
        found += [_info(p, "legacy") for p in sorted(LEGACY_DIR.glob("*.safetensors"))]
    return found


def model_info(name: str | None = None) -> ModelInfo:
    """Info of model ``name`` (None = the default): shipped first, then ``NEUROCODEC_MODEL_PATH``.
    Unknown names raise UnknownModelError."""
    name = DEFAULT_MODEL if name is None else name
    shipped = WEIGHTS_DIR / f"{name}.safetensors"
    if shipped.is_file():  # shipped models come first: no need to read the others
        return _info(shipped, "shipped")
    for info in _user_models():
        if info.name == name:
            return info
    known = ", ".join(m.name for m in list_models()) or "none"
    raise UnknownModelError(f"unknown model {name!r}; known models: {known} (your own: a weight file with --weights, "
                            f"or its folder in {MODEL_PATH_ENV})")


def load_model(name: str | None = None):
    """The model ``name`` (None = default), loaded once per process and cached. Eval mode."""
    return load_model_file(model_info(name).path)


@lru_cache(maxsize=8)
def load_model_file(path: Path):
    """The model of a weight file, loaded once per process and cached. Eval mode."""
    return load_weights(path)


def find_model(name: str, expected_hash: bytes) -> ModelInfo:
    """The model a stream asks for: one whose file decodes streams of weight hash
    ``expected_hash`` (shipped, your own, or decode-only weights of an earlier release).

    Raises UnknownModelError saying which model, hash and release the stream needs.
    """
    candidates = [m for m in list_models(include_legacy=True) if m.name == name]
    for info in candidates:
        if expected_hash in info.stream_hashes:
            return info
    release = release_of(name, expected_hash)
    wrote = f"neurocodec {release} wrote this file" if release else "no release of neurocodec shipped these weights"
    if not candidates:
        raise UnknownModelError(
            f"stream needs model {name!r} (weights {expected_hash.hex()}), which this installation does not have "
            f"({wrote}); known: {', '.join(m.name for m in list_models()) or 'none'}; if it is your own model, put "
            f"its weight file in a folder of {MODEL_PATH_ENV}")
    raise UnknownModelError(
        f"stream needs model {name!r} with weights {expected_hash.hex()} ({wrote}), but this installation has "
        f"{name!r} only with weights {', '.join(m.weight_hash.hex() for m in candidates)}; if it is your own model, "
        f"put its weight file in a folder of {MODEL_PATH_ENV}")


__all__ = ["DEFAULT_MODEL", "LEGACY_DIR", "MODEL_PATH_ENV", "ModelInfo", "WEIGHTS_DIR", "export_weights", "file_info",
           "find_model", "list_models", "load_model", "load_model_file", "load_state_into", "load_weights",
           "model_info", "release_of", "releases", "search_path", "weight_hash", "write_encoder_hints"]
