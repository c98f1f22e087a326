"""Convert a codec whose prior was trained in float to the fixed-point prior (PTQ).

The conversion itself is :func:`neurocodec.entropy.ptq.quantize_prior`; this module
feeds it the hyper-latents of calibration crops and rebuilds the coding tables, and
offers a command line for weight files::

    python -m neurocodec.train.ptq float.safetensors out.safetensors --data ../shared/data/train

The output is an ordinary weight file: its prior runs on the exact integer path.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..entropy.ptq import PTQResult, quantize_prior
from ..models.base import interpolate_qualities

DEFAULT_QUALITIES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)


@torch.no_grad()
def calibration_z(model, crops: np.ndarray, qualities: Sequence[float] = DEFAULT_QUALITIES) -> list[torch.Tensor]:
    """Hyper-latent symbols of calibration crops, as the encoder would produce them.

    Args:
      model: a :class:`~neurocodec.models.VariableRateCodec` with coding tables.
      crops: uint8 (N, H, W, 3), H and W multiples of ``model.pad_multiple``.
      qualities: the crops are analysed at each of these qualities.
    Returns:
      one int32-valued float32 tensor (N, Cz, h, w) per quality.
    """
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0
    y = model.analysis(x)
    out = []
    for q in qualities:
        gain, _ = model.gains(torch.tensor([float(q)]))
        symbols = [model.entropy_model.quantise(y[i:i + 1] * gain, float(q)).z_symbols for i in range(len(y))]
        out.append(torch.from_numpy(np.concatenate(symbols)).float())
    return out


def convert_float_prior(model, crops: np.ndarray, qualities: Sequence[float] = DEFAULT_QUALITIES,
                        headroom: float = 2.0, passes: int = 2) -> PTQResult:
    """PTQ of ``model``'s hyper-synthesis, in place; the coding tables are rebuilt.

    Args:
      model: a :class:`~neurocodec.models.VariableRateCodec` whose prior was trained in
        float (its coding tables, if any, are replaced).
      crops: uint8 (N, H, W, 3) calibration crops (e.g. 32 training crops of 128 x 128).
      qualities: qualities the crops are analysed at and the KL is averaged over.
      headroom, passes: see :func:`~neurocodec.entropy.ptq.quantize_prior`.
    Returns:
      the :class:`~neurocodec.entropy.ptq.PTQResult`.
    """
    entropy = model.entropy_model
    log_gain = model.log_gain.detach()
    if entropy.prior_params is None:
        entropy.update_tables(log_gain)  # calibration_z needs the coding face
    z = calibration_z(model, crops, qualities)
    rows = torch.tensor([float(q) for q in qualities])
    log2_gain = interpolate_qualities(log_gain, rows) / math.log(2.0)
    result = quantize_prior(entropy.hyper_synthesis, z, log2_gain, headroom=headroom, passes=passes)
    entropy.update_tables(log_gain)
    return result


def main(argv=None) -> int:
    """Command line: float weight file -> fixed-point weight file."""
    from ..zoo.weights import export_weights, load_weights, read_metadata
    from .data import CropDataset

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="weight file of a model whose prior was trained in float")
    p.add_argument("out", help="weight file to write")
    p.add_argument("--data", required=True, help="folder of calibration images")
    p.add_argument("--crops", type=int, default=32, help="number of calibration crops")
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--scales", default="0.5,0.75", help="image scales the crops are drawn from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default=None, help="model name (default: the output file's stem)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_weights(args.source)
    data = CropDataset(args.data, args.crop, tuple(float(s) for s in args.scales.split(",")))
    crops = data.batch(np.random.default_rng(args.seed), args.crops)
    result = convert_float_prior(model, crops)
    meta = read_metadata(args.source)
    card = dict(meta["card"], ptq=dict(source=Path(args.source).name, crops=args.crops, crop=args.crop,
                                       kl_bits_rounded=result.kl_bits_rounded, kl_bits=result.kl_bits))
    digest = export_weights(model, args.out, args.name or Path(args.out).stem, meta.get("description", ""), card)
    print(f"calibration KL: {result.kl_bits_rounded:.3g} bits/latent rounded directly, {result.kl_bits:.3g} after "
          f"PTQ; wrote {args.out} (weights {digest.hex()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
