"""Every family built on the trained default starts exactly where the default is
(DESIGN.md decision 8; issue 19): warm-started from the shipped ``block-hyperprior-mse``
weights (``TrainConfig.init_from``; here :mod:`neurocodec.train.warm_start`, which also
keeps the parent's integer coding state and encoder hints), at step 0

* ``block-swinv2`` and ``block-region`` (zero-initialised residual stages) *are* the
  default: the training face's reconstruction and bits are equal to the last bit
  (``torch.equal``), and ``Codec(weights=...)`` writes the default's payload byte for byte;
* ``block-mixture`` is the default's Gaussian up to its extra components' weight of
  2**-15 each: same reconstruction and z bits exactly, the latents' training-face bits and
  coded bytes within 0.5 % (measured: at most 0.21 % and 0.33 %), and its stream
  round-trips exactly.

Tiny images (64 x 96 and a 128 x 192 crop), one thread's worth of seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _helpers import load_module

torch = pytest.importorskip("torch")

from neurocodec.format import unpack  # noqa: E402
from neurocodec.models import ARCHITECTURES  # noqa: E402
from neurocodec.train.warm_start import export_step_zero, warm_start_model  # noqa: E402
from neurocodec.zoo import WEIGHTS_DIR, load_weights  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = WEIGHTS_DIR / "block-hyperprior-mse.safetensors"
STAGED = ("block-swinv2", "block-region")
QUALITIES = (1.0, 4.5, 8.0)

fuzz = load_module("fuzz_decoder", ROOT / "benchmarks" / "fuzz_decoder.py")


@pytest.fixture(scope="module")
def default():
    return load_weights(SHIPPED)


def image(height: int, width: int, seed: int) -> np.ndarray:
    return fuzz.seed_image(height, width, seed)


def tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float() / 255


def training_face(model, x: torch.Tensor, quality: torch.Tensor, proxy: str):
    with torch.no_grad():
        return model(x, quality, proxy, torch.Generator().manual_seed(7))


# --------------------------------------------------------------------------- #
# Zero-initialised stages: exactly the default
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("architecture", STAGED)
def test_stages_are_named_apart_from_the_default(architecture, default):
    """The new parameters are exactly the stages (``warm_start_fresh``); every parameter of
    the default keeps its name and shape, so ``--init-from`` loads all of them."""
    model = ARCHITECTURES[architecture](**_shipped_config())
    own, parent = model.state_dict(), default.state_dict()
    assert all(k in own and own[k].shape == v.shape for k, v in parent.items())
    fresh = set(own) - set(parent)
    assert fresh and all(k.startswith(model.warm_start_fresh) for k in fresh)


@pytest.mark.parametrize("architecture", STAGED)
def test_staged_model_at_step_zero_is_the_default(architecture, default):
    """Training face (eval mode, both rate proxies, a batch at two qualities): x_hat, y
    bits and z bits equal the default's exactly."""
    model = warm_start_model(architecture, SHIPPED)
    x = torch.cat([tensor(image(64, 96, 1)), tensor(image(64, 96, 2))])
    quality = torch.tensor([2.0, 6.5])
    for proxy in ("round", "noise"):
        ours, theirs = training_face(model, x, quality, proxy), training_face(default, x, quality, proxy)
        assert torch.equal(ours.x_hat, theirs.x_hat), proxy
        assert torch.equal(ours.y_bits, theirs.y_bits), proxy
        assert torch.equal(ours.z_bits, theirs.z_bits), proxy


@pytest.mark.parametrize("architecture", STAGED)
def test_staged_model_at_step_zero_codes_the_default_bytes(architecture, default, tmp_path):
    """``Codec(weights=...)`` of the step-0 file (the default's encoder hints given to its
    model) writes the default's payload segments byte for byte; the decoded image is the
    default's."""
    from neurocodec.codec import Codec

    path = tmp_path / f"{architecture}-step0.safetensors"
    export_step_zero(architecture, SHIPPED, path, f"{architecture}-step0")
    # a Codec of its own for the default: the zoo's cached model is shared with other tests
    ours, theirs = Codec(weights=str(path)), Codec(weights=str(SHIPPED))
    ours.model.channel_energy = default.channel_energy
    picture = image(80, 112, 3)
    for quality in QUALITIES:
        data, promised = ours.compress_with_reconstruction(picture, quality)
        reference = theirs.compress(picture, quality)
        assert unpack(data)[1] == unpack(reference)[1], quality
        decoded = ours.decompress(data)
        np.testing.assert_array_equal(decoded, promised)
        np.testing.assert_array_equal(decoded, theirs.decompress(reference))


