"""McQuic-style cascaded multi-codebook VQ (``block-mcquic``, ``entropy/vq.py``).

* exact round trip through ``Codec(weights=...)`` of a small exported model, at random
  sizes and fractional qualities, and of the indexes through the entropy coder;
* the quality -> structure mapping, and fewer fine units -> a subset of the symbols and
  fewer bytes;
* dead-codeword re-seeding replaces exactly the unused codewords, from the inputs,
  deterministically for a torch seed, and initialises unseeded codebooks from data;
* the training face's rate is the coded size (within a few %), its reconstruction the
  coding face's;
* the coding face gives the same bytes with 1 or 2 threads and mkldnn on or off, and
  decodes them identically;
* weight files: the VQ owns its coding state (``tables.vq.*``), mismatched tables are
  refused, the hyperprior family keeps its names; a block-hyperprior file warm-starts
  the transform; hostile segments raise FormatError only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from _helpers import export_tiny, load_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from neurocodec.entropy.vq import TABLE_PREFIX, CascadedVQ, MultiCodebookQuantizer  # noqa: E402
from neurocodec.errors import FormatError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(refine_blocks=1, refine_hidden=16, pixel_hidden=8, coarse_widths=[8, 16], coarse_codebooks=[2, 2],
            fine_stages=2, fine_codebooks=2, codebook_size=16, level_hidden=16)



fuzz = load_module("fuzz_decoder", ROOT / "benchmarks" / "fuzz_decoder.py")


def _images(count: int, size: int, seed: int) -> torch.Tensor:
    """float32 (count, 3, size, size) photo-like images in [0, 1]."""
    arrays = [fuzz.seed_image(size, size, seed + i) for i in range(count)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0


def tiny_model(seed: int = 0):
    """A small block-mcquic model whose codebooks are seeded from images (one training
    forward at quality 8 codes every unit), with a non-zero coarse prediction and
    non-uniform index distributions, in eval mode."""
    from neurocodec.models import build_model

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = build_model("block-mcquic", **TINY)
        with torch.no_grad():
            for level in model.entropy_model.levels:
                level.out.weight.normal_(0.0, 0.05)
            model.train()
            model(_images(4, 64, seed), torch.full((4,), 8.0))
            for q in model.entropy_model.quantizers:
                q.frequency.copy_(torch.softmax(torch.randn(q.frequency.shape), dim=-1))
    finally:
        torch.random.set_rng_state(state)
    return model.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return export_tiny(tiny_model(), tmp_path_factory.mktemp("mcquic"), "mcquic-tiny",
                       "random block-mcquic weights for tests")


@pytest.fixture(scope="module")
def codec(weights):
    from neurocodec.codec import Codec

    return Codec(weights=str(weights))


def _latents(codec, height: int = 64, width: int = 96, seed: int = 3) -> torch.Tensor:
    """Scaled latents (1, C, h, w) of a test image, as code_latents quantises them."""
    x, _ = codec._to_tensor(fuzz.seed_image(height, width, seed))
    model = codec.model
    with torch.no_grad():
        return model.analysis(x) * model.gains(torch.ones(1))[0]


# --------------------------------------------------------------------------- #
# Configuration and structure
# --------------------------------------------------------------------------- #


def test_config_validation():
    from neurocodec.models import build_model

    with pytest.raises(ValueError, match="groups"):
        CascadedVQ(10, (4,), (2,), (2,), fine_codebooks=4)
    with pytest.raises(ValueError, match="units_per_quality"):
        CascadedVQ(8, (4,), (2,), (2,), fine_stages=1, fine_codebooks=2, units_per_quality=[0, 1, 2, 3, 3, 3, 3, 3])
    with pytest.raises(ValueError, match="units_per_quality"):
        CascadedVQ(8, (4,), (2,), (2,), fine_stages=1, fine_codebooks=2, units_per_quality=[1, 0, 1, 1, 2, 2, 2, 2])
    with pytest.raises(ValueError, match="multiple"):
        CascadedVQ(8, (5,), (2,), (2,), fine_stages=1, fine_codebooks=2)
    with pytest.raises(ValueError, match="powers of two"):
        CascadedVQ(8, (4, 4), (2, 2), (2, 4), fine_stages=1, fine_codebooks=2)
    with pytest.raises(ValueError, match="permutation"):
        CascadedVQ(8, (4,), (2,), (2,), fine_stages=1, fine_codebooks=2, channel_order=[0] * 8)
    with pytest.raises(ValueError, match="codebook_size"):
        MultiCodebookQuantizer(2, 1, 4)
    with pytest.raises(ValueError, match="at most 2 coarse"):
        build_model("block-mcquic", coarse_widths=[8, 8, 8], coarse_codebooks=[2, 2, 2])


def test_quality_selects_structure():
    """Default: 2 stages x 4 codebooks, qualities 1..8 code 0,1,2,3,5,6,7,8 fine units;
    round(q) picks the entry."""
    vq = CascadedVQ(192, (8, 8), (2, 2), (4, 2), codebook_size=4, hidden=8)
    assert vq.units_per_quality == (0, 1, 2, 3, 5, 6, 7, 8)
    assert [vq.units(q) for q in (1.0, 1.49, 1.5, 2.0, 4.6, 7.49, 7.5, 8.0)] == [0, 0, 1, 1, 5, 7, 8, 8]
    layout = vq._layout((1, 192, 16, 24), vq.units(5.0))
    assert [s for _, s in layout] == [(1, 2, 4, 6), (1, 2, 8, 12), (1, 4, 16, 24), (1, 1, 16, 24)]
    assert [t for t, _ in layout] == [0, 2, 4, 8]


def test_segment_layout_and_model_config(codec):
    from neurocodec.format import unpack

    header, segments = unpack(codec.compress(fuzz.seed_image(40, 40, 0), 5.0))
    assert len(segments) == codec.model.segments_per_tile == 1
    assert codec.model.config()["codebook_size"] == 16
    with pytest.raises(ValueError, match="effort"):
        codec.compress(fuzz.seed_image(32, 32, 0), 3.0, effort=2)


# --------------------------------------------------------------------------- #
# Round trips
# --------------------------------------------------------------------------- #


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(height=st.integers(1, 80), width=st.integers(1, 80), quality=st.floats(1.0, 8.0), seed=st.integers(0, 99))
def test_exact_round_trip(codec, height, width, quality, seed):
    """Decoder's reconstruction == encoder's promised reconstruction, bit for bit."""
    image = fuzz.seed_image(height, width, seed)
    data, promised = codec.compress_with_reconstruction(image, quality)
    assert np.array_equal(codec.decompress(data), promised)


@pytest.mark.parametrize("quality", [1.0, 3.0, 8.0])
def test_index_round_trip(codec, quality):
    """Indexes survive the coder exactly and the decoder's y_hat is the encoder's."""
    from neurocodec.coding import get_backend

    em = codec.model.entropy_model
    y = _latents(codec)
    symbols = em.quantise(y, quality)
    segments = em.encode(symbols)
    layout = em._layout(tuple(y.shape), symbols.units)
    decoded = get_backend("cpu").decode(segments[0], em._table_indexes(layout), em.tables)
    sent = np.concatenate([i.numpy().ravel() for i in symbols.indexes])
    assert np.array_equal(decoded, sent)
    assert sent.min() >= 0 and sent.max() < em.codebook_size and len(np.unique(sent)) > 4
    assert torch.equal(em.decode(segments, tuple(y.shape), quality), symbols.y_hat)


def test_fewer_units_fewer_bytes(codec):
    """Lower qualities code a prefix of the units: their indexes are a subset of a higher
    quality's, and their streams are smaller, strictly where the structure differs."""
    em = codec.model.entropy_model
    y = _latents(codec, 128, 128, 7)
    by_quality = {q: em.quantise(y, float(q)) for q in range(1, 9)}
    sizes = [len(em.encode(by_quality[q])[0]) for q in range(1, 9)]
    units = [em.units(q) for q in range(1, 9)]
    for q in range(1, 8):
        lower, higher = by_quality[q], by_quality[q + 1]
        for a, b in zip(lower.indexes, higher.indexes):
            assert torch.equal(a, b[:, :a.shape[1]])
        if units[q] > units[q - 1]:
            assert sizes[q] > sizes[q - 1], (q, sizes)
        else:
            assert sizes[q] == sizes[q - 1]
    assert units[0] == 0 and units[-1] == 4
    # and through the whole codec, for an image
    image = fuzz.seed_image(96, 128, 5)
    files = [len(codec.compress(image, float(q))) for q in range(1, 9)]
    assert files == sorted(files) and files[0] < files[-1]


