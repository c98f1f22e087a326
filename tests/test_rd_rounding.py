"""Rate-distortion rounding (the encoder's symbol choice) and the encoder hints that drive it:
the choice only ever steps toward the mean and never raises a latent's cost; coded with
hints, round trips stay exact and any decoder (with or without hints) reads the stream;
hints measured for another weight file are ignored."""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_train import tiny_folder  # noqa: F401 - a fixture


@lru_cache(maxsize=1)
def scale_tables():
    from neurocodec.coding import build_tables
    from neurocodec.entropy.gaussian import gaussian_pmfs, scale_table

    return build_tables(*gaussian_pmfs(scale_table()))


@st.composite
def latents(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = (1, draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    spread = draw(st.sampled_from([0.3, 1.0, 5.0, 300.0]))
    residual = rng.normal(0, spread, shape)
    residual[rng.random(shape) < 0.2] = 0.5  # exactly half-way: plain rounding's ties
    indexes = rng.integers(0, scale_tables().num_tables, shape).astype(np.int32)
    weight = np.asarray(draw(st.sampled_from([0.0, 0.1, 1.0, 30.0, np.inf])), dtype=np.float64)
    weight = weight * rng.uniform(0.5, 2.0, (1, shape[1], 1, 1)) if np.isfinite(weight) else weight
    return residual, np.round(residual).astype(np.int32), indexes, weight


@settings(max_examples=60, deadline=None)
@given(latents())
def test_moves_are_one_step_toward_the_mean_and_lower_the_cost(case):
    from neurocodec.entropy.rd_rounding import rd_round

    residual, symbols, indexes, weight = case
    tables = scale_tables()
    chosen = rd_round(residual, symbols, indexes, tables, weight)
    assert chosen.dtype == np.int32 and chosen.shape == symbols.shape
    moved = chosen != symbols
    assert np.array_equal(chosen[moved], (symbols - np.sign(symbols))[moved])
    assert not (moved & (symbols == 0)).any()
    bits_before, bits_after = tables.symbol_bits(symbols, indexes), tables.symbol_bits(chosen, indexes)
    assert (bits_after[moved] < bits_before[moved]).all()
    if np.isinf(weight).all():
        assert not moved.any()
    else:
        w = np.broadcast_to(weight, residual.shape)
        cost_before = bits_before + w * (residual - symbols) ** 2
        cost_after = bits_after + w * (residual - chosen) ** 2
        assert (cost_after <= cost_before + 1e-9).all()


def test_zero_weight_drops_every_symbol_that_saves_bits():
    from neurocodec.entropy.rd_rounding import rd_round

    tables = scale_tables()
    symbols = np.array([-2, -1, 0, 1, 2], dtype=np.int32).reshape(1, 1, 1, 5)
    indexes = np.full_like(symbols, 26)       # scale 1: every step toward 0 saves bits
    chosen = rd_round(symbols.astype(np.float64), symbols, indexes, tables, np.zeros((1, 1, 1, 1)))
    assert chosen.ravel().tolist() == [-1, 0, 0, 0, 1]


def test_symbol_bits_sum_to_ideal_bits():
    tables = scale_tables()
    rng = np.random.default_rng(1)
    symbols = rng.integers(-40, 40, (3, 50)).astype(np.int32)
    symbols[0, 0] = 2**30                      # an escape
    indexes = rng.integers(0, tables.num_tables, symbols.shape)
    bits = tables.symbol_bits(symbols, indexes)
    assert bits.shape == symbols.shape and (bits > 0).all()
    assert np.isclose(bits.sum(), tables.ideal_bits(symbols, indexes))


@pytest.fixture(scope="module")
def hinted_weights(tmp_path_factory):
    """A tiny block-hyperprior with gains spread over the qualities, exported with encoder
    hints measured on a smooth probe image."""
    from _helpers import export_tiny

    from neurocodec.models import build_model
    from neurocodec.zoo import load_weights, write_encoder_hints

    torch.manual_seed(0)
    model = build_model("block-hyperprior", refine_blocks=0, pixel_hidden=0, hyper_channels=8, hyper_hidden=16)
    with torch.no_grad():
        model.log_gain.copy_(torch.linspace(1.0, 3.0, 8)[:, None].expand_as(model.log_gain))
    folder = tmp_path_factory.mktemp("hinted")
    path = export_tiny(model, folder, "hinted", "test model with encoder hints")
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    probe = torch.stack([yy, xx, (yy + xx) / 2])[None].repeat(2, 1, 1, 1)
    write_encoder_hints(load_weights(path), path, probe)
    return path


def test_hints_are_measured_and_loaded(hinted_weights):
    from neurocodec.zoo import load_weights

    model = load_weights(hinted_weights)
    energy = model.channel_energy
    assert energy is not None and energy.shape == (8, model.latent_channels) and (energy > 0).all()
    assert torch.isfinite(energy).all()
    # larger gains (higher qualities) make a unit latent error smaller in the image
    assert float(energy[0].sum()) > float(energy[7].sum())


def test_round_trip_is_exact_with_hints_and_any_decoder_reads_it(hinted_weights):
    from neurocodec import Codec

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    hinted = Codec(None, weights=str(hinted_weights), quality=2.5)
    data, reconstruction = hinted.compress_with_reconstruction(image)
    assert np.array_equal(hinted.decompress(data), reconstruction)
    plain = Codec(None, weights=str(hinted_weights), quality=2.5)
    plain.model.channel_energy = None
    assert np.array_equal(plain.decompress(data), reconstruction)        # the decoder needs no hints
    assert len(data) <= len(plain.compress(image)) + 4   # fewer ideal bits (up to the coder's flush)


def test_hints_of_another_weight_file_are_ignored(hinted_weights, tmp_path):
    from neurocodec.zoo import load_weights
    from neurocodec.zoo.weights import hints_path

    other = tmp_path / "other.safetensors"
    other.write_bytes(hinted_weights.read_bytes())
    hints_path(other).write_bytes(hints_path(hinted_weights).read_bytes())
    assert load_weights(other).channel_energy is not None              # same bytes, same hash: used
    from safetensors.torch import save_file

    save_file({"channel_energy": torch.ones(8, 3)}, str(hints_path(other)), metadata={"weight_hash": "00" * 8})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_weights(other).channel_energy is None
    assert any("ignoring encoder hints" in str(w.message) for w in caught)
    hints_path(other).write_bytes(b"not a safetensors file")           # damaged: ignored too
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_weights(other).channel_energy is None
    assert any("ignoring encoder hints" in str(w.message) for w in caught)


def test_export_run_writes_hints_the_codec_uses(tiny_folder, tmp_path):
    from test_train import TINY_MODEL

    from neurocodec import Codec
    from neurocodec.train import TrainConfig, train
    from neurocodec.train.export import export_run
    from neurocodec.zoo.weights import hints_path

    cfg = TrainConfig(data=str(tiny_folder), model_config=TINY_MODEL, steps=1, batch=1, crop=64, scales=(1.0,),
                      log_every=1, checkpoint_every=1, seed=2)
    train(cfg, tmp_path / "run", progress=False)
    path = tmp_path / "trained.safetensors"
    export_run(tmp_path / "run", path, "trained")
    assert hints_path(path).is_file()
    codec = Codec(weights=str(path), quality=3.0)
    assert codec.model.rd_weight(3.0) is not None
    image = np.random.default_rng(4).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    data, reconstruction = codec.compress_with_reconstruction(image)
    assert np.array_equal(codec.decompress(data), reconstruction)
