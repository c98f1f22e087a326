"""A new architecture at step 0 of a warm start: exactly the trained model it extends.

``TrainConfig.init_from`` copies a parent weight file's float parameters into a new
architecture and leaves the parts it adds fresh (``warm_start_fresh``); those start as
the identity (zero-initialised stages, a mixture whose extra components weigh nothing, ...),
so the new model computes what the parent computes. Two things a weight file holds beside
the float parameters make that exact for coding too, and :func:`warm_start_model` carries
them over:

* the parent's **integer coding state** (prior weights, tables): it was built from the
  parent's float32 parameters, which its file keeps only in fp16, so rebuilding it from the
  loaded parameters would change some integer weights and so some bytes. The parent's
  entries are kept; entries the parent lacks (a new prior head) are built from the new
  model's parameters;
* the parent's **encoder hints** (the channel energies of rate-distortion rounding): the
  synthesis is the parent's at step 0, so its energies are too.

Use: measuring a step-0 model against its parent, and the tests that hold every warm
start to it. Training itself needs none of this (it rebuilds everything at export).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..models import VariableRateCodec, build_model
from ..zoo import export_weights, load_weights
from ..zoo.weights import load_state_into, read_metadata


def warm_start_model(architecture: str, parent: str | Path, **options) -> VariableRateCodec:
    """``architecture`` built with the parent weight file's model config (updated with
    ``options``, the new architecture's own arguments), warm-started from ``parent`` with
    its coding state and encoder hints. Eval mode, ready to code."""
    source = load_weights(parent)
    config = {**read_metadata(parent)["config"], **options}
    model = build_model(architecture, **config)
    load_state_into(model, parent)
    model.eval().update_tables()     # entries the parent lacks
    state = model.entropy_model.coding_state()
    inherited = source.entropy_model.coding_state()
    state.update({k: v for k, v in inherited.items() if k in state})
    model.entropy_model.load_coding_state(state)
    model.channel_energy = source.channel_energy
    return model


def export_step_zero(architecture: str, parent: str | Path, path: str | Path, name: str, **options) -> bytes:
    """Write :func:`warm_start_model`'s model to ``path`` (its coding state as is; no encoder
    hints: set ``codec.model.channel_energy`` from the parent to code as it does). Returns
    the weight hash."""
    model = warm_start_model(architecture, parent, **options)
    with torch.no_grad():
        return export_weights(model, path, name, description=f"{architecture} at step 0 of a warm start from "
                              f"{Path(parent).name}", rebuild_tables=False)
