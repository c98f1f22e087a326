"""The spatial-channel context entropy model (issue 5) and its architecture ``block-context``.

* exact round trip: the decoder's reconstruction equals the encoder's promise, bit for
  bit, for a small random model at several sizes and fractional qualities;
* the context really is used (random context weights change the table indexes), and a
  freshly built context model codes exactly like the hyperprior it extends (warm start);
* determinism: identical symbols and table indexes with 1 or 2 threads and mkldnn on or
  off (in process), and across processes with ``benchmarks/determinism.py`` (the helpers
  of ``tests/test_determinism.py``); every float64 accumulator is an exact integer equal
  to an int64 computation, and provably below 2**53 for the default sizes;
* the training face's bits match the real coded bytes;
* hostile input: mutated streams of the new architecture raise only FormatError.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from _helpers import load_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import neurocodec  # noqa: E402
from neurocodec.entropy.context import (  # noqa: E402
    CONTEXT_BITS, CONTEXT_LIMIT, ContextHyperprior, checkerboard, unscale_exact,
)
from neurocodec.entropy.fixedpoint import BIAS_LIMIT, WEIGHT_LIMIT  # noqa: E402
from neurocodec.errors import FormatError  # noqa: E402
from neurocodec.format import Limits, pack, unpack  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CTX_NAME = "ctx-tiny"
TINY = dict(refine_blocks=1, refine_hidden=16, pixel_hidden=8, hyper_channels=8, hyper_hidden=16,
            slices=[6, 18, 48, 120], context_hidden=16)



fuzz = load_module("fuzz_decoder", ROOT / "benchmarks" / "fuzz_decoder.py")
tdet = load_module("neurocodec_test_determinism", ROOT / "tests" / "test_determinism.py")


def tiny_context_model(seed: int = 0, active: bool = True):
    """A small block-context model. ``active``: the zero-initialised output layers of the
    parameter networks get random weights, so the context changes means and scales (a
    fresh model would code exactly like its hyperprior)."""
    from neurocodec.models import build_model

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = build_model("block-context", **TINY)
        if active:
            with torch.no_grad():
                # unscaled log2-scales near 1 (a random prior's default, -5, makes nearly
                # every latent an escape), and a context that moves them by O(1)
                model.entropy_model.hyper_synthesis.layers[-1].bias[192:] = 1.0
                for net in model.entropy_model.context:
                    net.out.weight.normal_(0.0, 0.05)
                    net.out.bias.normal_(0.0, 0.5)
    finally:
        torch.random.set_rng_state(state)
    return model.eval()


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    """A zoo with the tiny context model (and the shipped models, symlinked)."""
    import neurocodec.zoo as zoo
    from neurocodec.zoo import export_weights

    directory = tmp_path_factory.mktemp("ctxzoo")
    original = zoo.WEIGHTS_DIR
    export_weights(tiny_context_model(), directory / f"{CTX_NAME}.safetensors", CTX_NAME,
                   description="random block-context weights for tests")
    fuzz.use_weights_dir(directory)
    yield directory
    zoo.WEIGHTS_DIR = original


@pytest.fixture(scope="module")
def codec(zoo_dir):
    from neurocodec.codec import Codec

    return Codec(CTX_NAME)


# --------------------------------------------------------------------------- #
# Layout and round trip
# --------------------------------------------------------------------------- #


def test_frequency_order_and_checkerboard():
    from neurocodec.models.context import dct_frequency_order

    order = dct_frequency_order()
    assert sorted(order) == list(range(192))
    assert order[:3] == [0, 64, 128]                     # DC of Y, Cb, Cr first
    assert order[3:9] == [1, 8, 65, 72, 129, 136]        # then the first diagonal
    assert order[-1] == 191                              # highest Cr frequency last
    board = checkerboard(3, 4)
    assert board.tolist() == [[True, False, True, False], [False, True, False, True], [True, False, True, False]]


def test_config_validation():
    with pytest.raises(ValueError, match="sum"):
        ContextHyperprior(16, 8, 8, slices=(4, 4), context_hidden=8)
    with pytest.raises(ValueError, match="permutation"):
        ContextHyperprior(8, 8, 8, slices=(4, 4), context_hidden=8, channel_order=[0] * 8)


def test_segment_layout(codec):
    image = fuzz.seed_image(40, 72, 1)
    data = codec.compress(image, 3.0)
    header, segments = unpack(data)
    slices = codec.model.entropy_model.slices
    assert codec.model.segments_per_tile == len(segments) == 1 + 2 * len(slices)
    assert header.model_id == CTX_NAME


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(height=st.integers(1, 80), width=st.integers(1, 80), quality=st.floats(1.0, 8.0), seed=st.integers(0, 99))
def test_exact_round_trip(codec, height, width, quality, seed):
    """Decoder's reconstruction == encoder's promised reconstruction, bit for bit."""
    image = fuzz.seed_image(height, width, seed)
    data, promised = codec.compress_with_reconstruction(image, quality)
    np.testing.assert_array_equal(neurocodec.decompress(data), promised)


@pytest.mark.parametrize("shape,quality", [((1, 192, 4, 4), 1.0), ((1, 192, 8, 12), 2.75), ((1, 192, 12, 4), 7.5)])
def test_symbols_round_trip_and_reconstruction_is_round_y(codec, shape, quality):
    entropy = codec.model.entropy_model
    y = torch.randn(shape, generator=torch.Generator().manual_seed(5)) * 20
    y[0, 0, 0, 0] = 1e7                                  # an outlier: escape-coded, clamped
    symbols = entropy.quantise(y, quality)
    y_round = torch.clamp(torch.round(y.double()), -2**20, 2**20).float()
    assert torch.equal(symbols.y_hat, y_round)           # the prior changes bits, never y_hat
    segments = entropy.encode(symbols)
    assert len(segments) == entropy.num_segments
    assert torch.equal(entropy.decode(segments, shape, quality), symbols.y_hat)
    for coder in ("lanes",):                             # the lane-parallel rANS format too
        assert torch.equal(entropy.decode(entropy.encode(symbols, coder), shape, quality, coder), symbols.y_hat)


@pytest.mark.parametrize("shape,quality", [((1, 192, 4, 4), 1.0), ((1, 192, 8, 12), 2.75), ((1, 192, 12, 8), 6.0)])
def test_rate_distortion_rounding_runs_the_decoders_passes(codec, shape, quality):
    """Pass-by-pass choice: with an infinite weight it is plain rounding, symbol for symbol
    and table for table; with a finite one it moves symbols, and the decoder (which needs
    no weight) still reconstructs exactly what the encoder chose."""
    entropy = codec.model.entropy_model
    y = torch.randn(shape, generator=torch.Generator().manual_seed(8)) * 6
    plain = entropy.quantise(y, quality)
    unchanged = entropy.quantise(y, quality, distortion_weight=np.full((1, shape[1], 1, 1), np.inf))
    np.testing.assert_array_equal(unchanged.y_symbols, plain.y_symbols)
    np.testing.assert_array_equal(unchanged.y_indexes, plain.y_indexes)
    assert torch.equal(unchanged.y_hat, plain.y_hat)
    weight = np.linspace(0.05, 2.0, shape[1]).reshape(1, -1, 1, 1)
    chosen = entropy.quantise(y, quality, distortion_weight=weight)
    assert (chosen.y_symbols != plain.y_symbols).any()
    assert ((chosen.y_hat - y).abs() <= 1.5 + 1e-4).all()          # at most one step past round(y)
    assert torch.equal(entropy.decode(entropy.encode(chosen), shape, quality), chosen.y_hat)


def test_round_trip_with_hints_and_a_decoder_without_them(codec):
    model = codec.model
    image = fuzz.seed_image(48, 64, 2)
    plain_bytes = codec.compress(image, 3.0)
    model.channel_energy = torch.full((8, model.latent_channels), 1e-3)
    try:
        data, promised = codec.compress_with_reconstruction(image, 3.0)
    finally:
        model.channel_energy = None
    assert data != plain_bytes                                            # the hints were used
    np.testing.assert_array_equal(neurocodec.decompress(data), promised)


def test_context_is_used_and_fresh_model_equals_hyperprior(tmp_path):
    """Random context weights change the table indexes; a fresh block-context model (its
    output layers are zero) codes exactly the symbols and indexes of the block-hyperprior
    it was warm-started from."""
    from neurocodec.models import build_model
    from neurocodec.zoo import export_weights, load_weights
    from neurocodec.zoo.weights import load_state_into

    base_cfg = {k: v for k, v in TINY.items() if k not in ("slices", "context_hidden")}
    torch.manual_seed(3)
    base = build_model("block-hyperprior", **base_cfg)
    export_weights(base, tmp_path / "base.safetensors", "base")
    fresh = build_model("block-context", **TINY)
    load_state_into(fresh, tmp_path / "base.safetensors")    # context networks stay fresh
    export_weights(fresh, tmp_path / "fresh.safetensors", "fresh")
    active = tiny_context_model()
    load_state_into(active, tmp_path / "base.safetensors", allow_missing=("entropy_model.context.",))
    with torch.no_grad():
        for net in active.entropy_model.context:
            net.out.weight.normal_(0.0, 0.05)
            net.out.bias.normal_(0.0, 0.5)
    export_weights(active, tmp_path / "active.safetensors", "active")
    models = {name: load_weights(tmp_path / f"{name}.safetensors") for name in ("base", "fresh", "active")}
    y = models["base"].analysis(torch.rand(1, 3, 64, 96)) * models["base"].gains(torch.tensor([4.0]))[0]
    s = {name: m.entropy_model.quantise(y, 4.0) for name, m in models.items()}
    np.testing.assert_array_equal(s["fresh"].y_symbols, s["base"].y_symbols)
    np.testing.assert_array_equal(s["fresh"].y_indexes, s["base"].y_indexes)
    assert np.count_nonzero(s["active"].y_indexes != s["base"].y_indexes) > 0.1 * s["base"].y_indexes.size
    assert torch.equal(s["active"].y_hat, s["base"].y_hat)


def test_weight_files_must_be_complete(tmp_path):
    """Warm start may leave the context fresh; a block-context weight file may not."""
    from neurocodec.models import build_model
    from neurocodec.zoo.weights import load_state_into

    model = tiny_context_model()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("entropy_model.context.")}
    load_state_into(build_model("block-context", **TINY), dict(state))
    with pytest.raises(ValueError, match="lacks"):
        load_state_into(build_model("block-context", **TINY), dict(state), allow_missing=())
    del state["log_gain"]
    with pytest.raises(ValueError, match="lacks"):
        load_state_into(build_model("block-context", **TINY), dict(state))


# --------------------------------------------------------------------------- #
# Determinism
# --------------------------------------------------------------------------- #


def _code_under(entropy, y, quality, threads: int, mkldnn: bool):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.backends.mkldnn.flags(enabled=mkldnn):
            symbols = entropy.quantise(y, quality)
            decoded = entropy.decode(entropy.encode(symbols), tuple(y.shape), quality)
        return symbols, decoded
    finally:
        torch.set_num_threads(previous)


def test_bit_identical_across_threads_and_mkldnn(codec):
    entropy = codec.model.entropy_model
    y = torch.randn(1, 192, 16, 20, generator=torch.Generator().manual_seed(9)) * 30
    for quality in (1.0, 5.37):
        ref, ref_decoded = _code_under(entropy, y, quality, 1, True)
        assert torch.equal(ref_decoded, ref.y_hat)
        for threads, mkldnn in ((2, True), (1, False), (2, False)):
            other, decoded = _code_under(entropy, y, quality, threads, mkldnn)
            np.testing.assert_array_equal(other.y_symbols, ref.y_symbols)
            np.testing.assert_array_equal(other.y_indexes, ref.y_indexes)
            assert torch.equal(decoded, ref_decoded)


def test_cross_process(tmp_path, zoo_dir):
    """Encoder process (mkldnn on, 1 thread) vs decoder process (mkldnn off, 2 threads)."""
    summary = tdet._run_bench(tmp_path, (CTX_NAME, str(zoo_dir)),
                              ["--synthetic", "2", "--size", "72x96", "--qualities", "2.5,7"])
    tdet._assert_deterministic(summary, 4)


def test_accumulators_exact_and_equal_int64_reference(codec):
    """Spy on every context layer: inputs, weights and accumulators are float64 integers
    and each accumulator equals an independent int64 convolution."""
    entropy = codec.model.entropy_model
    layers = [layer for net in entropy.context for layer in net.layers().values()]
    with tdet.spy_exact_layers(layers) as calls:
        y = torch.randn(1, 192, 8, 8, generator=torch.Generator().manual_seed(2)) * 40
        symbols = entropy.quantise(y, 6.5)
        entropy.decode(entropy.encode(symbols), (1, 192, 8, 8), 6.5)
    assert {id(c[0]) for c in calls} == {id(layer) for layer in layers}
    for layer, x, w, b, out in calls:
        for t in (x, w, b, out):
            assert t.dtype == torch.float64 and torch.equal(t, torch.round(t))
        xi, wi, bi = (t.numpy().astype(np.int64) for t in (x, w, b))
        assert np.abs(xi).max() <= 2**15 * 2 and np.abs(wi).max() <= WEIGHT_LIMIT
        np.testing.assert_array_equal(out.numpy().astype(np.int64), tdet._conv_int(xi, wi, bi, layer))


def context_bound(net) -> int:
    """|main accumulator| + |spatial accumulator| (they are summed) for inputs at their
    limits: context inputs |A| <= 2**15 (CONTEXT_LIMIT on the 2**-8 grid; log-scales and
    the anchor plane are smaller), weights |W| <= 2**15, biases <= BIAS_LIMIT each."""
    a_max = int(CONTEXT_LIMIT * 2**CONTEXT_BITS)
    terms = 0
    for layer in (net.main, net.spatial):
        c_in, k = layer.weight.shape[1], layer.weight.shape[-1]
        terms += c_in * k * k * WEIGHT_LIMIT * a_max
    return terms + 2 * BIAS_LIMIT


def test_default_sizes_provably_below_2_to_53():
    from neurocodec.models import build_model

    model = build_model("block-context")
    bounds = [context_bound(net) for net in model.entropy_model.context]
    assert max(bounds) < 2**52, [math.log2(b) for b in bounds]
    # the hidden layers: C_in * 2**15 * 65280 + bias, tiny in comparison
    hidden = model.entropy_model.context[0].hidden.weight.shape[1]
    assert hidden * WEIGHT_LIMIT * 65280 + BIAS_LIMIT < 2**52


def test_unscale_exact_matches_float_and_saturates():
    exp2 = __import__("neurocodec.entropy.quality_head", fromlist=["exp2_table"]).exp2_table()
    lg = torch.tensor([0, 256, -384, 1000], dtype=torch.int64)       # gains 1, 2, 2**-1.5, 2**3.9
    y_hat = torch.tensor([7, -9, 3, 2**40], dtype=torch.int64).view(1, 4, 1, 1)
    out = unscale_exact(y_hat, lg, exp2).view(-1)
    expected = torch.tensor([7.0, -4.5, 3 * 2**1.5, 2**40 / 2**(1000 / 256)]) * 2**CONTEXT_BITS
    expected = torch.clamp(expected, -CONTEXT_LIMIT * 2**CONTEXT_BITS, CONTEXT_LIMIT * 2**CONTEXT_BITS)
    assert torch.allclose(out.float(), expected, atol=1.0)


# --------------------------------------------------------------------------- #
# Training face
# --------------------------------------------------------------------------- #


def test_training_face_matches_coding(codec):
    """The training face's prior (means, table indexes) is the coding prior, up to the
    gain's fixed-point rounding, and its likelihood of the rounded latents is the size of
    the coded y segments (within 3 %)."""
    from neurocodec.entropy.gaussian import gaussian_bits
    from neurocodec.entropy.hyperprior import HYPER_INPUT_SCALE
    from neurocodec.entropy.quality_head import LOG2_SCALE_MIN, LOG2_SCALE_STEP

    model = codec.model
    entropy = model.entropy_model
    x = torch.from_numpy(fuzz.seed_image(96, 128, 4)).permute(2, 0, 1)[None].float() / 255
    for quality in (2.0, 6.5):
        q = torch.tensor([quality])
        with torch.no_grad():
            y = model.analysis(x) * model.gains(q)[0]
            z_hat = torch.round(entropy.hyper_analysis(y * HYPER_INPUT_SCALE))
            mean, index = entropy.prior(y, z_hat, model.log2_gains(q))
            symbols = entropy.quantise(y, quality)
            segments = entropy.encode(symbols)
        exact_mean = symbols.y_hat - torch.from_numpy(symbols.y_symbols).float()
        # The training face uses the float gain, coding its 2**-8 fixed-point log2; an index
        # flips where the position is within ~1/128 step of a boundary (about 1.6 %).
        assert (mean != exact_mean).float().mean() < 0.01, quality
        index_diff = index - torch.from_numpy(symbols.y_indexes).float()
        assert (index_diff != 0).float().mean() < 0.04 and index_diff.abs().max() <= 1, quality
        scale = torch.exp2(LOG2_SCALE_MIN + index * LOG2_SCALE_STEP)
        likelihood_bits = float(gaussian_bits(symbols.y_hat - mean, scale).sum())
        coded_bits = 8 * sum(map(len, segments[1:]))
        assert abs(likelihood_bits / coded_bits - 1) < 0.03, (quality, likelihood_bits, coded_bits)


def test_training_rate_tracks_coded_bytes(codec):
    """The loss's rate (noisy likelihoods, what training minimises) is near the real
    bytes of the whole tile: within 15 % for this small random model."""
    model = codec.model
    x = torch.from_numpy(fuzz.seed_image(128, 128, 6)).permute(2, 0, 1)[None].float() / 255
    for quality in (2.0, 7.0):
        torch.manual_seed(0)
        with torch.no_grad():
            out = model(x, torch.tensor([quality]))
        segments, _ = model.compress(x, quality)
        rate = float(out.y_bits.sum() + out.z_bits.sum())
        coded = 8 * sum(map(len, segments))
        assert abs(rate / coded - 1) < 0.15, (quality, rate, coded)


def test_training_steps_reach_the_context_and_lower_the_loss():
    """Gradients reach the context networks (the layers behind the zero-initialised output
    once it has moved), and a few Adam steps lower the loss (same noise each evaluation)."""
    from neurocodec.models import build_model
    from neurocodec.train.loop import rd_loss

    torch.manual_seed(1)
    model = build_model("block-context", **TINY)
    x = torch.from_numpy(fuzz.seed_image(64, 64, 3)).permute(2, 0, 1)[None].float().repeat(2, 1, 1, 1) / 255
    q = torch.tensor([2.0, 6.0])
    context = [p for p in model.entropy_model.context.parameters()]
    opt = torch.optim.Adam(context, lr=1e-3)   # the context alone: its effect, isolated

    def loss() -> torch.Tensor:
        torch.manual_seed(7)
        return rd_loss(model, x, q)["loss"]

    first = float(loss().detach())
    for _ in range(5):
        value = loss()
        opt.zero_grad()
        value.backward()
        opt.step()
    net = model.entropy_model.context[-1]
    assert net.out.weight.grad.abs().sum() > 0 and net.main.weight.grad.abs().sum() > 0
    assert float(loss().detach()) < first


# --------------------------------------------------------------------------- #
# Hostile input
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def ctx_seeds(zoo_dir):
    return fuzz.seed_streams(CTX_NAME, fuzz.SEED_SPECS[:5])


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**64 - 1))
def test_fuzz_context_model(zoo_dir, ctx_seeds, seed):
    rng = np.random.default_rng(seed)
    data = fuzz.Mutator(lambda lo, hi: int(rng.integers(lo, hi + 1))).mutate(ctx_seeds)
    outcome = fuzz.decode_case(data, Limits(max_pixels=2**18))
    assert not outcome.kind.startswith("CRASH"), outcome.message
    assert outcome.shape_ok, outcome.message


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_garbage_and_missing_segments(zoo_dir, ctx_seeds, data):
    """Random segment bytes with valid CRCs reach every pass's decoder; a wrong segment
    count is refused."""
    header, segments = unpack(data.draw(st.sampled_from(ctx_seeds)))
    new = [data.draw(st.binary(max_size=48)) for _ in segments]
    try:
        neurocodec.decompress(pack(header, new), limits=Limits(max_pixels=2**18))
    except FormatError:
        pass
    cut = data.draw(st.integers(0, len(segments) - 1))
    with pytest.raises(FormatError, match="segments"):
        neurocodec.decompress(pack(header, segments[:cut] + segments[cut + 1:]))
