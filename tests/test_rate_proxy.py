"""The two training-face rate proxies of the latents (entropy.residual_bits)."""

import inspect

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neurocodec.entropy import gaussian_bits, residual_bits
from neurocodec.models import build_model
from neurocodec.train import TrainConfig, train


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), log2_scale=st.floats(-3, 6))
def test_round_proxy_is_the_bits_of_the_coded_symbols(seed, log2_scale):
    residual = torch.from_numpy(np.random.default_rng(seed).normal(0, 2.0**log2_scale, 64))
    scale = torch.full_like(residual, 2.0**log2_scale)
    expected = gaussian_bits(torch.round(residual), scale)
    assert torch.equal(residual_bits(residual, scale, "round"), expected)


def test_round_proxy_has_a_straight_through_gradient():
    residual = torch.tensor([0.3, -1.6, 2.4], requires_grad=True)
    residual_bits(residual, torch.ones(3), "round").sum().backward()
    # d bits / d residual is evaluated at the rounded value: zero at 0, pushing others to 0.
    assert residual.grad[0] == 0 and residual.grad[1] < 0 and residual.grad[2] > 0


def test_noise_proxy_overcharges_certain_zeros():
    """Why "round" exists: a symbol that is 0 with certainty costs ~0 bits when coded,
    but about 1.4 * scale bits under the noise relaxation."""
    torch.manual_seed(0)
    residual = torch.zeros(100_000)
    scale = torch.full_like(residual, 0.125)
    assert residual_bits(residual, scale, "round").mean() < 1e-3
    assert 0.15 < residual_bits(residual, scale, "noise").mean() < 0.2


def test_unknown_proxy_is_a_value_error():
    with pytest.raises(ValueError, match="rate proxy"):
        residual_bits(torch.zeros(2), torch.ones(2), "gumbel")


def test_train_rejects_unknown_proxies_and_models_default_to_noise(tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(data / "a.png")
    cfg = TrainConfig(data=str(data), architecture="block-hyperprior", model_config=dict(refine_blocks=0),
                      steps=1, batch=1, crop=64, scales=(1.0,), rate_proxy="median")
    with pytest.raises(ValueError, match="rate_proxy"):
        train(cfg, tmp_path / "bad", progress=False)
    model = build_model("block-hyperprior", refine_blocks=0)
    assert inspect.signature(model.forward).parameters["rate_proxy"].default == "noise"
    assert inspect.signature(model.entropy_model.forward).parameters["rate_proxy"].default == "noise"