def _shipped_config() -> dict:
    from neurocodec.zoo.weights import read_metadata

    return read_metadata(SHIPPED)["config"]


# --------------------------------------------------------------------------- #
# Gaussian mixture: the default's Gaussian, up to 2**-15 per extra component
# --------------------------------------------------------------------------- #


def test_mixture_at_step_zero_is_the_default_gaussian(default):
    """Component 0 carries the hyperprior's mean and scale and the others weigh 2**-15 each.

    Exact: x_hat, z bits, the z segment, the reconstruction. Near: the latents' training-face
    bits (total within 0.5 %, 99 % of the elements within 0.01 bit: only far-tail values,
    several scales from the mean, where a wider extra component's 2**-15 outweighs the
    Gaussian's tail, differ more) and the y segment (within 0.5 %: each extra component
    keeps 1 of 2**16 weight units in the coder, and the per-element 20-bit pmfs are
    renormalised with every entry >= 1). The stream round-trips exactly."""
    mixture = warm_start_model("block-mixture", SHIPPED)
    plain = load_weights(SHIPPED)
    plain.channel_energy = mixture.channel_energy = None  # both plain rounding (RD rounding: the next test)
    for x in (tensor(image(64, 96, 4)), tensor(_natural_crop())):
        for quality in QUALITIES:
            q = torch.tensor([quality])
            for proxy in ("round", "noise"):
                ours, theirs = training_face(mixture, x, q, proxy), training_face(default, x, q, proxy)
                assert torch.equal(ours.x_hat, theirs.x_hat)
                assert torch.equal(ours.z_bits, theirs.z_bits)
                total = float(ours.y_bits.sum()) / float(theirs.y_bits.sum())
                assert abs(total - 1) < 5e-3, (quality, proxy, total)
                close = float(((ours.y_bits - theirs.y_bits).abs() < 0.01).float().mean())
                assert close > 0.99, (quality, proxy, close)
            segments, promised = mixture.compress(x, quality)
            reference, expected = plain.compress(x, quality)
            assert segments[0] == reference[0]
            assert abs(len(segments[1]) / len(reference[1]) - 1) < 5e-3, (quality, len(segments[1]),
                                                                            len(reference[1]))
            assert torch.equal(promised, expected)
            assert torch.equal(mixture.decompress(segments, tuple(x.shape[2:]), quality), promised)


def test_mixture_at_step_zero_with_rd_rounding_codes_like_the_hinted_default(default):
    """With the default's encoder hints both choose symbols by rate-distortion rounding
    (the mixture's bits from its exact pmfs): the y segments are within 1 % and the
    reconstructions within a few latents' worth; each round trip is exact, and rounding
    for rate never costs the mixture bits."""
    mixture = warm_start_model("block-mixture", SHIPPED)
    hinted = load_weights(SHIPPED)
    assert hinted.channel_energy is not None
    mixture.channel_energy = hinted.channel_energy
    for x in (tensor(image(64, 96, 4)), tensor(_natural_crop())):
        for quality in QUALITIES:
            segments, promised = mixture.compress(x, quality)
            reference, expected = hinted.compress(x, quality)
            assert abs(len(segments[1]) / len(reference[1]) - 1) < 1e-2, (quality, len(segments[1]), len(reference[1]))
            assert float((promised - expected).abs().mean()) < 2e-3
            assert torch.equal(mixture.decompress(segments, tuple(x.shape[2:]), quality), promised)
            mixture.channel_energy = None
            plain_segments, _ = mixture.compress(x, quality)
            mixture.channel_energy = hinted.channel_energy
            assert len(segments[1]) <= len(plain_segments[1]) + 2


