"""The Gaussian mixture entropy model (issue 5) and its architecture ``block-mixture``.

* exact round trip through ``Codec(weights=...)`` of a small exported model, random image
  sizes and fractional qualities; a model trained for a few steps with ``train()`` and
  exported with ``export_run`` round-trips too;
* the integer pmfs: rows sum to ``2**PMF_PRECISION``, every entry >= 1, equal to an
  independent per-element int64 reference; any int32 value is codable through the escape;
  integer weights sum to ``2**WEIGHT_BITS``;
* the training face's rate of the coded symbols matches the real coded bytes;
* determinism: identical symbols, indexes, means and weights with 1 or 2 threads and
  mkldnn on or off; every accumulator of the exact path equals an int64 convolution, and
  the default sizes provably stay below 2**53;
* warm start: a ``block-mixture`` initialised from a ``block-hyperprior`` weight file codes
  at that hyperprior's rate;
* hostile input: corrupt y segments raise FormatError only; other coders are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _helpers import export_tiny, load_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from neurocodec.entropy import mixture as mx  # noqa: E402
from neurocodec.entropy.fixedpoint import BIAS_LIMIT, WEIGHT_LIMIT  # noqa: E402
from neurocodec.errors import FormatError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(refine_blocks=1, refine_hidden=16, pixel_hidden=8, hyper_channels=8, hyper_hidden=16)



fuzz = load_module("fuzz_decoder", ROOT / "benchmarks" / "fuzz_decoder.py")
tdet = load_module("neurocodec_test_determinism", ROOT / "tests" / "test_determinism.py")


def tiny_mixture_model(seed: int = 0, components: int = 3):
    """A small block-mixture model whose mixture is active: random head weights give each
    latent components with different means, scales and weights."""
    from neurocodec.models import build_model

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = build_model("block-mixture", components=components, **TINY)
        hs = model.entropy_model.hyper_synthesis
        with torch.no_grad():
            # hyper-latents that are not all 0 and hidden features that are not all 0 (the
            # random tiny model gives both), so that the prior varies over the image
            model.entropy_model.hyper_analysis[-1].weight.mul_(100.0)
            for layer in hs.layers[:-1]:
                layer.bias.uniform_(0.0, 2.0)
            # unscaled log2-scales near 1 (a random prior's default, -5, makes nearly
            # every latent an escape) and a head that moves means, scales and weights by O(1)
            hs.layers[-1].bias[192:] = 1.0
            hs.mixture.weight.normal_(0.0, 0.02)
            hs.mixture.bias.view(3, components, 192)[0].normal_(0.0, 0.05)
            hs.mixture.bias.view(3, components, 192)[2].normal_(0.0, 1.0)
    finally:
        torch.random.set_rng_state(state)
    return model.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return export_tiny(tiny_mixture_model(), tmp_path_factory.mktemp("mixture"), "mix-tiny",
                       "random block-mixture weights for tests")


@pytest.fixture(scope="module")
def codec(weights):
    from neurocodec.codec import Codec

    return Codec(weights=str(weights))


def image_tensor(height: int, width: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(fuzz.seed_image(height, width, seed)).permute(2, 0, 1)[None].float() / 255


# --------------------------------------------------------------------------- #
# Round trip
# --------------------------------------------------------------------------- #


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(height=st.integers(1, 72), width=st.integers(1, 72), quality=st.floats(1.0, 8.0), seed=st.integers(0, 99))
def test_exact_round_trip(codec, height, width, quality, seed):
    """Decoder's reconstruction == encoder's promised reconstruction, bit for bit."""
    image = fuzz.seed_image(height, width, seed)
    data, promised = codec.compress_with_reconstruction(image, quality)
    np.testing.assert_array_equal(codec.decompress(data), promised)


def test_latents_round_trip_with_outliers(codec):
    """Symbols are round(y) relative to the anchor; values far outside every window (and at
    the clamp) go through the escape and come back exactly."""
    entropy = codec.model.entropy_model
    y = torch.randn(1, 192, 8, 12, generator=torch.Generator().manual_seed(5)) * 20
    y[0, 0, 0, :4] = torch.tensor([1e7, -1e7, 3e4, -2**20 + 0.2])
    symbols = entropy.quantise(y, 2.75)
    y_round = torch.clamp(torch.round(y.double()), -mx.Y_HAT_LIMIT, mx.Y_HAT_LIMIT).float()
    assert torch.equal(symbols.y_hat, y_round)
    assert symbols.y_indexes.shape == (1, 3, 192, 8, 12)
    segments = entropy.encode(symbols)
    assert len(segments) == entropy.num_segments == 2
    assert torch.equal(entropy.decode(segments, (1, 192, 8, 12), 2.75), symbols.y_hat)


def test_trained_model_round_trips(tmp_path):
    """train() -> export_run() -> Codec(weights=...) works for block-mixture, and the head's
    parameters are trained."""
    from PIL import Image

    from neurocodec.codec import Codec
    from neurocodec.models import build_model
    from neurocodec.train import TrainConfig, train
    from neurocodec.train.export import export_run

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(fuzz.seed_image(72, 80, i)).save(folder / f"img{i}.png")
    cfg = TrainConfig(data=str(folder), architecture="block-mixture", model_config=TINY, steps=2, batch=1, crop=32,
                      scales=(1.0,), log_every=1, checkpoint_every=2, rate_proxy="round", seed=1)
    heads = []
    train(cfg, tmp_path / "run", progress=False,
          on_step=lambda step, model: heads.append(model.entropy_model.hyper_synthesis.mixture.bias.detach().clone()))
    fresh = build_model("block-mixture", **TINY).entropy_model.hyper_synthesis.mixture.bias.detach()
    assert len(heads) == 2 and not torch.equal(heads[-1], fresh)     # the head is trained
    path = tmp_path / "mix-trained.safetensors"
    export_run(tmp_path / "run", path, "mix-trained")
    codec = Codec(weights=str(path))
    for quality in (1.5, 6.0):
        data, promised = codec.compress_with_reconstruction(fuzz.seed_image(40, 56, 3), quality)
        np.testing.assert_array_equal(codec.decompress(data), promised)


def test_other_coders_are_refused(codec):
    entropy = codec.model.entropy_model
    symbols = entropy.quantise(torch.zeros(1, 192, 4, 4), 3.0)
    with pytest.raises(ValueError, match="cpu"):
        entropy.encode(symbols, "lanes")
    with pytest.raises(FormatError, match="cpu"):
        entropy.decode(entropy.encode(symbols), (1, 192, 4, 4), 3.0, "lanes")
    with pytest.raises(FormatError, match="segments"):
        entropy.decode(entropy.encode(symbols)[:1], (1, 192, 4, 4), 3.0)


# --------------------------------------------------------------------------- #
# Integer pmfs
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def tables():
    from neurocodec.coding import build_tables
    from neurocodec.entropy.gaussian import gaussian_pmfs, scale_table

    pmfs, minima = gaussian_pmfs(scale_table())
    return build_tables(pmfs, minima)


def random_prior(rng: np.random.Generator, n: int, k: int, spread: int, num_tables: int) -> mx.MixturePrior:
    """A random exact prior: integer weights from random fixed-point logits."""
    from neurocodec.entropy.quality_head import exp2_table

    logits = torch.from_numpy(rng.integers(-8 * 256, 8 * 256 + 1, (1, k, 1, 1, n)))
    logits[0, :, 0, 0, : n // 4] = 0                                   # ties
    weights = mx.mixture_weights_exact(logits, exp2_table(), dim=1)
    means = torch.from_numpy(rng.integers(-spread, spread + 1, (1, k, 1, 1, n)))
    indexes = torch.from_numpy(rng.integers(0, num_tables, (1, k, 1, 1, n)))
    return mx.MixturePrior.from_tensors(means, indexes, weights)


def reference_pmf(prior: mx.MixturePrior, i: int, lo: int, width: int, tables) -> list[int]:
    """Element ``i``'s pmf from the definition, in Python integers (no numpy arithmetic)."""
    total = 1 << (tables.precision + mx.WEIGHT_BITS)
    g = []
    for v in range(lo, lo + width):
        mass = 0
        for k in range(prior.means.shape[0]):
            t = int(prior.indexes[k, i])
            local = v - int(prior.means[k, i]) - int(tables.minima[t])
            if 0 <= local < int(tables.sizes[t]):
                mass += int(prior.weights[k, i]) * int(tables.freqs[int(tables.offsets[t]) + local])
        g.append(mass)
    g.append(total - sum(g))
    free = (1 << mx.PMF_PRECISION) - (width + 1)
    q = [1 + x * free // total for x in g]
    q[q.index(max(q))] += (1 << mx.PMF_PRECISION) - sum(q)
    return q


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 4), spread=st.sampled_from([0, 3, 40, 3000]))
def test_pmf_builder_properties(tables, seed, k, spread):
    rng = np.random.default_rng(seed)
    prior = random_prior(rng, 48, k, spread, tables.num_tables)
    assert np.all(prior.weights.astype(np.int64).sum(axis=0) == 2**mx.WEIGHT_BITS)
    lo, width = mx.mixture_windows(prior, tables)
    assert np.all((lo <= prior.anchors) & (prior.anchors < lo + width)) and np.all(np.isin(width, mx.WINDOW_WIDTHS))
    for w in np.unique(width):
        rows = np.flatnonzero(width == w)
        pmf = mx.mixture_pmfs(prior.take(rows), lo[rows], int(w), tables)
        assert pmf.shape == (rows.size, w + 1) and pmf.dtype == np.int64
        assert np.all(pmf.sum(axis=1) == 2**mx.PMF_PRECISION) and pmf.min() >= 1
        for row in (0, rows.size - 1) if w <= 256 else (0,):   # the vectorised path == integers
            j = int(rows[row])
            assert pmf[row].tolist() == reference_pmf(prior, j, int(lo[j]), int(w), tables)
    # any int32 symbol (value - anchor) is codable: window edges, far escapes, the extremes;
    # and the coder's size is its pmfs' information content (plus the flush)
    symbols = rng.integers(-3, 4, prior.anchors.shape)
    symbols[:4] = [2**31 - 1, -2**31, lo[2] - 1 - prior.anchors[2], lo[3] + width[3] - prior.anchors[3]]
    values = prior.anchors + symbols
    data = mx.encode_mixture(values, prior, tables)
    np.testing.assert_array_equal(mx.decode_mixture(data, prior, tables), values)
    assert 8 * len(data) <= 1.01 * mx.mixture_ideal_bits(values, prior, tables) + 96
    with pytest.raises(ValueError, match="int32"):
        mx.encode_mixture(prior.anchors + np.where(np.arange(48) == 5, 2**31, 0), prior, tables)