# --------------------------------------------------------------------------- #
# Dead codewords
# --------------------------------------------------------------------------- #


def _reseed_run(seed: int):
    torch.manual_seed(seed)
    vq = MultiCodebookQuantizer(2, 8, 3, reseed_every=3).train()
    centres = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])
    inputs = centres[torch.arange(64) % 2] + 0.01 * torch.randn(64, 3)
    x = inputs.t().reshape(1, 3, 8, 8).repeat(1, 2, 1, 1)             # (1, 2 * 3, 8, 8)
    active = torch.ones(1, 2)
    vq(x, active, "round")                                               # forward 0: seeds from data
    seeded = vq.codebook.detach().clone()
    with torch.no_grad():
        vq.codebook[:, 4:] = 100.0                                       # codewords 4..7 can never win
        vq.usage.zero_()                                                 # (forget forward 0's counts)
    far = vq.codebook.detach().clone()
    vq(x, active, "round")
    vq(x, active, "round")
    used = vq.usage.clone()                                              # forwards 1 and 2
    vq(x, active, "round")                                               # forward 3: window check
    return seeded, far, used, vq.codebook.detach().clone(), vq, inputs


def test_reseeding_replaces_unused_codewords():
    seeded, far, used, after, vq, inputs = _reseed_run(0)
    # the first forward seeded every codeword from the inputs and set the sharpness
    assert torch.cdist(seeded[0], inputs).min(dim=1).values.max() < 0.1
    assert bool(vq.seeded.all()) and float(vq.log_sharpness[0].detach()) != 0.0
    for m in range(2):
        dead = used[m] == 0
        assert bool(dead[4:].all())                                       # the far codewords went unused
        assert torch.equal(after[m][~dead], far[m][~dead])               # used ones untouched
        assert torch.cdist(after[m][dead], inputs).min(dim=1).values.max() < 0.1   # dead ones: new, from inputs
        assert float(after[m][dead].abs().max()) < 10.0
    again = _reseed_run(0)[3]
    assert torch.equal(after, again)                                     # deterministic for a torch seed
    assert int(vq.usage.sum()) == 2 * 64                                 # window restarted after the check


