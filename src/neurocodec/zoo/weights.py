"""Weight files: one safetensors file per shipped model.

A weight file holds

* the float parameters of the transforms (fp16, promoted to float32 when loaded),
* the entropy model's integer coding state, built once at export and named by the entropy
  model itself (:meth:`~neurocodec.entropy.base.EntropyModel.coding_state`: for the
  hyperprior family the integer parameters of the fixed-point prior, ``prior.*``, and the
  coding tables, ``tables.y.*`` and ``tables.z.*``; for McQuic its index tables),
* metadata (strings): ``architecture``, ``config`` (JSON), ``name``, ``description`` and
  ``card`` (JSON: data, steps, CPU-hours, command, measured RD).

Nothing is pickled and nothing is recomputed at load time that could change a symbol.

Beside a weight file ``NAME.safetensors`` may sit its encoder hints, ``NAME.hints`` (a
safetensors file too): data only the encoder reads, so it can be added or remeasured
without changing the weight file, its hash, or any stream already written. It holds
``channel_energy`` float32 (8, C) (see
:attr:`neurocodec.models.base.VariableRateCodec.channel_energy`) and, as metadata, the
``weight_hash`` (hex) of the weight file it was measured for; hints for another hash are
ignored with a warning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..format import weight_hash_of

if TYPE_CHECKING:  # torch is imported only where tensors are built
    import torch


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with a canonical header: ``__metadata__`` first, then every
    key sorted, compact JSON, padded with spaces to a multiple of 8 bytes.

    safetensors writes its header from hash maps, whose order changes from process to
    process, so the same model exported twice got two different files and weight hashes.
    Tensor offsets are relative to the end of the header, so re-ordering it moves no tensor
    byte; loaders read the same tensors and metadata.
    """
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    ordered = {}
    if "__metadata__" in header:
        ordered["__metadata__"] = dict(sorted(header.pop("__metadata__").items()))
    ordered.update(sorted(header.items()))
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + length:]


def write_weights_file(path: str | Path, data: bytes) -> bytes:
    """Write safetensors ``data`` to ``path`` canonically (:func:`canonical_safetensors`),
    through a temporary file (a crash leaves the old file or none, never half of one);
    read-only for the group and others. Returns the written file's weight hash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canonical = canonical_safetensors(data)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(canonical)
    tmp.replace(path)
    path.chmod(0o644)
    return weight_hash_of(canonical)


def weight_hash(path: str | Path) -> bytes:
    """First 8 bytes of the SHA-256 of a weight file (what streams record)."""
    return weight_hash_of(Path(path).read_bytes())


# Metadata that decides how a stream decodes; the rest (name, description, card, format note)
# may be rewritten without changing a single decoded pixel.
DECODING_METADATA = ("architecture", "config")


def decoding_digest(path: str | Path) -> str:
    """SHA-256 (hex) of what decoding depends on in a weight file: every tensor's name,
    dtype, shape and bytes, and the architecture and config. Two files with the same digest
    decode every stream identically, whatever their cards say (see ``zoo/releases.json``)."""
    return decoding_digest_of(Path(path).read_bytes())


def decoding_digest_of(data: bytes) -> str:
    """:func:`decoding_digest` of a weight file's bytes."""
    import hashlib
    import struct

    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    meta = header.pop("__metadata__", {})
    kept = {k: meta.get(k) for k in DECODING_METADATA}
    canonical = json.dumps({"tensors": header, "metadata": kept}, sort_keys=True).encode()
    return hashlib.sha256(canonical + data[8 + length:]).hexdigest()


