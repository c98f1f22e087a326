"""Warm-starting a narrower model from a wider one (``neurocodec.train.shrink``).

The property that makes the pruning safe: hidden channels whose outgoing weights are zero
contribute nothing, so when exactly those are the surplus, the narrower model computes the
same function as the wider one. Everything else must keep its shape or be refused.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from neurocodec.models import build_model  # noqa: E402
from neurocodec.train.shrink import hidden_chains, shrink_state  # noqa: E402
from neurocodec.transforms import PixelRefiner, ResidualBlock  # noqa: E402

SMALL = dict(refine_blocks=1, hyper_channels=8, hyper_hidden=16)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Non-zero weights everywhere (the zero-initialised last layers too)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def _silence(state: dict, producer: str, consumer: str, channels: list[int], consumer_in_axis: int = 1) -> None:
    """Make hidden ``channels`` between two convolutions useless: no outgoing weight
    (``consumer_in_axis`` 0 for a transposed consumer, whose weight is (C_in, C_out, k, k))."""
    state[consumer + ".weight"].index_fill_(consumer_in_axis, torch.tensor(channels, dtype=torch.long), 0.0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), wide=st.integers(4, 12), data=st.data())
def test_dropping_silent_channels_keeps_the_residual_block_function(seed, wide, data):
    narrow = data.draw(st.integers(1, wide))
    silent = data.draw(st.lists(st.integers(0, wide - 1), min_size=wide - narrow, max_size=wide - narrow, unique=True))
    big, small = ResidualBlock(6, wide), ResidualBlock(6, narrow)
    _randomise(big, seed)
    state = {k: v.clone() for k, v in big.state_dict().items()}
    _silence(state, "conv1", "conv2", silent)
    big.load_state_dict(state)
    small.load_state_dict(shrink_state(state, small))
    x = torch.randn(2, 6, 9, 7, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.testing.assert_close(small(x), big(x), rtol=1e-5, atol=1e-6)
    kept = [c for c in range(wide) if c not in silent]
    torch.testing.assert_close(small.conv1.weight, big.conv1.weight[kept])  # original order kept


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), data=st.data())
def test_dropping_silent_channels_keeps_the_pixel_refiner_function(seed, data):
    wide, narrow = 10, data.draw(st.integers(2, 10))
    big, small = PixelRefiner(wide, depth=4), PixelRefiner(narrow, depth=4)
    _randomise(big, seed)
    state = {k: v.clone() for k, v in big.state_dict().items()}
    chain = hidden_chains(big)[0]
    assert chain == ["body.0", "body.2", "body.4", "body.6"]
    for producer, consumer in zip(chain, chain[1:]):
        silent = data.draw(st.lists(st.integers(0, wide - 1), min_size=wide - narrow, max_size=wide - narrow,
                                    unique=True))
        _silence(state, producer, consumer, silent)
    big.load_state_dict(state)
    small.load_state_dict(shrink_state(state, small))
    x = torch.rand(1, 3, 8, 6, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        torch.testing.assert_close(small(x), big(x), rtol=1e-5, atol=1e-6)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), data=st.data())
def test_dropping_silent_channels_keeps_the_hyperprior_function(seed, data):
    """Both hyperprior chains shrink: the float hyper-analysis and the fixed-point
    hyper-synthesis, whose exact (integer) coding face must give the same integers."""
    wide, narrow = 12, data.draw(st.integers(2, 12))
    big = build_model("block-hyperprior", refine_hidden=8, hyper_channels=6, hyper_hidden=wide)
    small = build_model("block-hyperprior", refine_hidden=8, hyper_channels=6, hyper_hidden=narrow)
    _randomise(big, seed)
    state = {k: v.clone() for k, v in big.state_dict().items()}
    chains = [c for c in hidden_chains(big) if "hyper" in c[0]]
    assert chains == [[f"entropy_model.hyper_analysis.{i}" for i in (0, 2, 4)],
                      [f"entropy_model.hyper_synthesis.layers.{i}" for i in range(3)]]
    for chain in chains:
        for producer, consumer in zip(chain, chain[1:]):
            silent = data.draw(st.lists(st.integers(0, wide - 1), min_size=wide - narrow, max_size=wide - narrow,
                                        unique=True))
            _silence(state, producer, consumer, silent, consumer_in_axis=0 if consumer.endswith("layers.1") else 1)
    big.load_state_dict(state)
    small.load_state_dict(shrink_state(state, small))
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(1, 192, 8, 12, generator=gen) * 4
    z = torch.randint(-6, 7, (1, 6, 2, 3), generator=gen)
    big_em, small_em = big.entropy_model, small.entropy_model
    with torch.no_grad():
        # in float64, so that only a different function (not the summation order) can differ
        small_ha, big_ha = copy.deepcopy(small_em.hyper_analysis).double(), copy.deepcopy(big_em.hyper_analysis).double()
        torch.testing.assert_close(small_ha(y.double()), big_ha(y.double()), rtol=1e-10, atol=1e-10)
        big_prior = big_em.hyper_synthesis.unscaled_exact(z, big_em.hyper_synthesis.integer_parameters())
        small_prior = small_em.hyper_synthesis.unscaled_exact(z, small_em.hyper_synthesis.integer_parameters())
    for a, b in zip(small_prior, big_prior):
        assert torch.equal(a, b)


def test_model_shrinks_its_refinements_and_keeps_everything_else():
    wide = build_model("block-hyperprior", refine_hidden=24, pixel_hidden=12, **SMALL)
    narrow = build_model("block-hyperprior", refine_hidden=10, pixel_hidden=12, **SMALL)
    _randomise(wide, 1)
    source = wide.state_dict()
    state = shrink_state(source, narrow)
    narrow.load_state_dict(state)  # strict: every name, every shape
    assert narrow.analysis_refine[0].conv1.weight.shape[0] == 10
    for name, tensor in source.items():
        if ".conv1." not in name and ".conv2.weight" not in name:
            assert torch.equal(state[name], tensor), name
    assert shrink_state(source, wide).keys() == source.keys()
    assert all(torch.equal(shrink_state(source, wide)[k], v) for k, v in source.items())  # same width: unchanged


def test_refuses_to_widen_or_to_change_other_shapes():
    narrow = build_model("block-hyperprior", refine_hidden=8, **SMALL)
    wide = build_model("block-hyperprior", refine_hidden=16, **SMALL)
    with pytest.raises(ValueError, match="hidden channels"):
        shrink_state(narrow.state_dict(), wide)
    other = build_model("block-hyperprior", refine_hidden=8, refine_blocks=1, hyper_channels=12, hyper_hidden=16)
    with pytest.raises(ValueError, match="do not fit"):
        shrink_state(other.state_dict(), narrow)


def test_training_starts_from_a_shrunk_model(tmp_path):
    """TrainConfig(init_shrink=True) loads the wider file into the narrower model."""
    from PIL import Image
    import numpy as np

    from neurocodec.train import TrainConfig, train
    from neurocodec.zoo import export_weights

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(data / "a.png")
    wide = build_model("block-hyperprior", refine_hidden=16, pixel_hidden=0, **SMALL)
    _randomise(wide, 2)
    export_weights(wide, tmp_path / "wide.safetensors", "wide")
    config = dict(data=str(data), model_config=dict(refine_hidden=6, pixel_hidden=0, **SMALL), steps=1, batch=1,
                  crop=64, scales=(1.0,), init_from=str(tmp_path / "wide.safetensors"))
    checkpoint = train(TrainConfig(**config, init_shrink=True), tmp_path / "run", progress=False)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    assert state["analysis_refine.0.conv1.weight"].shape[0] == 6
    with pytest.raises(ValueError, match="init_shrink"):  # without it, the shapes do not fit
        train(TrainConfig(**config), tmp_path / "run2", progress=False)
