"""Warm-start a narrower model from a trained wider one (structured pruning).

A slimmer variant of a trained architecture (say ``block-hyperprior`` with
``refine_hidden=96`` instead of 192) need not start from scratch: its hidden layers keep
the wider model's most important channels and training goes on from there
(``TrainConfig(init_from=..., init_shrink=True)``, ``neurocodec train --init-shrink``).

Only hidden widths shrink: the channels between two convolutions inside a
:class:`~neurocodec.transforms.ResidualBlock`, a :class:`~neurocodec.transforms.PixelRefiner`
or the hyper-analysis and hyper-synthesis of a
:class:`~neurocodec.entropy.MeanScaleHyperprior` (``hyper_hidden``), which no other layer
sees. A hidden channel's importance is the product of the norms of its
incoming filter and of its outgoing weights (what it can carry times how much of it is used;
data-free, so the same file always gives the same start). Every other tensor must already
have the target's shape.
"""

from __future__ import annotations

import torch
from torch import nn

from ..entropy.hyperprior import MeanScaleHyperprior
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
        elif isinstance(module, MeanScaleHyperprior):
            chains.append([f"{dot}hyper_analysis.{i}" for i, layer in enumerate(module.hyper_analysis)
                           if isinstance(layer, nn.Conv2d)])
            chains.append([f"{dot}hyper_synthesis.layers.{i}" for i in range(len(module.hyper_synthesis.layers))])
    return chains


def _channel_axes(model: nn.Module, name: str) -> tuple[int, int]:
    """(output axis, input axis) of the weight of convolution ``name``: a transposed
    convolution stores its weight as (C_in, C_out, k, k)."""
    return (1, 0) if model.get_submodule(name).transposed else (0, 1)  # nn.ConvNd and FixedPointConv


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
            out_axis, consumer_in_axis = _channel_axes(model, producer)[0], _channel_axes(model, consumer)[1]
            # hidden channel first: (C_hidden, ...) for both
            w_in = state[producer + ".weight"].movedim(out_axis, 0)
            w_out = state[consumer + ".weight"].movedim(consumer_in_axis, 0)
            width, available = own[producer + ".weight"].shape[out_axis], w_in.shape[0]
            if width == available:
                continue
            if width > available:
                raise ValueError(f"{producer}: the model has {width} hidden channels, the weights only {available}")
            importance = w_in.float().flatten(1).norm(dim=1) * w_out.float().flatten(1).norm(dim=1)
            keep = torch.topk(importance, width).indices.sort().values
            state[producer + ".weight"] = w_in[keep].movedim(0, out_axis)
            if producer + ".bias" in state:
                state[producer + ".bias"] = state[producer + ".bias"][keep]
            state[consumer + ".weight"] = w_out[keep].movedim(0, consumer_in_axis)
    wrong = shape_mismatches(state, own)
    if wrong:
        raise ValueError(f"weights do not fit the model beyond hidden widths: {'; '.join(wrong[:3])}"
                         f"{' ...' if len(wrong) > 3 else ''}")
    return state