def portable_card(card: dict) -> dict:
    """``card`` without machine-local paths: every absolute path (at any depth) becomes its
    last component, so a card says which file or folder was used, never where it lay."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, str) and Path(value).is_absolute() and "\n" not in value:
            return Path(value).name
        return value

    return clean(card)


def rewrite_card(path: str | Path, card: dict, description: str | None = None) -> bytes:
    """Replace the card (and, if given, the description) of a weight file in place (tensors and decoding metadata untouched, so
    its :func:`decoding_digest` stays the same) and re-stamp its encoder hints for the new
    hash. Returns the new weight hash. Streams of the old hash stay decodable only through a
    release entry (``zoo/releases.json``) that records the old hash with this digest."""
    from safetensors import safe_open
    from safetensors.numpy import save

    old_hash = weight_hash(path)
    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["card"] = json.dumps(portable_card(card), sort_keys=True)
    if description is not None:
        meta["description"] = description
    new_hash = write_weights_file(path, save(tensors, metadata=meta))
    hints = hints_path(path)
    if hints.is_file():
        with safe_open(str(hints), framework="numpy") as f:
            hint_meta = dict(f.metadata() or {})
            hint_tensors = {k: f.get_tensor(k) for k in f.keys()}
        if hint_meta.get("weight_hash") == old_hash.hex():
            hint_meta["weight_hash"] = new_hash.hex()
            write_weights_file(hints, save(hint_tensors, metadata=hint_meta))
    return new_hash


def export_weights(model, path: str | Path, name: str, description: str = "", card: dict | None = None,
                   rebuild_tables: bool = True) -> bytes:
    """Write ``model`` (with tables built) to ``path``; returns its weight hash.

    Args:
      model: a :class:`neurocodec.models.VariableRateCodec`; its tables are (re)built here.
      rebuild_tables: False writes the coding state the model already holds instead (e.g. a
        warm start at step 0 given its parent's: the fp16 parameters of a weight file do not
        reproduce the integer prior built from their float32 originals).
    """
    import torch
    from safetensors.torch import save

    model = model.eval()
    if rebuild_tables:
        model.update_tables()
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        tensors[key] = value.detach().to(torch.float16) if value.is_floating_point() else value.detach()
    state = model.entropy_model.coding_state()
    clash = sorted(set(state) & set(tensors))
    if clash:
        raise ValueError(f"coding state names clash with parameter names: {clash[:5]}")
    tensors.update(state)
    metadata = {
        "architecture": model.architecture,
        "config": json.dumps(model.config(), sort_keys=True),
        "name": name,
        "description": description,
        "card": json.dumps(portable_card(card or {}), sort_keys=True),
        "format": "neurocodec-weights-1",
    }
    return write_weights_file(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Metadata of a weight file, with ``config`` and ``card`` parsed from JSON."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata() or {})
    meta["config"] = json.loads(meta.get("config", "{}"))
    meta["card"] = json.loads(meta.get("card", "{}"))
    return meta


def load_weights(path: str | Path):
    """Build the model stored in ``path``, ready to code (eval mode, tables loaded)."""
    from safetensors.torch import load

    from ..models import build_model

    meta = read_metadata(path)
    model = build_model(meta["architecture"], **meta["config"])
    data = Path(path).read_bytes()  # read once: the tensors and the hash the hints must match
    tensors = load(data)
    load_state_into(model, tensors, allow_missing=())
    own = set(model.state_dict())
    model.entropy_model.load_coding_state({k: v for k, v in tensors.items() if k not in own})
    model.channel_energy = read_encoder_hints(path, model.latent_channels, weight_hash_of(data))
    return model.eval()


def hints_path(weights_path: str | Path) -> Path:
    """Where the encoder hints of a weight file live: ``NAME.hints`` beside ``NAME.safetensors``."""
    return Path(weights_path).with_suffix(".hints")


def write_encoder_hints(model, weights_path: str | Path, probe: "torch.Tensor") -> Path:
    """Measure ``model``'s channel energies on ``probe`` and write them beside the weight
    file ``weights_path`` (which must hold ``model``). Returns the hints path.

    Args:
      probe: float32 (B, 3, H, W) in [0, 1], H and W multiples of ``model.pad_multiple``
        (a few 256x256 crops of training images are enough; not test images).
    """
    from safetensors.torch import save

    energy = model.eval().measure_channel_energy(probe)
    path = hints_path(weights_path)
    write_weights_file(path, save({"channel_energy": energy.contiguous()},
                                  metadata={"weight_hash": weight_hash(weights_path).hex(),
                                            "probe_shape": str(tuple(probe.shape)), "format": "neurocodec-hints-1"}))
    return path


def hints_measured_for(weights_path: str | Path) -> bytes | None:
    """The weight hash the hints beside ``weights_path`` were measured for (None without
    readable hints). Reads the metadata only, without torch (``neurocodec models`` uses it)."""
    from safetensors import safe_open

    path = hints_path(weights_path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            return bytes.fromhex((f.metadata() or {}).get("weight_hash", ""))
    except Exception:  # any damaged file (safetensors' own error type, bad hex, ...): no hints
        return None


def _read_hints(weights_path: str | Path) -> "tuple[torch.Tensor | None, bytes] | None":
    """(channel_energy or None, measured-for hash) from the hints file, or None if there is
    none or it cannot be read."""
    from safetensors import safe_open

    path = hints_path(weights_path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            measured_for = bytes.fromhex((f.metadata() or {}).get("weight_hash", ""))
            energy = f.get_tensor("channel_energy") if "channel_energy" in f.keys() else None
    except Exception:  # any damaged file (safetensors' own error type, bad hex, ...): no hints
        return None
    return energy, measured_for


def read_encoder_hints(weights_path: str | Path, latent_channels: int, weights_hash: bytes
                       ) -> "torch.Tensor | None":
    """The channel energies float32 (8, C) stored beside a weight file (whose hash is
    ``weights_hash``), or None if there are none, or (with a warning) if they cannot be read,
    were measured for another weight file or do not fit the model."""
    import warnings

    path = hints_path(weights_path)
    if not path.is_file():
        return None
    read = _read_hints(weights_path)
    energy = None if read is None else read[0]
    if (read is None or read[1] != weights_hash or energy is None
            or tuple(energy.shape) != (8, latent_channels)):
        warnings.warn(f"ignoring encoder hints {path}: unreadable, or not measured for "
                      f"{Path(weights_path).name}; coding with plain rounding", stacklevel=2)
        return None
    return energy.float()


def shape_mismatches(state: dict, own: dict) -> list[str]:
    """``"name (shape in state) (model shape)"`` for every tensor of ``state`` that ``own`` (a
    model's state dict) also has, with another shape."""
    return [f"{k} {tuple(v.shape)} (model {tuple(own[k].shape)})" for k, v in state.items()
            if k in own and v.shape != own[k].shape]


def load_state_into(model, source, allow_missing: tuple[str, ...] | None = None) -> None:
    """Copy float parameters from a weight file (path) or tensor dict into ``model``.

    Every parameter of ``model`` must be in ``source``, except those whose name starts with
    one of ``allow_missing`` (default: the model's ``warm_start_fresh`` prefixes, the parts an
    architecture adds to the one it extends, e.g. ``block-context``'s context networks,
    which then keep their initialisation: this is what warm-starting from a parent
    architecture's weights, ``TrainConfig.init_from``, needs). :func:`load_weights` passes
    ``()``: a model's own weight file must be complete.
    """
    if not isinstance(source, dict):
        from safetensors.torch import load_file

        source = load_file(str(source))
    if allow_missing is None:
        allow_missing = tuple(model.warm_start_fresh)
    own = model.state_dict()
    state = {k: v.to(own[k].dtype) for k, v in source.items() if k in own}
    missing = sorted(k for k in set(own) - set(state) if not k.startswith(allow_missing))
    if missing:
        raise ValueError(f"weight file lacks parameters: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    wrong = shape_mismatches(state, own)
    if wrong:
        raise ValueError(f"weights do not fit the model: {'; '.join(wrong[:2])}{' ...' if len(wrong) > 2 else ''} "
                         "(give the model the file's widths with model_config / --model-option, or load a wider "
                         "model of the same architecture with init_shrink / --init-shrink)")
    model.load_state_dict(state, strict=False)
