"""Post-training quantisation of float-trained priors (neurocodec.entropy.ptq, neurocodec.train.ptq)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurocodec.entropy import FixedPointHyperSynthesis
from neurocodec.entropy.fixedpoint import WEIGHT_LIMIT
from neurocodec.entropy.ptq import hidden_activation_max, prior_kl_bits, quantize_prior


def float_trained_prior(seed: int = 0) -> FixedPointHyperSynthesis:
    """A small hyper-synthesis with float weights whose channels span two decades of range
    (what float training produces, and what direct rounding to the grids handles badly)."""
    torch.manual_seed(seed)
    hs = FixedPointHyperSynthesis(8, 32, 12)
    with torch.no_grad():
        hs.layers[0].weight.mul_(0.3 * torch.logspace(-2, 0.5, 32).view(1, -1, 1, 1))
        hs.layers[0].bias.uniform_(-0.05, 0.1)
        hs.layers[1].weight.mul_(torch.logspace(-1.5, 0.5, 32).view(1, -1, 1, 1))
        hs.layers[1].bias.uniform_(-0.05, 0.1)
        hs.layers[2].weight.normal_(0, 0.3)
        hs.layers[2].bias[12:] = -1.0
    hs.fake_quant = False
    return hs


def calibration(seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(-4, 5, (4, 8, 4, 4), generator=g).float()]


GAINS = torch.linspace(-2, 3, 8).view(8, 1).expand(8, 12).clone()


@pytest.fixture(scope="module")
def converted():
    hs = float_trained_prior()
    z = calibration()
    with torch.no_grad():
        before = hs.unscaled(z[0])
    result = quantize_prior(hs, z, GAINS)
    return hs, z, before, result


def test_fake_quant_switch_gives_the_float_network():
    hs = float_trained_prior()
    z = calibration()[0]
    with torch.no_grad():
        floats = hs.unscaled(z)
        hs.fake_quant = True
        grids = hs.unscaled(z)
    assert not torch.equal(floats[0], grids[0])
    assert torch.equal(grids[0] * 2**hs.mean_bits, torch.round(grids[0] * 2**hs.mean_bits))  # on the grid
    assert (floats[0] - grids[0]).abs().max() < 0.05


def test_ptq_beats_direct_rounding_on_calibration(converted):
    hs, z, before, result = converted
    assert hs.fake_quant
    assert result.kl_bits <= result.kl_bits_rounded
    assert result.kl_bits < 0.5 * result.kl_bits_rounded  # channels of very different range: scaling matters
    # the reported KL is that of the exported integer network
    params = hs.integer_parameters()
    mean_u, log_scale_u = hs.unscaled_exact(z[0], params)
    test = (mean_u.double() / 2**hs.mean_bits, log_scale_u.double() / 2**8)
    assert prior_kl_bits(before, test, GAINS) == pytest.approx(result.kl_bits, rel=1e-6)


def test_ptq_keeps_the_float_function_and_the_limits(converted):
    hs, z, before, result = converted
    hs.fake_quant = False
    try:
        with torch.no_grad():
            after = hs.unscaled(z[0])
    finally:
        hs.fake_quant = True
    for a, b in zip(before, after):
        assert (a - b).abs().max() < 1e-4  # a positive rescaling of ReLU channels: same function
    for layer in hs.layers:  # no weight reaches (or is clipped at) the 16-bit range
        assert (layer.weight.detach() * 2**layer.weight_bits).abs().max() < WEIGHT_LIMIT - 0.5
    for scales, maxima in zip(result.scales, result.activation_max):
        assert torch.all(scales > 0)
        # a channel scaled up keeps its activation clamp above headroom (2) x its calibrated maximum
        up = scales > 1
        assert torch.all(scales[up] * maxima[up] * 2 <= hs.act_max * (1 + 1e-9))


def test_dead_and_saturating_channels_keep_scale_one():
    hs = float_trained_prior(seed=2)
    with torch.no_grad():
        hs.layers[0].bias[0] = -1e3  # never active
        hs.layers[0].bias[1] = 1e3   # always at the clamp (act_max)
    z = calibration()
    maxima = hidden_activation_max(hs, z)[0]
    assert maxima[0] == 0 and maxima[1] == hs.act_max
    result = quantize_prior(hs, z, GAINS, passes=1)
    assert result.scales[0][0] == 1 and result.scales[0][1] == 1
    assert result.fixed_channels[0] >= 2


def test_convert_float_prior_on_a_tiny_codec():
    from neurocodec.models import build_model
    from neurocodec.train.ptq import convert_float_prior

    torch.manual_seed(0)
    model = build_model("block-hyperprior", refine_blocks=0, pixel_hidden=0, hyper_channels=8, hyper_hidden=16).eval()
    hs = model.entropy_model.hyper_synthesis
    with torch.no_grad():
        hs.layers[0].weight.mul_(torch.logspace(-2, 0, 16).view(1, -1, 1, 1))
    hs.fake_quant = False
    crops = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    result = convert_float_prior(model, crops, qualities=(1.0, 8.0), passes=1)
    assert result.kl_bits <= result.kl_bits_rounded
    # the model codes with the new prior: integer parameters match the rescaled weights
    params = model.entropy_model.prior_params
    assert torch.equal(params["0.weight"], hs.layers[0].integer_weight().to(torch.int16))
    x = torch.from_numpy(crops[:1]).permute(0, 3, 1, 2).float() / 255
    segments, x_hat = model.compress(x, 3.0)
    assert torch.equal(model.decompress(segments, (64, 64), 3.0), x_hat)
