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

def weight_hash(path: str | Path) -> bytes:
    """First 8 bytes of the SHA-256 of a weight file (what streams record)."""
    return weight_hash_of(Path(path).read_bytes())


def export_weights(model, path: str | Path, name: str, description: str = "", card: dict | None = None) -> bytes:
    """Write ``model`` (with tables built) to ``path``; returns its weight hash.

    Args:
      model: a :class:`neurocodec.models.VariableRateCodec`; its tables are (re)built here.
    """
    import torch
    from safetensors.torch import save_file

    model = model.eval()
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
        "card": json.dumps(card or {}, sort_keys=True),
        "format": "neurocodec-weights-1",
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    tmp.replace(path)
    path.chmod(0o644)
    return weight_hash(path)


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
    from safetensors.torch import save_file

    energy = model.eval().measure_channel_energy(probe)
    path = hints_path(weights_path)
    tmp = path.with_suffix(".hints-tmp")
    save_file({"channel_energy": energy.contiguous()}, str(tmp),
              metadata={"weight_hash": weight_hash(weights_path).hex(), "probe_shape": str(tuple(probe.shape)),
                        "format": "neurocodec-hints-1"})
    tmp.replace(path)
    path.chmod(0o644)
    return path


def hints_measured_for(weights_path: str | Path) -> bytes | None:
    """The weight hash the hints beside ``weights_path`` were measured for (None without
    readable hints)."""
    energy_and_hash = _read_hints(weights_path)
    return None if energy_and_hash is None else energy_and_hash[1]


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