def test_weights_and_exp2():
    from neurocodec.entropy.quality_head import exp2_table, fixed_point_gain

    exp2 = exp2_table()
    x = -torch.arange(0, 17 * 256, dtype=torch.int64)
    assert torch.equal(mx.exp2_nonpositive(x, exp2), fixed_point_gain(x, exp2))
    logits = torch.tensor([[0, 0, 0], [2048, 0, -2048], [5, 5, 4], [-2048, 2048, 2048]]).T
    w = mx.mixture_weights_exact(logits, exp2, dim=0)
    assert torch.equal(w.sum(0), torch.full((4,), 2**16)) and int(w.min()) >= 0
    assert w[:, 0].tolist() == [21846, 21845, 21845]            # the lost unit goes to the first
    # gaps 0, 8, 16 (the floor): e = 2**16, 2**8, 1; W = floor(e 2**16 / sum e), rest to the first
    e = [2**16, 2**8, 1]
    expected = [x * 2**16 // sum(e) for x in e]
    expected[0] += 2**16 - sum(expected)
    assert w[:, 1].tolist() == expected
    assert int(w[:, 3].argmax()) == 1 and w[1, 3] == w[2, 3] + 2   # ties: the first heaviest
    # training face: the same weights in float
    log_w = mx.mixture_log_weights(logits.T.float() / 256, dim=1)
    assert torch.allclose(torch.exp(log_w), w.T.double().float() / 2**16, atol=2e-4)


def test_corrupt_y_segments_raise_format_error(tables):
    rng = np.random.default_rng(3)
    prior = random_prior(rng, 300, 3, 5, tables.num_tables)
    values = prior.anchors + rng.integers(-2, 3, prior.anchors.shape)
    data = mx.encode_mixture(values, prior, tables)
    for trial in range(60):
        if trial % 3 == 0:
            bad = bytes(rng.integers(0, 256, int(rng.integers(0, 40)) * 4, dtype=np.uint8))
        else:
            raw = bytearray(data)
            raw[int(rng.integers(0, len(raw)))] ^= 1 << int(rng.integers(0, 8))
            bad = bytes(raw[: len(raw) - 4 * int(trial % 3 == 2)])
        try:
            out = mx.decode_mixture(bad, prior, tables)
        except FormatError:
            continue
        assert out.shape == values.shape and out.dtype == np.int64
    with pytest.raises(FormatError, match="32-bit"):
        mx.decode_mixture(data[:-1], prior, tables)


# --------------------------------------------------------------------------- #
# Training face against coding face
# --------------------------------------------------------------------------- #


def test_training_rate_matches_coded_bytes(codec):
    """The training face's bits of the coded symbols (``rate_proxy="round"``) are the size
    of the coded y segment, within 3 %; the coder is within 1 % of its pmfs' information."""
    model = codec.model
    entropy = model.entropy_model
    x = image_tensor(96, 128, 4)
    for quality in (2.0, 6.5):
        q = torch.tensor([quality])
        with torch.no_grad():
            y = model.analysis(x) * model.gains(q)[0]
            out = entropy(y, model.log2_gains(q), q, rate_proxy="round")
            symbols = entropy.quantise(y, quality)
            segments = entropy.encode(symbols)
        coded = 8 * len(segments[1])
        values = symbols.y_hat.numpy().astype(np.int64).ravel()
        ideal = mx.mixture_ideal_bits(values, symbols.prior, entropy.y_tables)
        assert abs(coded / ideal - 1) < 0.01, (quality, coded, ideal)
        rate = float(out.y_bits.sum())
        assert abs(rate / coded - 1) < 0.03, (quality, rate, coded)
        assert torch.equal(out.y_hat, symbols.y_hat)


def test_gradients_reach_the_mixture_head():
    from neurocodec.train.loop import rd_loss

    model = tiny_mixture_model(seed=2)
    x = image_tensor(64, 64, 3).repeat(2, 1, 1, 1)
    model.train()
    for proxy in ("noise", "round"):
        model.zero_grad()
        rd_loss(model, x, torch.tensor([2.0, 6.0]), rate_proxy=proxy)["loss"].backward()
        head = model.entropy_model.hyper_synthesis.mixture
        assert head.weight.grad.abs().sum() > 0 and head.bias.grad.abs().sum() > 0, proxy
    with pytest.raises(ValueError, match="rate proxy"):
        model.entropy_model(torch.zeros(1, 192, 4, 4), torch.zeros(1, 192, 1, 1), torch.ones(1), rate_proxy="exact")


# --------------------------------------------------------------------------- #
# Warm start
# --------------------------------------------------------------------------- #


def test_warm_start_codes_at_the_hyperprior_rate(tmp_path):
    """A block-mixture warm-started from a block-hyperprior file reconstructs identically
    and codes within 1 % of its bytes; a block-mixture weight file must be complete."""
    from neurocodec.models import build_model
    from neurocodec.zoo import export_weights, load_weights
    from neurocodec.zoo.weights import load_state_into

    torch.manual_seed(3)
    base = build_model("block-hyperprior", **TINY)
    with torch.no_grad():
        base.entropy_model.hyper_synthesis.layers[-1].bias[192:] = 1.0
        base.entropy_model.hyper_synthesis.layers[-1].weight[192:].normal_(0.0, 0.01)
    export_weights(base, tmp_path / "base.safetensors", "base")
    warm = build_model("block-mixture", **TINY)
    load_state_into(warm, tmp_path / "base.safetensors")          # the mixture head stays fresh
    export_weights(warm, tmp_path / "warm.safetensors", "warm")
    with pytest.raises(ValueError, match="lacks"):
        load_state_into(build_model("block-mixture", **TINY), tmp_path / "base.safetensors", allow_missing=())
    models = {name: load_weights(tmp_path / f"{name}.safetensors") for name in ("base", "warm")}
    x = image_tensor(128, 128, 7)
    for quality in (1.0, 4.0, 8.0):
        sizes, recon = {}, {}
        for name, m in models.items():
            segments, recon[name] = m.compress(x, quality)
            sizes[name] = len(segments[1])
        assert torch.equal(recon["warm"], recon["base"])
        assert abs(sizes["warm"] / sizes["base"] - 1) < 0.01, (quality, sizes)


# --------------------------------------------------------------------------- #
# Determinism
# --------------------------------------------------------------------------- #


def _under(threads: int, mkldnn: bool, f):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.backends.mkldnn.flags(enabled=mkldnn):
            return f()
    finally:
        torch.set_num_threads(previous)


def test_bit_identical_across_threads_and_mkldnn(codec):
    """The decoder-side prior (means, indexes, weights, anchors) of given hyper-latents is
    identical with 1 or 2 threads and mkldnn on or off, and a stream encoded with (1 thread,
    mkldnn on) decodes exactly with (2 threads, mkldnn off). (Two-thread runs are few: on a
    loaded machine each parallel torch op waits for both threads to be scheduled.)"""
    entropy = codec.model.entropy_model
    y = torch.randn(1, 192, 8, 12, generator=torch.Generator().manual_seed(9)) * 10
    quality = 5.37
    symbols = _under(1, True, lambda: entropy.quantise(y, quality))
    segments = entropy.encode(symbols)
    decoded = _under(2, False, lambda: entropy.decode(segments, tuple(y.shape), quality))
    assert torch.equal(decoded, symbols.y_hat)
    for threads, mkldnn in ((2, True), (1, False)):
        prior = _under(threads, mkldnn, lambda: entropy._prior(symbols.z_symbols, quality))
        for field in ("means", "indexes", "weights", "anchors"):
            np.testing.assert_array_equal(getattr(prior, field), getattr(symbols.prior, field))


def test_accumulators_exact_and_equal_int64_reference(codec):
    """Spy on every layer of the exact path: inputs, weights and accumulators are float64
    integers and each accumulator equals an independent int64 convolution."""
    entropy = codec.model.entropy_model
    hs = entropy.hyper_synthesis
    layers = [*hs.layers, hs.mixture]
    with tdet.spy_exact_layers(layers) as calls:
        y = torch.randn(1, 192, 8, 8, generator=torch.Generator().manual_seed(2)) * 40
        entropy.decode(entropy.encode(entropy.quantise(y, 6.5)), (1, 192, 8, 8), 6.5)
    assert {id(c[0]) for c in calls} == {id(layer) for layer in layers}
    for layer, x, w, b, out in calls:
        for t in (x, w, b, out):
            assert t.dtype == torch.float64 and torch.equal(t, torch.round(t))
        xi, wi, bi = (t.numpy().astype(np.int64) for t in (x, w, b))
        assert np.abs(wi).max() <= WEIGHT_LIMIT
        np.testing.assert_array_equal(out.numpy().astype(np.int64), tdet._conv_int(xi, wi, bi, layer))


def test_default_sizes_provably_below_2_to_53():
    """The mean / log-scale accumulators sum the 3x3 output layer's and the 1x1 head's;
    with inputs at the activation clamp (255 * 2**8), |weights| <= 2**15 and both biases at
    BIAS_LIMIT the sum stays below 2**53."""
    from neurocodec.models import build_model

    hs = build_model("block-mixture").entropy_model.hyper_synthesis
    a_max = int(hs.act_max * 2**hs.act_bits)
    bound = 2 * BIAS_LIMIT
    for layer in (hs.layers[-1], hs.mixture):
        c_in, k = layer.weight.shape[1], layer.weight.shape[-1]
        bound += c_in * k * k * WEIGHT_LIMIT * a_max
    assert bound < 2**52
    assert hs.mixture.out_bits == hs.layers[-1].out_bits        # one grid: the sum is exact


# --------------------------------------------------------------------------- #
# The fast coding path against the definition
# --------------------------------------------------------------------------- #


def reference_stream(prior: mx.MixturePrior, values: np.ndarray, tables) -> bytes:
    """The y segment from the definition: per-element Python-integer pmfs (:func:`reference_pmf`),
    coded by width group (increasing), each in C order, then the escapes' bypass codes."""
    import constriction

    from neurocodec.coding import cpu

    lo, width = mx.mixture_windows(prior, tables)
    encoder = constriction.stream.queue.RangeEncoder()
    family = constriction.stream.model.Categorical(perfect=False)
    escaped = []
    for w in sorted(set(width.tolist())):
        rows = np.flatnonzero(width == w)
        local = values[rows] - lo[rows]
        out = (local < 0) | (local >= w)
        local[out] = w
        escaped += rows[out].tolist()
        pmf = np.array([reference_pmf(prior, int(i), int(lo[i]), w, tables) for i in rows], dtype=np.float64)
        encoder.encode(local.astype(np.int32), family, pmf)
    if escaped:
        positions = np.sort(np.array(escaped))
        cpu.encode_bypass(encoder, (values[positions] - prior.anchors[positions]).astype(np.int32))
    return encoder.get_compressed().astype("<u4").tobytes()


def reference_bits(prior: mx.MixturePrior, values: np.ndarray, tables) -> np.ndarray:
    """:func:`mx.mixture_symbol_bits` from :func:`reference_pmf`."""
    from neurocodec.coding.tables import ESCAPE_LENGTH_ALPHABET, bit_length, zigzag

    lo, width = mx.mixture_windows(prior, tables)
    bits = np.empty(values.shape)
    for i in range(values.size):
        q = reference_pmf(prior, i, int(lo[i]), int(width[i]), tables)
        local = int(values[i] - lo[i])
        inside = 0 <= local < width[i]
        bits[i] = mx.PMF_PRECISION - np.log2(np.array([q[local if inside else int(width[i])]], np.float64))[0]
        if not inside:
            length = bit_length(zigzag(np.array([values[i] - prior.anchors[i]])))[0]
            bits[i] += np.log2(np.array([ESCAPE_LENGTH_ALPHABET], np.float64))[0] + max(int(length) - 1, 0)
    return bits


def repetitive_prior(rng: np.random.Generator, n: int, k: int, num_tables: int) -> mx.MixturePrior:
    """A prior whose elements repeat a few (mean - anchor, index, weight) tuples at different
    anchors, with weight-0 components whose means and indexes differ (they count as equal)."""
    base = random_prior(rng, 24, k, 6, num_tables)
    pick = rng.integers(0, 24, n)
    shift = rng.integers(-50, 51, n)
    means, indexes, weights = base.means[:, pick] + shift, base.indexes[:, pick].copy(), base.weights[:, pick].copy()
    if k > 1:
        zero = rng.random(n) < 0.3
        moved = zero & (weights[-1] > 0)
        weights[0, moved] += weights[-1, moved]
        weights[-1, moved] = 0
        means[-1, zero] = rng.integers(-10**6, 10**6, int(zero.sum()))
        indexes[-1, zero] = rng.integers(0, num_tables, int(zero.sum()))
    heaviest = np.argmax(weights, axis=0)
    anchors = np.take_along_axis(means, heaviest[None], 0)[0]
    return mx.MixturePrior(means, indexes.astype(np.int32), weights.astype(np.uint32), anchors)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 4))
