"""Pillow plugin: read and write ``.ncdc`` streams with ``PIL.Image``.

One import registers the format::

    import neurocodec.pillow  # noqa: F401  (registers "NCDC" with Pillow)
    from PIL import Image

    im = Image.open("photo.ncdc")           # decoded on first access to the pixels
    im.save("copy.ncdc", quality=6)         # options: quality, model, weights

Guarantees:
  1. ``Image.open`` reads only the header (size and mode are known without decoding); the
     pixels are decoded by :func:`neurocodec.decompress` on ``load()``, with its limits.
  2. ``save`` writes exactly the bytes ``Codec(model).compress(im, quality)`` returns, so a
     stream saved through Pillow is the stream the API or the CLI would write.
  3. Streams are RGB: a greyscale or palette image is converted to RGB on save (as the
     CLI and API do), and an image with an alpha channel is refused unless it is opaque.
"""

from __future__ import annotations

from PIL import Image, ImageFile

from .format import FILE_EXTENSION, MAGIC, read_header

FORMAT = "NCDC"


def _accept(prefix: bytes) -> bool:
    return prefix[: len(MAGIC)] == MAGIC


class NcdcImageFile(ImageFile.ImageFile):
    """A neurocodec stream opened by Pillow (registered as format ``NCDC``)."""

    format = FORMAT
    format_description = "neurocodec neural image stream"

    def _open(self) -> None:
        data = self.fp.read()
        header = read_header(data)  # FormatError (a ValueError) for bad bytes, before any decoding
        self._stream = data
        self._size = (header.width, header.height)
        self._mode = "RGB"
        self.info["model"] = header.model_id
        self.info["quality"] = header.quality
        self.tile = []

    def load(self):
        if self._stream is not None:
            from .codec import decompress

            pixels = decompress(self._stream)
            self._stream = None
            self.im = Image.fromarray(pixels, "RGB").im
        return super().load()


def _save(im: Image.Image, fp, filename) -> None:
    from .codec import Codec

    info = im.encoderinfo
    codec = Codec(info.get("model"), weights=info.get("weights"))
    quality = info.get("quality")
    fp.write(codec.compress(im, quality=quality) if quality is not None else codec.compress(im))


Image.register_open(FORMAT, NcdcImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, FILE_EXTENSION)
Image.register_mime(FORMAT, "image/x-neurocodec")
