"""Tests of the codec layer (neurocodec.Codec, neurocodec.compress / decompress).

They use the shipped default model but never its rate or quality figures: the weights
are retrained and replaced from time to time, so only properties that hold for any
weights are checked (exact decoder reproduction, shapes, input handling, errors).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neurocodec
from neurocodec import Codec, FormatError, ImageError, UnknownModelError
from neurocodec.errors import TruncatedStreamError
from neurocodec.format import Header, pack, read_header, unpack

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

# Every decode of a hostile stream must end within this many seconds (generous: the
# test machine is shared with training; a normal decode here takes ~0.05 s).
DECODE_TIME_LIMIT = 10.0


@functools.lru_cache(maxsize=None)
def codec() -> Codec:
    """The default model, loaded once for the whole module."""
    return Codec()


def make_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like uint8 (H, W, 3) test image: smooth colour ramps, an edge, some noise."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    x = np.linspace(0.0, 1.0, width)[None, :, None]
    a, b, c = rng.uniform(0.2, 1.0, (3, 1, 1, 3))
    img = 255 * (0.5 * a * y + 0.4 * b * x + 0.1 * np.sin(6 * (x + y) + c * 5))
    img = img + 60.0 * ((x - 0.5) * (y - 0.3) > 0)  # a hard edge
    img = img + rng.normal(0.0, 6.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def reference_stream() -> tuple[bytes, np.ndarray]:
    """A small real stream (40 x 56, quality 3) and the encoder's reconstruction."""
    return codec().compress_with_reconstruction(make_image(40, 56, seed=7), 3)


# --------------------------------------------------------------------------- #
# Round trip: the decoder reproduces the encoder's reconstruction exactly
# --------------------------------------------------------------------------- #


def check_roundtrip(height: int, width: int, quality: float, seed: int = 0) -> bytes:
    image = make_image(height, width, seed)
    data, reconstruction = codec().compress_with_reconstruction(image, quality)
    assert isinstance(data, bytes)
    assert reconstruction.shape == (height, width, 3) and reconstruction.dtype == np.uint8
    decoded = neurocodec.decompress(data)
    assert decoded.shape == (height, width, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, reconstruction)
    header = read_header(data)
    assert (header.height, header.width, header.channels) == (height, width, 3)
    assert header.model_id == codec().name
    assert header.weight_hash == codec().info.weight_hash
    assert header.quality == float(np.float32(quality))
    return data


@pytest.mark.parametrize("height, width", [(1, 1), (1, 999), (999, 1), (33, 65), (1000, 700)])
def test_roundtrip_edge_sizes(height, width):
    check_roundtrip(height, width, quality=4)


# Sides anywhere up to 1000 x 700, but small ones more often: the extremes are covered by
# the explicit cases above, and the whole file must stay fast on a busy two-core machine.
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(height=st.integers(1, 1000) | st.integers(1, 96), width=st.integers(1, 700) | st.integers(1, 96),
       quality=st.floats(1.0, 8.0, allow_nan=False), seed=st.integers(0, 2**16))
def test_roundtrip_random_sizes(height, width, quality, seed):
    check_roundtrip(height, width, quality, seed)


def test_roundtrip_tiled():
    """A side above UNTILED_MAX_SIDE is coded in independent tiles; still exact."""
    from neurocodec.codec import TILE_SIZE, UNTILED_MAX_SIDE

    width = UNTILED_MAX_SIDE + 50
    data = check_roundtrip(24, width, quality=2)
    header, segments = unpack(data)
    assert (header.tile_height, header.tile_width) == (TILE_SIZE, TILE_SIZE)
    assert header.tile_grid == (1, math.ceil(width / TILE_SIZE))
    assert len(segments) == 2 * header.tile_grid[1]


def test_codec_decompress_method_and_integer_qualities():
    image = make_image(20, 30)
    for q in (1, 8, 2.5):
        data, reconstruction = codec().compress_with_reconstruction(image, q)
        np.testing.assert_array_equal(codec().decompress(data), reconstruction)
    assert codec().compress(image) == codec().compress_with_reconstruction(image, codec().quality)[0]


def test_module_functions():
    image = make_image(17, 23)
    data = neurocodec.compress(image, quality=5)
    assert data == Codec(quality=5).compress(image)
    assert neurocodec.decompress(data).shape == (17, 23, 3)
    assert any(m.name == codec().name and m.is_default for m in neurocodec.list_models())


