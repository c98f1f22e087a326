"""The entropy-model contract (``neurocodec.entropy.base.EntropyModel``), checked on every
entropy model with tiny untrained models: the numbered guarantees of docs/architecture.md
("The entropy-model contract"), typed outputs, and that library calls leave no
process-wide state behind (``refine_latents``, the per-tables caches)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurocodec.coding.identity_cache import IdentityCache  # noqa: E402
from neurocodec.entropy import EntropyModel, EntropyOutput  # noqa: E402
from neurocodec.errors import FormatError  # noqa: E402
from neurocodec.models import build_model  # noqa: E402
from neurocodec.models.outputs import ModelOutput  # noqa: E402

BLOCK = dict(refine_blocks=0, refine_hidden=16, pixel_hidden=8)
HYPER = dict(hyper_channels=8, hyper_hidden=16)
MODELS = {
    "block-hyperprior": dict(BLOCK, **HYPER),
    "block-context": dict(BLOCK, **HYPER, slices=[6, 18, 48, 120], context_hidden=16),
    "block-mixture": dict(BLOCK, **HYPER),
    "block-mcquic": dict(BLOCK, coarse_widths=[8, 16], coarse_codebooks=[2, 2], fine_stages=2, fine_codebooks=2,
                         codebook_size=16, level_hidden=16),
}


def _image(seed: int, h: int = 64, w: int = 64) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
    torch.manual_seed(0)
    model = build_model(request.param, **MODELS[request.param]).eval()
    if request.param == "block-mcquic":  # seed the codebooks from data, as training's first forward does
        model.train()
        with torch.no_grad():
            model(_image(1), torch.tensor([8.0]))
        model.eval()
    model.update_tables()
    return model


def test_every_entropy_model_implements_the_contract(model):
    em = model.entropy_model
    assert isinstance(em, EntropyModel)
    assert isinstance(em.rd_rounding, bool) and em.num_segments >= 1 and em.latent_multiple >= 1
    assert model.segments_per_tile == em.num_segments


def test_training_faces_are_typed(model):
    x, q = _image(2), torch.tensor([3.0])
    with torch.no_grad():
        out = model(x, q, "round", torch.Generator().manual_seed(0))
        y = model.analysis(x) * model.gains(q)[0]
        rate = model.entropy_model(y, model.log2_gains(q), q, "round", torch.Generator().manual_seed(0))
    assert isinstance(out, ModelOutput) and isinstance(rate, EntropyOutput)
    assert out.x_hat.shape == x.shape and out.bits().shape == (1,)
    assert torch.equal(out.bits(), rate.bits())
    # guarantee 5: the "round" training face reconstructs what plain-rounded coding does
    symbols = model.entropy_model.quantise(y, 3.0)
    assert torch.allclose(rate.y_hat, symbols.y_hat, atol=1e-4)
    with pytest.raises(ValueError, match="rate proxy"):
        model.entropy_model(y, model.log2_gains(q), q, "exact")


def test_noise_comes_from_the_generator_given(model):
    x, q = _image(3), torch.tensor([5.0])
    with torch.no_grad():
        a = model(x, q, "noise", torch.Generator().manual_seed(4)).bits()
        torch.manual_seed(99)
        b = model(x, q, "noise", torch.Generator().manual_seed(4)).bits()
    assert torch.equal(a, b)


@pytest.mark.parametrize("quality", [1.0, 6.5])
def test_coding_face_round_trip_and_segment_count(model, quality):
    em = model.entropy_model
    with torch.no_grad():
        y = model.analysis(_image(5)) * model.gains(torch.tensor([quality]))[0]
    symbols = em.quantise(y, quality)
    segments = em.encode(symbols)
    assert len(segments) == em.num_segments and all(isinstance(s, bytes) for s in segments)
    # guarantee 2: the decoder reconstructs what the encoder promised
    assert torch.equal(em.decode(segments, tuple(y.shape), quality), symbols.y_hat)
    # guarantee 3
    with pytest.raises(FormatError):
        em.decode(segments + [b""], tuple(y.shape), quality)


def test_distortion_weight_only_where_supported(model):
    em = model.entropy_model
    with torch.no_grad():
        y = model.analysis(_image(6)) * model.gains(torch.tensor([4.0]))[0]
    weight = np.full((1, y.shape[1], 1, 1), 0.05)
    if em.rd_rounding:
        assert torch.isfinite(em.quantise(y, 4.0, distortion_weight=weight).y_hat).all()
    else:
        with pytest.raises(ValueError, match="rate-distortion"):
            em.quantise(y, 4.0, distortion_weight=weight)


def test_saved_state_round_trips(model):
    """Guarantee 4: integer tensors only, and a fresh model given them codes identically."""
    em = model.entropy_model
    state = em.coding_state()
    assert state and all(not t.is_floating_point() for t in state.values())
    assert not set(state) & set(model.state_dict())
    twin = build_model(model.architecture, **model.config()).eval()
    twin.load_state_dict(model.state_dict())
    twin.entropy_model.load_coding_state(state)
    with torch.no_grad():
        y = model.analysis(_image(7)) * model.gains(torch.tensor([2.0]))[0]
    assert em.encode(em.quantise(y, 2.0)) == twin.entropy_model.encode(twin.entropy_model.quantise(y, 2.0))
    with pytest.raises(ValueError):
        twin.entropy_model.load_coding_state({})


def test_refine_latents_leaves_the_model_and_global_state_alone():
    torch.manual_seed(0)
    model = build_model("block-hyperprior", **MODELS["block-hyperprior"]).eval()
    model.update_tables()
    flags = [p.requires_grad for p in model.parameters()]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    x = _image(8)
    first = model.refine_latents(x, 4.0, steps=3, seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model.refine_latents(x, 4.0, steps=3, seed=1), first)


def test_identity_cache_builds_once_per_live_object():
    class Key:
        pass

    cache: IdentityCache[int] = IdentityCache()
    calls = []
    a, b = Key(), Key()
    assert cache.get(a, lambda _: calls.append(1) or 1) == 1
    assert cache.get(a, lambda _: calls.append(2) or 2) == 1
    assert cache.get(b, lambda _: calls.append(3) or 3) == 3
    assert calls == [1, 3] and len(cache) == 2
    del a
    gc.collect()
    assert len(cache) == 1