def test_index_distribution_is_the_running_code_usage():
    """The rate model starts as the first batch's code histogram, then moves by a moving
    average; the training-face bits are -log2 of it as 16-bit tables hold it."""
    torch.manual_seed(0)
    vq = MultiCodebookQuantizer(1, 4, 2, reseed_every=0).train()
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]]))
    x = torch.tensor([[0.1, 0.2], [9.8, 0.1], [0.2, 0.1], [0.0, 0.3]]).t().reshape(1, 2, 2, 2)
    vq(x, torch.ones(1, 1), "round")
    assert torch.allclose(vq.frequency, torch.tensor([[0.75, 0.25, 0.0, 0.0]]))
    _, bits, index = vq(x, torch.ones(1, 1), "round")
    bits = bits.detach()
    assert index.flatten().tolist() == [0, 1, 0, 0]
    expected = -math.log2(0.75 * (1 - 5 / 65536) + 1 / 65536)
    assert abs(float(bits[0, 0, 0, 0]) - expected) < 1e-5
    assert float(bits[0, 0, 0, 1]) > 1.9 and float(vq.code_lengths()[0, 3]) > 15.9   # unused: the 2**-16 floor
    assert np.allclose(vq.pmfs().sum(-1), 1.0)


def test_reseeding_skips_dropped_units_and_can_be_disabled():
    torch.manual_seed(0)
    vq = MultiCodebookQuantizer(2, 4, 2, reseed_every=2).train()
    before = vq.codebook.detach().clone()
    x = torch.randn(2, 4, 4, 4) + 50.0
    vq(x, torch.tensor([[1.0, 0.0], [1.0, 0.0]]), "noise")               # codebook 1 coded by no sample
    assert torch.equal(vq.codebook[1], before[1]) and not bool(vq.seeded[1])
    assert float(vq.codebook[0].detach().mean()) > 40.0 and bool(vq.seeded[0])
    off = MultiCodebookQuantizer(2, 4, 2, reseed_every=0).train()
    frozen = off.codebook.detach().clone()
    off(x, torch.ones(2, 2), "noise")
    assert torch.equal(off.codebook, frozen)