def test_stream_equals_reference_implementation(tables, monkeypatch, seed, k):
    """encode_mixture's bytes are the definition's (Python-integer pmfs coded in the documented
    order), through every route of the fast path: distinct priors shared, the pmf budget spent
    (pmfs built per chunk), and every hash colliding (elements told apart by the exact check);
    the decoder inverts each; the symbol bits are the definition's."""
    rng = np.random.default_rng(seed)
    prior = repetitive_prior(rng, 300, k, tables.num_tables)
    values = prior.anchors + rng.integers(-4, 5, 300)
    values[:3] = prior.anchors[:3] + [40, -2**31 + 7, 2**31 - 1 - 60]          # escapes
    expected = reference_stream(prior, values, tables)
    bits = reference_bits(prior, values, tables)
    routes = [{}, {"SHARED_ENTRIES": 0}, {"_HASH_MULTIPLIERS": np.zeros(8, np.uint64)}]
    for route in routes:
        with monkeypatch.context() as m:
            for name, value in route.items():
                m.setattr(mx, name, value)
            fresh = mx.MixturePrior(prior.means, prior.indexes, prior.weights, prior.anchors)
            assert mx.encode_mixture(values, fresh, tables) == expected, route
            np.testing.assert_array_equal(mx.mixture_symbol_bits(values, fresh, tables), bits)
            decoded = mx.decode_mixture(expected, mx.MixturePrior(prior.means, prior.indexes, prior.weights,
                                                                  prior.anchors), tables)
            np.testing.assert_array_equal(decoded, values)
    uid, rep = mx._distinct(prior)
    assert len(rep) <= 24 * 2 and np.array_equal(rep, np.sort(rep)) and np.array_equal(uid[rep], np.arange(len(rep)))