def _natural_crop() -> np.ndarray:
    """A 128 x 192 crop of a photograph: kodim01 if ../shared is there, else a smooth
    synthetic image (the test must pass without ../shared)."""
    path = ROOT.parent / "shared" / "data" / "kodak" / "kodim01.png"
    if path.is_file():
        from PIL import Image

        return np.asarray(Image.open(path).convert("RGB"))[:128, :192]
    return image(128, 192, 5)


# --------------------------------------------------------------------------- #
# The training path: --init-from the shipped weights
# --------------------------------------------------------------------------- #


def _train_from_shipped(architecture: str, tmp_path: Path, steps: int, fresh_only: bool = False):
    """``train`` warm-started from the shipped default, batch 1 of 32-pixel crops of two small
    images; returns the model after the last step."""
    from PIL import Image

    from neurocodec.train import TrainConfig, train

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(image(48, 64, i)).save(folder / f"img{i}.png")
    cfg = TrainConfig(data=str(folder), architecture=architecture, model_config=_shipped_config(),
                      init_from=str(SHIPPED), steps=steps, batch=1, crop=32, scales=(1.0,), log_every=1,
                      checkpoint_every=1, rate_proxy="round", seed=3, precision="fp32", fresh_only=fresh_only)
    trained = []
    train(cfg, tmp_path / "run", progress=False, on_step=lambda step, model: trained.append(model))
    return trained[-1]


@pytest.mark.parametrize("architecture", ("block-swinv2", "block-region", "block-mixture"))
def test_train_warm_starts_from_the_shipped_weights(architecture, tmp_path):
    """``train(TrainConfig(init_from=<shipped>, architecture=A, model_config=<its card's
    options>))`` loads the default's parameters and trains the fresh ones: one step of
    batch 1 on 32-pixel crops moves the zero-initialised output layers."""
    model = _train_from_shipped(architecture, tmp_path, steps=1)
    fresh = {k: v for k, v in model.state_dict().items() if k.startswith(model.warm_start_fresh)}
    start = ARCHITECTURES[architecture](**_shipped_config()).state_dict()
    moved = [k for k, v in fresh.items() if not torch.equal(v, start[k])]
    assert moved, "no fresh parameter was trained"
    # the rest came from the shipped file (one Adam step away from it), not from a fresh init
    shipped = load_weights(SHIPPED).state_dict()
    for key in ("log_gain", "synthesis_modulation", "entropy_model.hyper_synthesis.layers.2.bias"):
        assert float((model.state_dict()[key] - shipped[key]).abs().max()) < 0.01, key
        assert float((start[key] - shipped[key]).abs().max()) > 0.1, key


@pytest.mark.parametrize("architecture", ("block-region", "block-context"))
def test_fresh_only_trains_the_additions_and_leaves_the_loaded_weights_as_they_are(architecture, tmp_path):
    """``--fresh-only``: the family's additions move, every parameter loaded from --init-from
    keeps its value bit for bit."""
    model = _train_from_shipped(architecture, tmp_path, steps=2, fresh_only=True)
    start = ARCHITECTURES[architecture](**_shipped_config())
    from neurocodec.zoo import load_state_into

    load_state_into(start, load_weights(SHIPPED).state_dict())
    fresh = tuple(model.warm_start_fresh)
    moved = [k for k, v in model.state_dict().items() if k.startswith(fresh) and not torch.equal(v, start.state_dict()[k])]
    assert moved, "no fresh parameter was trained"
    for key, value in model.state_dict().items():
        if not key.startswith(fresh) and value.is_floating_point():
            assert torch.equal(value, start.state_dict()[key]), key


def test_fresh_only_is_refused_where_it_leaves_nothing_to_train():
    from neurocodec.train import TrainConfig
    from neurocodec.train.config import TrainConfigError

    with pytest.raises(TrainConfigError, match="fresh_only leaves nothing to train"):
        TrainConfig(data="x", architecture="block-hyperprior", init_from=str(SHIPPED), fresh_only=True).validate()
    with pytest.raises(TrainConfigError, match="fresh_only needs init_from"):
        TrainConfig(data="x", architecture="block-region", fresh_only=True).validate()
