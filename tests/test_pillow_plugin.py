"""The Pillow plugin (issue 20): Image.open / Image.save of .ncdc after one import."""

import io

import numpy as np
import pytest
from PIL import Image

import neurocodec.pillow  # noqa: F401  (registers the format)
from neurocodec import Codec, FormatError, decompress


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:40, 0:56]
    base = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) + rng.integers(0, 20, (40, 56, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def test_save_writes_the_codec_stream_and_open_decodes_it(tmp_path, picture):
    path = tmp_path / "p.ncdc"
    picture.save(path, quality=3)
    data = path.read_bytes()
    assert data == Codec().compress(picture, quality=3)
    with Image.open(path) as im:
        assert (im.format, im.size, im.mode) == ("NCDC", picture.size, "RGB")
        assert im.info["quality"] == 3.0
        assert np.array_equal(np.asarray(im), decompress(data))


def test_open_reads_only_the_header_until_load(picture):
    buf = io.BytesIO()
    picture.save(buf, format="NCDC")
    im = Image.open(io.BytesIO(buf.getvalue()))
    assert im.size == picture.size and im._stream is not None  # not decoded yet
    im.load()
    assert im._stream is None


def test_palette_and_grey_images_are_saved_as_rgb(tmp_path, picture):
    for mode in ("P", "L"):
        path = tmp_path / f"{mode}.ncdc"
        picture.convert(mode).save(path)
        with Image.open(path) as im:
            assert im.mode == "RGB" and im.size == picture.size


def test_a_damaged_stream_is_a_format_error(tmp_path, picture):
    buf = io.BytesIO()
    picture.save(buf, format="NCDC")
    damaged = bytearray(buf.getvalue())
    damaged[12] ^= 0xFF
    with pytest.raises(FormatError):
        Image.open(io.BytesIO(bytes(damaged))).load()


def test_other_files_are_not_claimed(tmp_path, picture):
    path = tmp_path / "p.png"
    picture.save(path)
    with Image.open(path) as im:
        assert im.format == "PNG"