def test_distinct_priors_are_exact(tables):
    """Elements share a distinct prior only if their (mean - anchor, index, weight) tuples are
    equal (weight-0 components aside); a prior that cannot be packed has no sharing."""
    rng = np.random.default_rng(11)
    prior = repetitive_prior(rng, 500, 3, tables.num_tables)
    uid, rep = mx._distinct(prior)
    live = prior.weights > 0
    key = np.concatenate([np.where(live, prior.means - prior.anchors, 0), np.where(live, prior.indexes, 0),
                          prior.weights]).T
    _, expected = np.unique(key, axis=0, return_inverse=True)
    pairs = np.unique(np.stack([uid, expected.ravel()]), axis=1)
    assert pairs.shape[1] == len(rep) == len(np.unique(expected))       # the same partition
    far = mx.MixturePrior(prior.means * 2**30, prior.indexes, prior.weights, prior.anchors)
    assert np.array_equal(mx._distinct(far)[0], np.arange(500))


def test_fast_prior_equals_forward_exact(codec):
    """prior_exact (the coder's) == MixturePrior.from_tensors(forward_exact(...)), field by field,
    for hyper-latents of every size, including ones at the clamp."""
    entropy = codec.model.entropy_model
    hs = entropy.hyper_synthesis
    gen = torch.Generator().manual_seed(4)
    for shape, scale, quality in (((1, 8, 3, 5), 3, 1.0), ((1, 8, 6, 2), 40, 4.5), ((1, 8, 1, 1), 1000, 8.0)):
        z = torch.round(torch.randn(shape, generator=gen) * scale).to(torch.int32)
        log2_gain = entropy.quality_log2_gain(quality)
        expected = mx.MixturePrior.from_tensors(*hs.forward_exact(z, entropy.prior_params, log2_gain))
        found = hs.prior_exact(z, entropy.prior_params, log2_gain)
        for name in ("means", "indexes", "weights", "anchors"):
            a, b = getattr(expected, name), getattr(found, name)
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b, err_msg=name)