# --------------------------------------------------------------------------- #
# Input types
# --------------------------------------------------------------------------- #

H, W = 20, 28


def _stream(image) -> bytes:
    return codec().compress(image, 3)


@functools.lru_cache(maxsize=None)
def _rgb() -> np.ndarray:
    return make_image(H, W, seed=3)


def test_input_pil_rgb():
    assert _stream(Image.fromarray(_rgb(), "RGB")) == _stream(_rgb())


def test_input_pil_greyscale_is_coded_as_rgb():
    grey = _rgb()[:, :, 1].copy()
    expected = _stream(np.repeat(grey[:, :, None], 3, axis=2))
    assert _stream(Image.fromarray(grey, "L")) == expected
    assert _stream(grey) == expected                 # numpy (H, W)
    assert _stream(grey[:, :, None]) == expected     # numpy (H, W, 1)
    decoded = neurocodec.decompress(expected)
    assert decoded.shape == (H, W, 3)


def test_input_pil_palette():
    palette_image = Image.fromarray(_rgb(), "RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    assert palette_image.mode == "P" and "transparency" not in palette_image.info
    assert _stream(palette_image) == _stream(np.asarray(palette_image.convert("RGB")))


def test_input_torch_uint8_and_float():
    rgb = _rgb()
    expected = _stream(rgb)
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    assert _stream(chw) == expected
    assert _stream(chw.unsqueeze(0)) == expected               # (1, 3, H, W)
    assert _stream(chw.float() / 255.0) == expected            # float in [0, 1], rounded to 8 bits
    assert _stream(chw.double() / 255.0) == expected
    assert _stream(chw.contiguous().permute(0, 2, 1).permute(0, 2, 1)) == expected  # non-contiguous


def test_input_numpy_non_contiguous():
    rgb = _rgb()
    assert _stream(np.asfortranarray(rgb)) == _stream(rgb)
    big = make_image(2 * H, 2 * W, seed=9)
    view = big[::2, ::2]
    assert _stream(view) == _stream(np.ascontiguousarray(view))


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA"])
def test_alpha_pil_opaque_accepted_transparent_rejected(mode):
    image = Image.fromarray(_rgb(), "RGB").convert("RGBA")
    if mode != "RGBA":
        image = image.convert(mode)
    flat = image.convert("RGB") if mode != "LA" else image.convert("L").convert("RGB")
    assert codec().compress(image) == codec().compress(flat)  # opaque: the alpha is dropped
    rgba = image.convert("RGBA")
    rgba.putpixel((0, 0), (0, 0, 0, 10))
    with pytest.raises(ImageError, match="transparent pixels"):
        codec().compress(rgba.convert(mode) if mode != "PA" else rgba)


def test_rejects_palette_with_transparency():
    image = Image.fromarray(_rgb(), "RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = int(np.asarray(image)[0, 0])
    with pytest.raises(ImageError, match="alpha"):
        codec().compress(image)


def test_16_bit_keeps_the_high_byte():
    values = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 37
    expected = codec().compress((values >> 8).astype(np.uint8))
    assert codec().compress(Image.fromarray(values)) == expected  # PIL I;16
    assert codec().compress(values) == expected  # numpy uint16


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_numpy_in_unit_range(dtype):
    rgb = _rgb()
    as_float = (rgb / 255.0).astype(dtype)
    assert codec().compress(as_float) == codec().compress(rgb)
    assert codec().compress(torch.from_numpy(as_float).permute(2, 0, 1)) == codec().compress(rgb)


@pytest.mark.parametrize("array", [
    np.zeros((H, W, 3), dtype=np.int64),
    np.zeros((H, W, 3), dtype=bool),
], ids=["int64", "bool"])
def test_rejects_other_numpy_dtypes(array):
    with pytest.raises(ImageError, match="uint8"):
        codec().compress(array)


@pytest.mark.parametrize("shape", [(H, W, 2), (3, H, W), (H,), (1, H, W, 3), (0, W, 3), (H, 0, 3),
                                   (0, 0), ()])
def test_rejects_wrong_numpy_shapes(shape):
    with pytest.raises(ImageError):
        codec().compress(np.zeros(shape, dtype=np.uint8))


@pytest.mark.parametrize("make", [
    lambda: torch.zeros((H, W, 3), dtype=torch.uint8),          # HWC instead of CHW
    lambda: torch.zeros((4, H, W), dtype=torch.uint8),          # alpha channel
    lambda: torch.zeros((2, 3, H, W), dtype=torch.uint8),       # a batch of two
    lambda: torch.zeros((3, H, W), dtype=torch.int32),          # integer but not uint8
    lambda: torch.full((3, H, W), float("nan")),                # NaN
    lambda: torch.full((3, H, W), float("inf")),                # infinity
], ids=["hwc", "alpha", "batch2", "int32", "nan", "inf"])
def test_rejects_bad_tensors(make):
    with pytest.raises(ImageError):
        codec().compress(make())


@pytest.mark.parametrize("value", [None, [[0, 0, 0]], b"\x00" * 12])
def test_rejects_non_images(value):
    with pytest.raises(ImageError):
        codec().compress(value)


def test_image_error_is_a_value_error():
    assert issubclass(ImageError, ValueError) and issubclass(ImageError, neurocodec.NeurocodecError)


# --------------------------------------------------------------------------- #
# Quality
# --------------------------------------------------------------------------- #

BAD_QUALITIES = [0, 0.999, 8.001, 9, -1, float("nan"), float("inf"), float("-inf"), "high", None]


@pytest.mark.parametrize("quality", BAD_QUALITIES, ids=repr)
def test_bad_quality_rejected_everywhere(quality):
    image = make_image(8, 8)
    with pytest.raises(ValueError):
        Codec(quality=quality)
    if quality is not None:  # None means "the codec's default" in compress()
        with pytest.raises(ValueError):
            codec().compress(image, quality)
        with pytest.raises(ValueError):
            neurocodec.compress(image, quality=quality)


def test_quality_is_stored_as_float32():
    data = codec().compress(make_image(8, 8), 1.1)
    assert read_header(data).quality == float(np.float32(1.1))


def test_quality_changes_the_stream():
    image = make_image(32, 32)
    assert codec().compress(image, 1) != codec().compress(image, 8)


# --------------------------------------------------------------------------- #
# Hostile bytes: only FormatError, in bounded time
# --------------------------------------------------------------------------- #


def decode_outcome(data: bytes):
    """neurocodec.decompress(data): the array, or the FormatError it raised. Any other
    exception propagates (and fails the test); the call must end in bounded time."""
    tic = time.perf_counter()
    try:
        result = neurocodec.decompress(data)
    except FormatError as exc:
        result = exc
    elapsed = time.perf_counter() - tic
    assert elapsed < DECODE_TIME_LIMIT, f"decoding took {elapsed:.1f} s"
    return result


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_reference_stream_decodes():
    data, reconstruction = reference_stream()
    np.testing.assert_array_equal(decode_outcome(data), reconstruction)


@pytest.mark.parametrize("data", [b"", b"N", b"NCDC", b"NCDC\x01", b"\x00" * 100, b"PK\x03\x04" + b"\x00" * 60],
                         ids=["empty", "N", "magic", "magic+version", "zeros", "zip"])
def test_short_and_foreign_inputs(data):
    assert isinstance(decode_outcome(data), FormatError)


@FUZZ
@given(st.data())
def test_truncated_streams(data):
    stream, _ = reference_stream()
    cut = data.draw(st.integers(0, len(stream) - 1), label="length")
    assert isinstance(decode_outcome(stream[:cut]), TruncatedStreamError)


@FUZZ
@given(st.data())
def test_corrupted_streams(data):
    stream, _ = reference_stream()
    corrupted = bytearray(stream)
    n = data.draw(st.integers(1, 8), label="corrupted bytes")
    for _ in range(n):
        position = data.draw(st.integers(0, len(stream) - 1), label="position")
        corrupted[position] ^= data.draw(st.integers(1, 255), label="xor")
    if bytes(corrupted) == stream:  # two flips cancelled out
        return
    assert isinstance(decode_outcome(bytes(corrupted)), FormatError)


@FUZZ
@given(extra=st.binary(min_size=1, max_size=64))
def test_trailing_bytes(extra):
    stream, _ = reference_stream()
    assert isinstance(decode_outcome(stream + extra), FormatError)


@FUZZ
@given(prefix=st.sampled_from([b"", b"N", b"NCDC", b"NCDC\x01", b"NCDC\x01\x00\x00"]),
       junk=st.binary(max_size=400))
def test_random_bytes(prefix, junk):
    assert isinstance(decode_outcome(prefix + junk), FormatError)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_garbage_payload_with_valid_checksums(data):
    """Damage the checksummed container cannot see: segments rewritten and re-packed with
    fresh CRCs, and header fields changed. The decoder must still raise only FormatError
    (or return an image of the declared size), quickly."""
    stream, _ = reference_stream()
    header, segments = unpack(stream)
    segments = list(segments)
    for k in range(len(segments)):
        action = data.draw(st.sampled_from(["keep", "flip", "cut", "random", "extend", "empty"]), label=f"seg{k}")
        seg = bytearray(segments[k])
        if action == "flip" and seg:
            seg[data.draw(st.integers(0, len(seg) - 1))] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            seg = seg[:data.draw(st.integers(0, len(seg)))]
        elif action == "random":
            seg = bytearray(data.draw(st.binary(max_size=300)))
        elif action == "extend":
            seg += data.draw(st.binary(min_size=1, max_size=50))
        elif action == "empty":
            seg = bytearray()
        segments[k] = bytes(seg)
    if data.draw(st.booleans(), label="change geometry"):
        height = data.draw(st.integers(1, 160))
        width = data.draw(st.integers(1, 160))
        tile = data.draw(st.sampled_from([0, 16, 64]))
        header = dataclasses.replace(header, height=height, width=width, tile_height=tile, tile_width=tile)
    if data.draw(st.booleans(), label="change quality"):
        quality = data.draw(st.sampled_from([1.0, 8.0, 0.5, 9.0, -2.0, 1e30, 2.75]))
        header = dataclasses.replace(header, quality=quality)
    if data.draw(st.booleans(), label="change segment count"):
        segments = segments[:data.draw(st.integers(0, len(segments)))] + [b"\x00"] * data.draw(st.integers(0, 2))
    result = decode_outcome(pack(header, segments))
    if not isinstance(result, FormatError):
        assert result.shape == (header.height, header.width, 3) and result.dtype == np.uint8


# --------------------------------------------------------------------------- #
# Streams of models this installation does not have
# --------------------------------------------------------------------------- #


def _restamped(model_id: str, weight_hash: bytes) -> bytes:
    stream, _ = reference_stream()
    header, segments = unpack(stream)
    return pack(dataclasses.replace(header, model_id=model_id, weight_hash=weight_hash), segments)


def test_unknown_model_names_model_and_hash():
    weight_hash = bytes.fromhex("0123456789abcdef")
    data = _restamped("no-such-model", weight_hash)
    with pytest.raises(UnknownModelError) as info:
        neurocodec.decompress(data)
    message = str(info.value)
    assert "no-such-model" in message and "0123456789abcdef" in message
    assert isinstance(info.value, FormatError)
    with pytest.raises(UnknownModelError, match="no-such-model"):
        codec().decompress(data)


def test_known_model_with_other_weights():
    data = _restamped(codec().name, bytes(8))
    with pytest.raises(UnknownModelError) as info:
        neurocodec.decompress(data)
    message = str(info.value)
    assert codec().name in message and "0000000000000000" in message
    assert codec().info.weight_hash.hex() in message


def test_unknown_coder_is_a_format_error():
    stream, _ = reference_stream()
    header, segments = unpack(stream)
    data = pack(dataclasses.replace(header, coder="triton-rans"), segments)
    assert isinstance(decode_outcome(data), FormatError)


# --------------------------------------------------------------------------- #
# Import weight
# --------------------------------------------------------------------------- #


def test_import_is_light(subprocess_env):
    code = (
        "import sys, neurocodec, neurocodec.errors, neurocodec.format\n"
        "neurocodec.FormatError, neurocodec.ImageError, neurocodec.__version__\n"
        "heavy = [m for m in ('torch', 'torchvision', 'matplotlib', 'ray', 'scipy', 'PIL') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert {'Codec', 'compress', 'decompress', 'list_models'} <= set(dir(neurocodec))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_lazy_attributes_resolve():
    assert neurocodec.Codec is Codec
    assert callable(neurocodec.compress) and callable(neurocodec.decompress)
    with pytest.raises(AttributeError):
        neurocodec.no_such_attribute  # noqa: B018
