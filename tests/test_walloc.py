"""The CDF 9/7 wavelet packet, the ``walloc`` architecture and ``Codec.encode_latents``.

* the wavelet packet reconstructs exactly (float64: to 1e-12; float32: to float
  rounding) for any size that is a multiple of ``2**J``, both boundary extensions;
  its filters satisfy biorthogonality and, when PyWavelets is installed, equal
  ``bior4.4`` and give PyWavelets' coefficients (periodic: the whole packet; symmetric:
  one level, against ``reflect`` mode);
* the band order of :func:`sequency_order` is the frequency order of the bands;
* ``walloc`` starts as its linear codec (identity when every band is kept), trains
  through ``neurocodec.train.train``, exports, and a ``Codec`` on the weight file
  round-trips exactly, with identical symbols when decoding on 2 threads without mkldnn;
* ``encode_latents`` returns what ``compress_with_latents`` returns, with the documented
  shape and dtype, for walloc and the block and conv hyperpriors.
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from neurocodec.transforms.wavelet import (  # noqa: E402
    BOUNDARIES, WaveletPacket, cdf97_filters, sequency_order,
)

TINY_WALLOC = dict(levels=2, latent_channels=6, encoder_hidden=8, decoder_blocks=1, decoder_hidden=16,
                   hyper_channels=8, hyper_hidden=16)


# --------------------------------------------------------------------------- #
# Wavelet packet
# --------------------------------------------------------------------------- #


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(levels=st.integers(1, 3), rows=st.integers(1, 6), cols=st.integers(1, 6), batch=st.integers(1, 2),
       boundary=st.sampled_from(BOUNDARIES), scale=st.sampled_from([1e-3, 1.0, 255.0]), seed=st.integers(0, 2**16))
def test_perfect_reconstruction_float64(levels, rows, cols, batch, boundary, scale, seed):
    factor = 2**levels
    x = torch.randn(batch, 3, rows * factor, cols * factor, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed)) * scale
    wpt = WaveletPacket(3, levels, boundary)
    y = wpt(x)
    assert y.shape == (batch, 3 * 4**levels, rows, cols)
    assert torch.allclose(wpt.inverse(y), x, rtol=0, atol=1e-12 * scale)
    # nearly orthonormal: the energy changes by far less than a generic transform's would
    assert 0.5 < float(y.pow(2).sum() / x.pow(2).sum()) < 2.0


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(levels=st.integers(1, 3), rows=st.integers(1, 5), cols=st.integers(1, 5),
       boundary=st.sampled_from(BOUNDARIES), seed=st.integers(0, 2**16))
def test_perfect_reconstruction_float32_images(levels, rows, cols, boundary, seed):
    factor = 2**levels
    x = torch.rand(1, 3, rows * factor, cols * factor, generator=torch.Generator().manual_seed(seed))
    wpt = WaveletPacket(3, levels, boundary)
    assert float((wpt.inverse(wpt(x)) - x).abs().max()) < 1e-5  # far below a 1/255 level


def test_constant_image_has_only_lowpass_energy():
    """Symmetric extension of a constant is constant: every detail band is zero and the
    lowpass band is 2**J times the value (DC gain sqrt(2) per filter)."""
    x = torch.full((1, 1, 16, 24), 0.3, dtype=torch.float64)
    y = WaveletPacket(1, 2, "symmetric")(x)
    assert torch.allclose(y[0, 0], torch.full((4, 6), 0.3 * 4, dtype=torch.float64), atol=1e-12)
    assert float(y[0, 1:].abs().max()) < 1e-12


def test_filters_are_biorthogonal():
    f = cdf97_filters()
    low_a, low_s = f["analysis_low"], f["synthesis_low"]
    assert len(low_a) == 9 and len(low_s) == 7
    for h in f.values():
        np.testing.assert_allclose(h, h[::-1], atol=1e-15)  # symmetric (linear phase)
    assert math.isclose(low_a.sum(), math.sqrt(2)) and math.isclose(low_s.sum(), math.sqrt(2))
    assert abs(f["analysis_high"].sum()) < 1e-12 and abs(f["synthesis_high"].sum()) < 1e-12
    # sum_m h_a[m] h_s[m - 2k] = delta_k (the lowpass half of the biorthogonality condition)
    padded = np.pad(low_s, 1)  # both centred, 9 taps
    for k in range(-2, 3):
        value = sum(low_a[m] * padded[m - 2 * k] for m in range(9) if 0 <= m - 2 * k < 9)
        assert math.isclose(value, 1.0 if k == 0 else 0.0, abs_tol=1e-12), k


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="boundary"):
        WaveletPacket(3, 2, "zero")
    with pytest.raises(ValueError, match="levels"):
        WaveletPacket(3, 0)
    wpt = WaveletPacket(3, 2)
    with pytest.raises(ValueError, match="multiples of 4"):
        wpt(torch.zeros(1, 3, 8, 10))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        wpt(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 48, H, W\)"):
        wpt.inverse(torch.zeros(1, 12, 2, 2))


def test_sequency_order_is_the_frequency_order():
    """Each band's basis function has its spectral centroid inside the frequency interval
    that sequency_order assigns to it (along both axes)."""
    levels, n = 3, 64
    order = sequency_order(levels)
    assert sorted(order) == [(a, b) for a in range(8) for b in range(8)]
    wpt = WaveletPacket(1, levels, "periodic")
    width = n / 2 / 2**levels  # band width in FFT bins
    for band, (fh, fw) in enumerate(order):
        c = torch.zeros(1, 4**levels, n >> levels, n >> levels, dtype=torch.float64)
        c[0, band, 3, 3] = 1.0
        power = np.abs(np.fft.rfft2(wpt.inverse(c)[0, 0].numpy())) ** 2
        along_w = power.sum(0)
        along_h = power.sum(1)[: n // 2 + 1]
        centroid_w = (along_w * np.arange(len(along_w))).sum() / along_w.sum()
        centroid_h = (along_h * np.arange(len(along_h))).sum() / along_h.sum()
        assert fh * width - 1 < centroid_h < (fh + 1) * width + 1, band
        assert fw * width - 1 < centroid_w < (fw + 1) * width + 1, band


pywt = None
try:  # PyWavelets is a test extra; the comparisons below skip without it
    import pywt
except ImportError:  # pragma: no cover
    pass
needs_pywt = pytest.mark.skipif(pywt is None, reason="PyWavelets (pywt) is not installed")


@needs_pywt
def test_filters_equal_pywavelets_bior44():
    w = pywt.Wavelet("bior4.4")
    f = cdf97_filters()
    # pywt stores them zero-padded to 10 taps (and to ~13 significant digits)
    np.testing.assert_allclose(f["analysis_low"], w.dec_lo[1:], atol=1e-11)
    np.testing.assert_allclose(f["analysis_high"], w.dec_hi[1:8], atol=1e-11)
    np.testing.assert_allclose(f["synthesis_low"], w.rec_lo[1:8], atol=1e-11)
    np.testing.assert_allclose(f["synthesis_high"], w.rec_hi[1:], atol=1e-11)


@needs_pywt
@pytest.mark.parametrize("levels,shape", [(1, (8, 12)), (2, (16, 32)), (3, (24, 40))])
def test_periodic_packet_equals_pywavelets(levels, shape):
    """Every band equals PyWavelets' WaveletPacket2D node in ``periodization`` mode.
    Node letters: a = low/low, h = high along H, v = high along W, d = both."""
    x = np.random.default_rng(levels).normal(size=shape)
    ours = WaveletPacket(1, levels, "periodic")(torch.from_numpy(x)[None, None])[0].numpy()
    packet = pywt.WaveletPacket2D(x, "bior4.4", mode="periodization", maxlevel=levels)
    digit = {"a": 0, "v": 1, "h": 2, "d": 3}
    nodes = packet.get_level(levels, "natural")
    assert len(nodes) == 4**levels
    for node in nodes:
        band = 0
        for letter in node.path:
            band = 4 * band + digit[letter]
        np.testing.assert_allclose(ours[band], node.data, atol=1e-10, err_msg=node.path)


@needs_pywt
def test_symmetric_level_equals_pywavelets_reflect():
    """One level of our non-expansive symmetric transform is PyWavelets' (expansive)
    whole-sample-symmetric ``reflect`` transform without its first two and last two
    coefficients (pywt's output k is centred on sample 2k - 4, ours on 2k)."""
    for n in (8, 14, 30):
        x = np.random.default_rng(n).normal(size=(6, n))
        bands = WaveletPacket(1, 1, "symmetric")._analyse(torch.from_numpy(x)[:, None, None, :], 3)
        low, high = pywt.dwt(x, "bior4.4", mode="reflect", axis=-1)
        np.testing.assert_allclose(bands[:, 0, 0].numpy(), low[:, 2:2 + n // 2], atol=1e-10)
        np.testing.assert_allclose(bands[:, 1, 0].numpy(), high[:, 2:2 + n // 2], atol=1e-10)


# --------------------------------------------------------------------------- #
# The walloc architecture
# --------------------------------------------------------------------------- #


def test_walloc_shapes_and_linear_start():
    from neurocodec.models import ARCHITECTURES, build_model

    assert "walloc" in ARCHITECTURES
    model = build_model("walloc")
    assert model.pad_multiple == 16 and model.latent_channels == 16
    x = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    out = model(x, torch.tensor([1.0, 8.0]))
    assert out.x_hat.shape == x.shape
    assert out.y_bits.shape == (2, 16, 8, 12) and out.z_bits.shape == (2, 32, 2, 3)
    # keeping every band, the initial codec (before quantisation) is the identity
    full = build_model("walloc", levels=1, latent_channels=12, encoder_hidden=0)
    with torch.no_grad():
        x_hat = full.synthesis(full.analysis(x), torch.tensor([3.0, 3.0]))
    assert float((x_hat - x).abs().max()) < 1e-5
    with pytest.raises(ValueError, match="latent_channels"):
        build_model("walloc", levels=1, latent_channels=13)


def tiny_images(folder, count=3, size=(80, 96)):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        y, x = np.mgrid[0:size[0], 0:size[1]]
        img = np.stack([x * 2.5, y * 3.0, 128 + 60 * np.sin(x / 5.0 + i)], -1) + rng.normal(0, 8, (*size, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def walloc_weights(tmp_path_factory):
    """A tiny walloc trained for 3 steps through neurocodec.train and exported from the run."""
    from neurocodec.train import TrainConfig, train
    from neurocodec.train.export import export_run

    root = tmp_path_factory.mktemp("walloc")
    data = tiny_images(root / "images")
    cfg = TrainConfig(data=str(data), architecture="walloc", model_config=TINY_WALLOC, steps=3, batch=2, crop=64,
                      scales=(1.0,), checkpoint_every=3, log_every=1, seed=1)
    train(cfg, root / "run", progress=False)
    log = [json.loads(line) for line in (root / "run" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3] and all(math.isfinite(row["loss"]) for row in log)
    path = root / "walloc-tiny.safetensors"
    export_run(root / "run", path, "walloc-tiny")
    return path


@functools.lru_cache(maxsize=None)
def _codec(path):
    import neurocodec

    return neurocodec.Codec(weights=str(path))


def random_image(height, width, seed):
    rng = np.random.default_rng(seed)
    smooth = np.linspace(0, 255, height * width).reshape(height, width, 1)
    return np.clip(smooth * rng.uniform(0.2, 1, 3) + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(height=st.integers(1, 70), width=st.integers(1, 70), quality=st.floats(1.0, 8.0), seed=st.integers(0, 99))
def test_codec_round_trip_is_exact(walloc_weights, height, width, quality, seed):
    codec = _codec(walloc_weights)
    assert codec.model.architecture == "walloc"
    image = random_image(height, width, seed)
    data, reconstruction = codec.compress_with_reconstruction(image, quality)
    decoded = codec.decompress(data)
    assert decoded.shape == (height, width, 3)
    np.testing.assert_array_equal(decoded, reconstruction)


def test_decoding_on_two_threads_without_mkldnn(walloc_weights):
    """Encode on 1 thread; decode on 2 threads with mkldnn off: identical symbols (exact
    prior), hence identical latents and, on this machine, identical pixels."""
    from neurocodec.format import unpack

    codec = _codec(walloc_weights)
    image = random_image(32, 48, 5)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        data, reconstruction, latents = codec.compress_with_latents(image, 6.5)
        torch.set_num_threads(2)
        with torch.backends.mkldnn.flags(enabled=False):
            header, segments = unpack(data)
            y_hat = codec.model.entropy_model.decode(segments, (1, *latents.shape), header.quality)
            decoded = codec.decompress(data)
    finally:
        torch.set_num_threads(previous)
    np.testing.assert_array_equal(y_hat[0].numpy(), latents)
    np.testing.assert_array_equal(decoded, reconstruction)


def test_streams_are_reproducible(walloc_weights):
    codec = _codec(walloc_weights)
    image = random_image(33, 47, 9)
    assert codec.compress(image, 3.0) == codec.compress(image, 3.0)
    assert codec.compress(image, 3.0) != codec.compress(image, 7.0)


# --------------------------------------------------------------------------- #
# encode_latents
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory):
    """Small random block-hyperprior and conv-hyperprior weight files."""
    from neurocodec.models import build_model
    from neurocodec.zoo import export_weights

    root = tmp_path_factory.mktemp("others")
    paths = {}
    for arch, config in (("block-hyperprior", dict(refine_blocks=0, pixel_hidden=0, hyper_channels=8, hyper_hidden=16)),
                         ("conv-hyperprior", dict(channels=8, latent_channels=12, hyper_channels=8))):
        torch.manual_seed(0)
        paths[arch] = root / f"{arch}.safetensors"
        export_weights(build_model(arch, **config), paths[arch], arch)
    return paths


def test_encode_latents_walloc(walloc_weights):
    codec = _codec(walloc_weights)
    image = random_image(37, 50, 2)
    latents = codec.encode_latents(image, 4.0)
    assert latents.dtype == np.float32
    assert latents.shape == (TINY_WALLOC["latent_channels"], 48 // 4, 64 // 4)  # padded to 48 x 64, stride 4
    _, _, expected = codec.compress_with_latents(image, 4.0)
    np.testing.assert_array_equal(latents, expected)
    np.testing.assert_array_equal(latents, np.round(latents))  # symbol + integer mean
    default = codec.encode_latents(image)  # the codec's quality (4)
    np.testing.assert_array_equal(default, latents)
    assert not np.array_equal(codec.encode_latents(image, 8.0), latents)


@pytest.mark.parametrize("arch,channels,stride", [("block-hyperprior", 192, 8), ("conv-hyperprior", 12, 16)])
def test_encode_latents_other_architectures(other_weights, arch, channels, stride):
    import neurocodec

    codec = neurocodec.Codec(weights=str(other_weights[arch]))
    image = random_image(40, 70, 3)
    latents = codec.encode_latents(image, 2.5)
    m = codec.model.pad_multiple
    assert latents.dtype == np.float32
    assert latents.shape == (channels, -(-40 // m) * m // stride, -(-70 // m) * m // stride)
    np.testing.assert_array_equal(latents, codec.compress_with_latents(image, 2.5)[2])


def test_encode_latents_rejects_bad_input(walloc_weights):
    from neurocodec import ImageError

    codec = _codec(walloc_weights)
    with pytest.raises(ImageError):
        codec.encode_latents(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match="quality"):
        codec.encode_latents(random_image(8, 8, 0), 9.0)