# --------------------------------------------------------------------------- #
# Training face vs coding face
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("quality", [1.0, 4.0, 8.0])
def test_training_rate_is_coded_size(codec, quality):
    """Training face (nearest codes, eval) bits vs the real segment, and its y_hat."""
    em = codec.model.entropy_model
    y = _latents(codec, 256, 256, 11)
    with torch.no_grad():
        q = torch.tensor([quality])
        out = em(y, codec.model.log2_gains(q), q, rate_proxy="round")
    estimate = float(out.bits().sum())
    symbols = em.quantise(y, quality)
    coded = 8 * len(em.encode(symbols)[0])
    assert abs(coded - estimate) <= 0.03 * estimate + 64, (coded, estimate)
    assert torch.allclose(out.y_hat, symbols.y_hat, atol=1e-4, rtol=1e-5)


def test_training_steps_reach_every_part_and_lower_the_loss():
    """Gradients reach codebooks, sharpness, coarse heads and transforms;
    ten sign-gradient steps (Gumbel proxy) lower the loss of the nearest codes (eval,
    "round")."""
    from neurocodec.models import build_model
    from neurocodec.train.loop import rd_loss

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            loss = float(rd_loss(model, x, quality, rate_proxy="round")["loss"])
        model.train()
        return loss

    torch.manual_seed(2)
    model = build_model("block-mcquic", **TINY).train()
    x = _images(3, 32, 20)
    quality = torch.tensor([1.0, 4.0, 8.0])
    with torch.no_grad():
        model(x, quality)                      # seeds the codebooks from this batch
    before = evaluate()
    for step in range(10):
        result = rd_loss(model, x, quality)
        model.zero_grad(set_to_none=True)
        result["loss"].backward()
        if step == 0:
            em = model.entropy_model
            for p in (em.levels[0].quantizer.codebook, em.fine[1].codebook,
                      em.fine[0].log_sharpness, em.levels[1].out.weight, model.log_scale,
                      model.analysis_refine[0].conv2.weight, model.synthesis_refine[0].conv2.weight):
                assert p.grad is not None and float(p.grad.abs().sum()) > 0
        with torch.no_grad():  # sign steps (Adam's first steps) without torch.optim's slow first import
            for p in model.parameters():
                if p.grad is not None:
                    p -= 1e-3 * torch.sign(p.grad)
    after = evaluate()
    assert after < 0.9 * before, (before, after)


# --------------------------------------------------------------------------- #
# Determinism
# --------------------------------------------------------------------------- #


def _under(threads: int, mkldnn: bool, fn):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.backends.mkldnn.flags(enabled=mkldnn):
            return fn()
    finally:
        torch.set_num_threads(previous)


