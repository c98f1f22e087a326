"""Warm-start a narrower model from a trained wider one (structured pruning).

A slimmer variant of a trained architecture (say ``block-hyperprior`` with
``refine_hidden=96`` instead of 192) need not start from scratch: its hidden layers keep
the wider model's most important channels and training goes on from there
(``TrainConfig(init_from=..., init_shrink=True)``, ``neurocodec train --init-shrink``).

Only hidden widths shrink: the channels between two convolutions inside a
:class:`~neurocodec.transforms.ResidualBlock` or a :class:`~neurocodec.transforms.PixelRefiner`,
which no other layer sees. A hidden channel's importance is the product of the norms of its
incoming filter and of its outgoing weights (what it can carry times how much of it is used;
data-free, so the same file always gives the same start). Every other tensor must already
have the target's shape.
"""

from __future__ import annotations

import torch
from torch import nn

from ..transforms import PixelRefiner, ResidualBlock
from ..zoo.weights import shape_mismatches


def hidden_chains(model: nn.Module) -> list[list[str]]:
    """Names of the convolutions whose hidden channels may shrink, as chains: in
    ``[a, b, c]`` the outputs of ``a`` are the inputs of ``b``, and so on."""
    chains = []
    for prefix, module in model.named_modules():
        dot = prefix + "." if prefix else ""
        if isinstance(module, ResidualBlock):
            chains.append([dot + "conv1", dot + "conv2"])
        elif isinstance(module, PixelRefiner):
            chains.append([f"{dot}body.{i}" for i, layer in enumerate(module.body) if isinstance(layer, nn.Conv2d)])
    return chains


def shrink_state(source: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of ``source`` (a wider model's state) cut to ``model``'s hidden widths.

    Args:
      source: name -> tensor, e.g. a weight file's tensors (float, any dtype).
      model: the narrower model (same architecture and parameter names).
    Returns:
      name -> tensor: ``source`` with each shrinking hidden layer keeping its
      ``width`` most important channels, in their original order.
    Raises:
      ValueError: a hidden layer of ``model`` is wider than in ``source``, or a tensor that
        is not a hidden width differs in shape.
    """
    state = dict(source)
    own = model.state_dict()
    for chain in hidden_chains(model):
        if any(name + ".weight" not in state for name in chain):
            continue  # load_state_into reports what is missing
        for producer, consumer in zip(chain, chain[1:]):
            w_in, w_out = state[producer + ".weight"], state[consumer + ".weight"]
            width, available = own[producer + ".weight"].shape[0], w_in.shape[0]
            if width == available:
                continue
            if width > available:
                raise ValueError(f"{producer}: the model has {width} hidden channels, the weights only {available}")
            importance = w_in.float().flatten(1).norm(dim=1) * w_out.float().transpose(0, 1).flatten(1).norm(dim=1)
            keep = torch.topk(importance, width).indices.sort().values
            state[producer + ".weight"] = w_in[keep]
            if producer + ".bias" in state:
                state[producer + ".bias"] = state[producer + ".bias"][keep]
            state[consumer + ".weight"] = w_out[:, keep]
    wrong = shape_mismatches(state, own)
    if wrong:
        raise ValueError(f"weights do not fit the model beyond hidden widths: {'; '.join(wrong[:3])}"
                         f"{' ...' if len(wrong) > 3 else ''}")
    return state