def test_bit_identical_across_threads_and_mkldnn(codec):
    image = fuzz.seed_image(64, 64, 9)
    reference, promised = _under(1, True, lambda: codec.compress_with_reconstruction(image, 6.0))
    for threads, mkldnn in ((2, True), (1, False), (2, False)):
        data = _under(threads, mkldnn, lambda: codec.compress(image, 6.0))
        assert data == reference, (threads, mkldnn)
        decoded = _under(threads, mkldnn, lambda: codec.decompress(reference))
        assert np.abs(decoded.astype(int) - promised.astype(int)).max() <= 1, (threads, mkldnn)
        assert np.mean(decoded != promised) <= 0.001


# --------------------------------------------------------------------------- #
# Weight files and hostile input
# --------------------------------------------------------------------------- #


def test_weight_file_coding_state(weights, codec, tmp_path):
    from safetensors.torch import load_file

    from neurocodec.models import build_model
    from neurocodec.zoo import export_weights

    tensors = load_file(str(weights))
    own = set(codec.model.state_dict())
    assert sorted(k for k in tensors if k not in own) == sorted(TABLE_PREFIX + k for k in
                                                                ("freqs", "offsets", "minima", "precision"))
    assert codec.model.entropy_model.tables.num_tables == 2 + 2 + 2 + 2
    other = build_model("block-mcquic", **dict(TINY, codebook_size=8))
    with pytest.raises(ValueError, match="do not fit"):
        other.entropy_model.load_coding_state(tensors)
    # the hyperprior family keeps its names (the golden streams pin the bytes)
    torch.manual_seed(0)
    hyper = build_model("block-hyperprior", refine_blocks=0, pixel_hidden=0, hyper_channels=8, hyper_hidden=8)
    export_weights(hyper, tmp_path / "h.safetensors", "h")
    extra = {k.split(".")[0] + "." + k.split(".")[1] for k in load_file(str(tmp_path / "h.safetensors"))
             if k not in hyper.state_dict()}
    assert {e for e in extra if e.startswith("tables.")} == {"tables.y", "tables.z"}
    assert {e.split(".")[0] for e in extra} == {"prior", "tables"}


def test_warm_start_from_block_hyperprior():
    from neurocodec.models import build_model
    from neurocodec.zoo import load_state_into

    torch.manual_seed(0)
    parent = build_model("block-hyperprior", refine_blocks=1, refine_hidden=16, pixel_hidden=8, hyper_channels=8,
                         hyper_hidden=8)
    child = build_model("block-mcquic", **TINY)
    load_state_into(child, dict(parent.state_dict()))
    assert torch.equal(child.analysis_refine[0].conv1.weight, parent.analysis_refine[0].conv1.weight)
    assert torch.equal(child.synthesis_modulation, parent.synthesis_modulation)
    with pytest.raises(ValueError, match="lacks"):
        load_state_into(build_model("block-mcquic", **TINY), dict(parent.state_dict()), allow_missing=())


def test_hostile_segments_raise_format_error_only(codec):
    em = codec.model.entropy_model
    rng = np.random.default_rng(0)
    outcomes = set()
    for n in (0, 3, 16, 64, 400):
        try:
            y_hat = em.decode([rng.integers(0, 256, n, dtype=np.uint8).tobytes()], (1, 192, 8, 8), 8.0)
            assert y_hat.shape == (1, 192, 8, 8)
            outcomes.add("decoded")
        except FormatError:
            outcomes.add("format")
    assert "format" in outcomes
    with pytest.raises(FormatError, match="segment"):
        em.decode([b"", b""], (1, 192, 8, 8), 8.0)
    data = bytearray(codec.compress(fuzz.seed_image(40, 40, 1), 4.0))
    for position in (len(data) // 2, len(data) - 5):
        broken = bytearray(data)
        broken[position] ^= 0x5A
        with pytest.raises(FormatError):
            codec.decompress(bytes(broken))
