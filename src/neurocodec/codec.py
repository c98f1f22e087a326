"""``Codec``: image in, bytes out, and back.

The codec layer turns images of any size into padded float tensors, splits large images
into independently coded tiles, runs a zoo model's coding face, and wraps the segments
in the container (:mod:`neurocodec.format`). It implements no maths of its own.

Images (:func:`to_array`, :func:`open_image`: one policy for the API, the CLI and collections):
a path or binary file object, a ``PIL.Image``, a numpy array (H, W, 3) or (H, W) of uint8,
uint16 or float in [0, 1], or a torch tensor (3, H, W) / (1, 3, H, W), uint8 or float in
[0, 1]. The EXIF orientation is applied; an alpha channel is dropped when every pixel is
opaque and refused otherwise; 16-bit samples keep their high byte; floats are rounded to
8 bits. Greyscale is coded as RGB with three equal channels (streams are RGB).
Decoding returns a numpy ``uint8`` array (H, W, 3).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .errors import FormatError, ImageError, RealismError, RealismUnavailableError
from .coding import container_coder
from .format import Header, Limits, pack, unpack
from .quality import DEFAULT_QUALITY, MAX_QUALITY, MIN_QUALITY, check_quality

# Images with a side above this are coded in tiles of TILE_SIZE (bounded memory).
UNTILED_MAX_SIDE = 2048
TILE_SIZE = 1024
#: ``progress(done, total)``: called after each coded or decoded tile.
Progress = Callable[[int, int], None]
#: ``step_progress(done, total, bpp, psnr)``: called after each encode-time optimisation step
#: of a model that learns each image (the overfitted codec), with its running estimates.
StepProgress = Callable[[int, int, float, float], None]


#: PIL modes with an alpha channel: accepted when every pixel is opaque, the alpha dropped.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
#: PIL modes of 16-bit (or wider integer) greyscale images.
_WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
TRANSPARENT_MESSAGE = ("has transparent pixels (alpha below 255); neurocodec codes opaque images only "
                       "(flatten it onto a background first)")


class ImageFileError(ImageError):
    """An image file that cannot be coded; the message starts with the file's path."""

    names_its_file = True  # neurocodec.files.describe does not prefix the path again


def open_image(source: Any, name: str | None = None):
    """Open an image for encoding, the one loader of the API, the CLI and collections.

    Args:
      source: a path (``str`` or ``os.PathLike``), a binary file object (e.g. ``sys.stdin.buffer``
        or ``io.BytesIO``) or a ``PIL.Image``.
      name: how messages name the image (default: the path, or ``"image"``).
    Returns:
      a ``PIL.Image`` in mode ``RGB`` or ``L``, the policy of :func:`to_array` applied: the
      EXIF orientation applied; an alpha channel dropped when every pixel is opaque;
      16-bit samples reduced to 8 bits by keeping the high byte (``v >> 8``, what Pillow
      itself does when it opens a 16-bit RGB PNG); palette and CMYK images converted to RGB.
    Raises:
      ImageFileError (an ImageError): not an image, damaged, transparent pixels, or a
        float / 32-bit image; FileNotFoundError and other OSError for an unreadable path.
    """
    import os

    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, Image.Image):
        return _normalised(ImageOps.exif_transpose(source), name or "image")
    if isinstance(source, (str, os.PathLike)):
        name = name or str(source)
    elif not hasattr(source, "read"):
        raise ImageError(f"expected a path, file object, PIL image, numpy array or torch tensor, "
                         f"got {type(source).__name__}")
    name = name or "image"
    try:
        with Image.open(source) as im:
            im.load()
            image = ImageOps.exif_transpose(im)
            if image is im:
                image = im.copy()
    except UnidentifiedImageError:
        raise ImageFileError(f"{name}: not an image (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError as exc:
        raise ImageFileError(f"{name}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise
        raise ImageFileError(f"{name}: damaged or unsupported image ({exc})") from None
    return _normalised(image, name)


def _normalised(image, name: str):
    """A PIL image in mode RGB or L, or ImageFileError (see :func:`open_image`)."""
    from PIL import Image

    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            raise ImageFileError(f"{name}: {TRANSPARENT_MESSAGE}")
        return rgba.convert("RGB")
    if image.mode in _WIDE_GREY_MODES:
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageFileError(f"{name}: a {image.mode} image with values outside [0, 65535]; "
                                 "only 8- and 16-bit images are supported")
        return Image.fromarray((values.astype(np.uint32) >> 8).astype(np.uint8), "L")
    if image.mode == "F" or image.mode.startswith("I"):
        raise ImageFileError(f"{name}: a floating-point or 32-bit image (PIL mode {image.mode}); "
                             "only 8- and 16-bit images are supported")
    if image.mode in ("RGB", "L"):
        return image
    return image.convert("RGB")  # P, CMYK, YCbCr, 1, LAB, HSV...


def to_array(image: Any) -> np.ndarray:
    """Convert a supported image to a C-contiguous uint8 array (H, W, 3). Raises ImageError.

    Accepted: a path or binary file object (opened by :func:`open_image`), a ``PIL.Image``
    (:func:`open_image`'s policy: EXIF orientation, opaque alpha dropped, 16-bit reduced
    to its high byte), a numpy array (H, W, 3), (H, W, 4) with opaque alpha, (H, W) or
    (H, W, 1) of dtype uint8, uint16 (high byte kept) or float in [0, 1] (clipped, then
    ``round(255 x)``), or a torch tensor (3, H, W) / (1, 3, H, W), uint8 or float in [0, 1]
    (the same rounding). Greyscale is coded as RGB with three equal channels.
    """
    import os

    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if isinstance(image, (str, os.PathLike)) or hasattr(image, "read") or (
            Image is not None and isinstance(image, Image.Image)):
        image = np.asarray(open_image(image))
    elif type(image).__module__.startswith("torch"):
        image = _tensor_to_array(image)
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a path, file object, PIL image, numpy array or torch tensor, "
                         f"got {type(image).__name__}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        hint = " (a second channel is not supported)" if image.ndim == 3 and image.shape[2] == 2 else ""
        raise ImageError(f"expected an image of shape (H, W, 3) or (H, W), got {image.shape}{hint}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"image is empty: shape {image.shape}")
    image = _as_uint8(image)
    if image.shape[2] == 4:
        if image[:, :, 3].min() < 255:
            raise ImageError(f"image: {TRANSPARENT_MESSAGE}")
        image = image[:, :, :3]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image)


def _as_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 samples of a uint8, uint16 (high byte) or float ([0, 1], rounded) array."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return (array >> 8).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("float image contains NaN or infinity")
        if array.dtype == np.float16:
            array = array.astype(np.float32)
        return np.round(np.clip(array, 0, 1) * array.dtype.type(255)).astype(np.uint8)
    raise ImageError(f"numpy images must be uint8, uint16 or float in [0, 1] (H, W, 3), got dtype {array.dtype}")


def _tensor_to_array(tensor) -> np.ndarray:
    import torch

    t = tensor.detach().cpu()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ImageError(f"expected a tensor of shape (3, H, W) or (1, 3, H, W), got {tuple(tensor.shape)}")
    if t.dtype != torch.uint8 and not t.is_floating_point():
        raise ImageError(f"image tensors must be uint8 or float in [0, 1], got {t.dtype}")
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.permute(1, 2, 0).numpy()  # float: rounded by _as_uint8, as float arrays are


def tile_grid(height: int, width: int, tile_height: int, tile_width: int) -> list[tuple[int, int, int, int]]:
    """Tiles (top, left, h, w) in raster order; a tile size of 0 means one tile."""
    th = tile_height or height
    tw = tile_width or width
    return [(top, left, min(th, height - top), min(tw, width - left))
            for top in range(0, height, th) for left in range(0, width, tw)]


class Codec:
    """A zoo model ready to compress and decompress images.

    Args:
      model_name: a shipped model (see :func:`neurocodec.list_models`); None = default.
      quality: default quality, a number in [1, 8] (1 = smallest files; fractions allowed).
      coder: entropy coder backend: ``"cpu"`` (default, container coder cpu-range) or ``"triton"``
        (lane-parallel rANS, container coder triton-rans; GPU kernels, numpy reference elsewhere).
      limits: container limits applied when decoding.
      weights: a weight file to use instead of a shipped model (``model_name`` is then
        ignored; streams record the file's stem as model id and its hash).
    """

    def __init__(self, model_name: str | None = None, quality: float = DEFAULT_QUALITY, coder: str = "cpu",
                 limits: Limits | None = None, weights: str | None = None):
        from . import zoo

        self._bind(zoo.file_info(weights) if weights is not None else zoo.model_info(model_name), quality, coder,
                   limits)

    def _bind(self, info, quality: float, coder: str, limits: Limits | None) -> None:
        from . import zoo

        self.info = info
        # A file the caller names may be rewritten between calls (a training run): loaded afresh.
        # Zoo files (shipped, NEUROCODEC_MODEL_PATH, decode-only) are loaded once per process.
        self.model = zoo.load_weights(info.path) if info.origin == "file" else zoo.load_model_file(info.path)
        self.quality = check_quality(quality)
        self.coder = coder
        self.limits = limits
        self._realism = None  # the realism decoder, loaded when a decode first asks for realism

    @classmethod
    def from_pretrained(cls, name: str | None = None, quality: float = DEFAULT_QUALITY, **kwargs) -> "Codec":
        """The shipped model ``name`` (None = the default model)."""
        return cls(name, quality, **kwargs)

    @classmethod
    def for_stream(cls, data: bytes, cache: dict | None = None) -> "Codec":
        """The Codec of the shipped model a stream's header names.

        Args:
          data: the stream, or any prefix holding its whole header.
          cache: a dict kept by the caller across streams, so that each model is loaded
            once per (model id, weight hash) however many files name it.
        Raises:
          FormatError: the header is bad; UnknownModelError (a FormatError): the model or
            its weights are not shipped.
        """
        from .format import read_header
        header = read_header(data)
        key = (header.model_id, header.weight_hash)
        if cache is None:
            return cls._of_stream_model(*key)
        if key not in cache:
            cache[key] = cls._of_stream_model(*key)
        return cache[key]

    @classmethod
    def _of_stream_model(cls, model_id: str, weight_hash: bytes, limits: Limits | None = None) -> "Codec":
        """The Codec of the weight file that decodes streams of (model id, weight hash):
        shipped, on NEUROCODEC_MODEL_PATH, or the decode-only weights of an earlier release."""
        from .zoo import find_model

        codec = cls.__new__(cls)  # bound to the info find_model found: no second search of the zoo
        codec._bind(find_model(model_id, weight_hash), DEFAULT_QUALITY, "cpu", limits)
        return codec

    @property
    def name(self) -> str:
        return self.info.name

    # -- encoding ------------------------------------------------------------------------
    def compress(self, image: Any, quality: float | None = None, *, bpp: float | None = None,
                 psnr: float | None = None, effort: int = 0, progress: Progress | None = None,
                 step_progress: StepProgress | None = None) -> bytes:
        """Encode an image. Returns the complete ``.ncdc`` stream (bytes).

        Give at most one of ``quality`` (in [1, 8]; default: the codec's), ``bpp`` (target
        bits per pixel of the whole file) or ``psnr`` (target dB). Targets are met by
        searching the quality; a target outside the model's range gives quality 1 or 8.
        ``effort`` > 0 optimises the latents of this image for that many steps before
        coding (slower encoding, smaller files at equal quality; decoding is unchanged).
        ``progress(done, total)`` is called after each tile is coded (large images are coded
        in tiles of ``TILE_SIZE``). For a model that learns each image at encode time (the
        overfitted codec, ``overfit-cc``: ``effort`` is its iteration count, 0 its preset),
        ``step_progress(done, total, bpp, psnr)`` is called after each iteration of each
        tile's fit with the fit's running estimates (other models ignore it). An exception
        raised by a callback (e.g. KeyboardInterrupt) ends the encode: nothing is returned.
        """
        return self._compress(image, quality, bpp, psnr, effort, reconstruct=False, progress=progress,
                              step_progress=step_progress)[0]

    def compress_with_reconstruction(self, image: Any, quality: float | None = None, *, bpp: float | None = None,
                                     psnr: float | None = None, effort: int = 0,
                                     progress: Progress | None = None,
                                     step_progress: StepProgress | None = None) -> tuple[bytes, np.ndarray]:
        """As :meth:`compress`; also returns uint8 (H, W, 3): exactly what any decoder of
        this stream reconstructs on this machine (the synthesis runs once more, so this
        costs about a decode more than :meth:`compress`)."""
        return self._compress(image, quality, bpp, psnr, effort, reconstruct=True, progress=progress,
                              step_progress=step_progress)

    def _compress(self, image: Any, quality: float | None, bpp: float | None, psnr: float | None, effort: int,
                  reconstruct: bool, progress: Progress | None = None,
                  step_progress: StepProgress | None = None) -> tuple[bytes, np.ndarray | None]:
        import torch

        if sum(v is not None for v in (quality, bpp, psnr)) > 1:
            raise ValueError("give at most one of quality, bpp and psnr")
        if not isinstance(effort, int) or isinstance(effort, bool) or effort < 0:
            raise ValueError(f"effort must be a non-negative integer (optimisation steps), got {effort!r}")
        for name, value in (("bpp", bpp), ("psnr", psnr)):
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} target must be a positive number, got {value!r}")
        array = to_array(image)
        height, width = array.shape[:2]
        tile = TILE_SIZE if max(height, width) > UNTILED_MAX_SIDE else 0
        tiles = tile_grid(height, width, tile, tile)
        with torch.inference_mode():
            if bpp is None and psnr is None:
                q = _as_stored_quality(check_quality(self.quality if quality is None else quality))
                segments, recon = self._encode_tiles(array, tiles, q, effort=effort, reconstruct=reconstruct,
                                                     progress=progress, step_progress=step_progress)
            else:
                q, segments, recon = self._search_quality(array, tiles, bpp, psnr, reconstruct)
                if effort:
                    segments, recon = self._encode_tiles(array, tiles, q, effort=effort, reconstruct=reconstruct,
                                                         progress=progress, step_progress=step_progress)
        return self._pack(segments, q, height, width, tile), recon

    def compress_with_latents(self, image: Any, quality: float | None = None) -> tuple[bytes, np.ndarray, np.ndarray]:
        """As :meth:`compress_with_reconstruction` at a fixed quality; also returns the latents
        the decoder dequantises, for learning in the compressed domain.

        Returns:
          (stream bytes, reconstruction uint8 (H, W, 3), latents float32 (C, Hp / s, Wp / s)):
          the gain-scaled, dequantised latents ``y_hat`` of the image padded (edge replication)
          to ``Hp x Wp``, multiples of ``model.pad_multiple``, with ``s = pad_multiple // 4``
          (the shipped block model: C = 192, s = 8, padding to multiples of 32). Their scale
          depends on the quality, so compare latents of one quality.
        Raises:
          ImageError: a side above ``UNTILED_MAX_SIDE`` (such images are coded in tiles, which
            have no single latent array), or an unsupported image.
        """
        import torch

        array = to_array(image)
        height, width = array.shape[:2]
        if max(height, width) > UNTILED_MAX_SIDE:
            raise ImageError(f"latents are available for images of at most {UNTILED_MAX_SIDE} pixels a side "
                             f"(larger ones are coded in tiles), got {width}x{height}")
        q = _as_stored_quality(check_quality(self.quality if quality is None else quality))
        kept: list = []
        with torch.inference_mode():
            segments, recon = self._encode_tiles(array, tile_grid(height, width, 0, 0), q, keep_latents=kept)
        latents = kept[0][0].to(torch.float32).contiguous().numpy()
        return self._pack(segments, q, height, width, 0), recon, latents

    def encode_latents(self, image: Any, quality: float | None = None) -> np.ndarray:
        """The latents a decoder of this image's stream sees, for compressed-domain learning.

        Exactly the third result of :meth:`compress_with_latents` (the image is coded, so
        the latents are those of a real stream), for every architecture.

        Args:
          image: any supported image (see :func:`to_array`), at most ``UNTILED_MAX_SIDE``
            pixels a side.
          quality: in [1, 8]; default: the codec's.
        Returns:
          float32 (C, Hp / s, Wp / s): the dequantised latents ``y_hat = symbol + mean``
          before the inverse gain, of the image padded (edge replication) to multiples of
          ``model.pad_multiple`` (``Hp x Wp``), with ``s = pad_multiple // 4`` and
          ``C = model.latent_channels`` (block-hyperprior: 192 channels at 1/8; walloc's
          default: 16 channels at 1/4). Their unit is the quantisation step of the
          quality (integer values where the entropy model rounds its means, as the
          hyperprior and context models do), so their scale grows with the quality:
          compare latents of one quality.
        Raises:
          ImageError: an unsupported image, or a side above ``UNTILED_MAX_SIDE``.
          ValueError: a quality outside [1, 8].
        """
        return self.compress_with_latents(image, quality)[2]

    def _pack(self, segments: list[bytes], q: float, height: int, width: int, tile: int) -> bytes:
        header = Header(model_id=self.info.name, weight_hash=self.info.weight_hash, coder=container_coder(self.coder),
                        quality=q, height=height, width=width, channels=3, tile_height=tile, tile_width=tile)
        return pack(header, segments)

    def _encode_tiles(self, array: np.ndarray, tiles, q: float, latents: list | None = None, effort: int = 0,
                      keep_latents: list | None = None, reconstruct: bool = True, progress: Progress | None = None,
                      step_progress: StepProgress | None = None):
        """Encode every tile at quality q (streaming when no cached latents are given);
        ``keep_latents`` receives each tile's dequantised latents. Returns (segments,
        reconstruction uint8 (H, W, 3), or None without ``reconstruct``)."""
        import torch

        segments: list[bytes] = []
        recon = np.empty_like(array) if reconstruct else None
        # a model fitted per image runs its fit here (effort 0: its preset), with step_progress
        per_image = getattr(self.model, "learns_per_image", False)
        for i, (top, left, h, w) in enumerate(tiles):
            rd_rounding = True
            if latents is not None:
                y = latents[i]
            elif per_image:
                with torch.inference_mode(False):
                    y = self.model.refine_latents(self._to_tensor(array[top:top + h, left:left + w])[0], q, effort,
                                                  progress=step_progress)
            elif effort:
                with torch.inference_mode(False):
                    y = self.model.refine_latents(self._to_tensor(array[top:top + h, left:left + w])[0], q, effort)
                rd_rounding = False   # optimised for their real rate: no second rounding for rate
            else:
                y = self.model.analysis(self._to_tensor(array[top:top + h, left:left + w])[0])
            tile_segments, y_hat = self.model.code_latents(y, q, self.coder, rd_rounding=rd_rounding)
            segments += tile_segments
            if keep_latents is not None:
                keep_latents.append(y_hat)
            if reconstruct:
                recon[top:top + h, left:left + w] = _to_uint8(self.model.reconstruct(y_hat, q), h, w)
            if progress is not None:
                progress(i + 1, len(tiles))
        return segments, recon

    def _search_quality(self, array: np.ndarray, tiles, bpp: float | None, psnr: float | None,
                        reconstruct: bool = True):
        """Find the quality whose stream meets a bpp or PSNR target (analysis runs once).
        Returns (quality, segments, reconstruction or None)."""
        from .metrics import bits_per_pixel
        from .metrics import psnr as psnr_of

        latents = [self.model.analysis(self._to_tensor(array[t:t + h, l:l + w])[0]) for t, l, h, w in tiles]
        pixels = array.shape[0] * array.shape[1]
        cache: dict[float, tuple] = {}

        def measure(q: float):
            if q not in cache:
                if bpp is not None:  # the rate needs no synthesis
                    segments = []
                    for y in latents:
                        segments += self.model.code_latents(y, q, self.coder)[0]
                    value = bits_per_pixel(sum(map(len, segments)) + HEADER_ESTIMATE, pixels)
                    cache[q] = (math.log(value), None)
                else:
                    segments, recon = self._encode_tiles(array, tiles, q, latents)
                    cache[q] = (psnr_of(array, recon), (segments, recon))
            return cache[q][0]

        target = math.log(bpp) if bpp is not None else psnr
        # Stop within 1 % of a bpp target (the promise is 3 %) or 0.02 dB of a PSNR target:
        # every trial costs a full prior evaluation and entropy coding.
        tolerance = 0.01 if bpp is not None else 0.02
        q = _solve_monotone(measure, target, tolerance)
        if cache[q][1] is not None:
            segments, recon = cache[q][1]
        else:
            segments, recon = self._encode_tiles(array, tiles, q, latents, reconstruct=reconstruct)
        return q, segments, recon

    def _to_tensor(self, array: np.ndarray):
        import torch
        import torch.nn.functional as F

        h, w = array.shape[:2]
        m = self.model.pad_multiple
        ph, pw = _padded(h, m), _padded(w, m)
        x = torch.from_numpy(np.array(array)).permute(2, 0, 1).unsqueeze(0).float() / 255.0
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, pw - w, 0, ph - h), mode="replicate")
        return x, (ph, pw)

    # -- decoding ------------------------------------------------------------------------
    def decompress(self, data: bytes, *, realism: float = 0.0, progress: Progress | None = None) -> np.ndarray:
        """Decode a stream written by this model. Returns uint8 (H, W, 3).

        A stream whose weight hash this codec's weights decode is accepted whatever model
        name it records. ``progress(done, total)`` is called after each tile.
        ``realism`` in [0, 1] decodes the same stream with the model's realism decoder
        (docs/models.md, "Realism decoders"): 0 is the plain decoder, pixel for pixel; more
        adds synthesised texture. Raises RealismError for a value outside [0, 1] and
        RealismUnavailableError (a RealismError) for realism > 0 with a model that has none.
        Raises FormatError (or a subclass) for anything that is not a valid stream of this
        model; use :func:`neurocodec.decompress` to pick the model from the stream.
        """
        realism = check_realism(realism)
        header, segments = unpack(data, self.limits)
        if header.weight_hash not in self.info.stream_hashes:
            from .zoo import find_model

            find_model(header.model_id, header.weight_hash)  # raises if not shipped at all
            raise FormatError(f"stream was written by model {header.model_id!r}, this codec is {self.info.name!r}; "
                              "use neurocodec.decompress() to pick the model from the stream")
        return self._decode(header, segments, progress, realism)

    def realism_decoder(self):
        """The realism decoder trained for this codec's model (loaded on first use).

        Raises RealismUnavailableError when this installation has none for it.
        """
        if self._realism is None:
            from .zoo.realism import find_realism, load_realism

            path = find_realism(self.info)
            if path is None:
                raise RealismUnavailableError(f"model {self.info.name!r} has no realism decoder; decode it with "
                                              "realism 0 (the default), or use a model that ships one "
                                              f"({', '.join(realism_models()) or 'none installed'})")
            self._realism = load_realism(path)
        return self._realism

    def _decode(self, header: Header, segments: list[bytes], progress: Progress | None = None,
                realism: float = 0.0) -> np.ndarray:
        import torch

        try:
            quality = check_quality(header.quality)
        except ValueError:
            raise FormatError(f"stream has quality {header.quality}, outside [1, 8]") from None
        per_tile = self.model.segments_per_tile
        _check_tiling(header, len(segments), per_tile, self.model.pad_multiple)
        tiles = tile_grid(header.height, header.width, header.tile_height, header.tile_width)
        out = np.empty((header.height, header.width, 3), dtype=np.uint8)
        m = self.model.pad_multiple
        backend = decoding_backend(header.coder)  # depends on the header only, not on the tile
        # Before any tile is decoded: a model without a realism decoder fails at once.
        realism_decoder = self.realism_decoder() if realism else None
        with torch.inference_mode():
            for i, (top, left, h, w) in enumerate(tiles):
                shape = (_padded(h, m), _padded(w, m))
                try:
                    tile_segments = segments[per_tile * i:per_tile * (i + 1)]
                    if realism_decoder is not None:
                        x_hat = self._decode_realistic(realism_decoder, tile_segments, shape, quality, backend,
                                                       realism)
                    else:
                        x_hat = self.model.decompress(tile_segments, shape, quality, backend)
                except FormatError:
                    raise
                except Exception as exc:  # a stream that passed its CRCs but decodes to nonsense
                    raise FormatError(f"tile {i} does not decode: {exc}") from exc
                out[top:top + h, left:left + w] = _to_uint8(x_hat, h, w)
                if progress is not None:
                    progress(i + 1, len(tiles))
        return out

    def _decode_realistic(self, decoder, segments: list[bytes], shape: tuple[int, int], quality: float,
                          backend: str, realism: float):
        """One tile through the MSE decoder and then the realism ``decoder`` -> x_hat (1, 3, H, W)."""
        import torch

        from .transforms.realism import texture_noise

        y_hat = self.model.decode_latents(segments, shape, quality, backend)
        x0 = self.model.reconstruct(y_hat, quality).clamp(0, 1)
        noise = texture_noise(1, shape[0] // 2, shape[1] // 2, decoder.noise_channels)
        return decoder(x0, y_hat, torch.tensor([float(quality)]), torch.tensor([float(realism)]), noise)


def _check_tiling(header: Header, n_segments: int, per_tile: int, pad_multiple: int) -> None:
    """Check a stream's tiling before anything is sized by it (raises FormatError).

    The tile count is computed, not enumerated, so a header declaring millions of tiny
    tiles costs nothing. A tile (or an untiled image) may not have a side above
    ``UNTILED_MAX_SIDE`` (the encoder never writes one, and the decoder's memory grows
    with the tile), nor, when tiled, a declared side below the model's ``pad_multiple``
    (padding would multiply the work per pixel).
    """
    from .errors import LimitExceededError

    tile_h = header.tile_height or header.height
    tile_w = header.tile_width or header.width
    if max(tile_h, tile_w) > UNTILED_MAX_SIDE:
        what = "tile" if header.tile_height else "untiled image"
        raise LimitExceededError(f"stream declares a {what} of {tile_h}x{tile_w} pixels; this decoder accepts tiles "
                                 f"of at most {UNTILED_MAX_SIDE}x{UNTILED_MAX_SIDE} (the encoder tiles larger images)")
    if header.tile_height and min(tile_h, tile_w) < pad_multiple:
        raise FormatError(f"stream declares {tile_h}x{tile_w} tiles; this model needs tiles of at least "
                          f"{pad_multiple}x{pad_multiple}")
    count = -(-header.height // tile_h) * -(-header.width // tile_w)
    if n_segments != per_tile * count:
        raise FormatError(f"stream has {n_segments} segments; a {header.height}x{header.width} image in "
                          f"{count} tile(s) needs {per_tile * count}")


def _padded(size: int, multiple: int) -> int:
    """``size`` rounded up to a multiple of ``multiple`` (the model's padding)."""
    return -(-size // multiple) * multiple


def _as_stored_quality(q: float) -> float:
    """The quality as the container stores it (float32), so encoder and decoder agree."""
    return float(np.float32(q))


# Rate control counts the container header too; its size barely varies (about 60 bytes).
HEADER_ESTIMATE = 64


def _solve_monotone(measure, target: float, tolerance: float, iterations: int = 14) -> float:
    """Quality in [1, 8] whose increasing ``measure`` is closest to ``target``.

    Regula falsi (Illinois variant) on the bracket [1, 8], falling back to bisection; the
    qualities tried are float32 values, as stored in the stream.
    """
    lo, hi = _as_stored_quality(MIN_QUALITY), _as_stored_quality(MAX_QUALITY)
    f_lo, f_hi = measure(lo) - target, measure(hi) - target
    if f_lo >= 0:
        return lo
    if f_hi <= 0:
        return hi
    best = min((lo, f_lo), (hi, f_hi), key=lambda p: abs(p[1]))
    side = 0
    for _ in range(iterations):
        q = lo - f_lo * (hi - lo) / (f_hi - f_lo)
        if not (lo < q < hi) or hi - lo < 1e-3:
            q = 0.5 * (lo + hi)
        q = _as_stored_quality(q)
        if q in (lo, hi):
            break
        f = measure(q) - target
        if abs(f) < abs(best[1]):
            best = (q, f)
        if abs(f) <= tolerance:
            break
        if f < 0:
            lo, f_lo = q, f
            if side == -1:
                f_hi /= 2
            side = -1
        else:
            hi, f_hi = q, f
            if side == 1:
                f_lo /= 2
            side = 1
    return best[0]


def _to_uint8(x_hat, h: int, w: int) -> np.ndarray:
    import torch

    x = torch.nan_to_num(x_hat[0, :, :h, :w], nan=0.0)
    return torch.round(x.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()


def decoding_backend(coder: str) -> str:
    """The backend that decodes streams of container coder ``coder`` on this machine.

    Of the backends that read it (``neurocodec.coding.BACKENDS``), one that needs an extra
    (the Triton kernels) where it is installed and a GPU can run it, else one that needs
    none (for "triton-rans": the numpy reference "lanes", same format).

    Raises:
      UnsupportedVersionError: no backend here reads ``coder``.
    """
    import importlib.util

    from .coding import BACKENDS, backends_reading

    readers = backends_reading(coder)
    if not readers:
        from .errors import UnsupportedVersionError

        raise UnsupportedVersionError(f"stream was written with coder {coder!r}, not available here")
    for name in readers:
        extra = BACKENDS[name].extra
        if extra is not None and importlib.util.find_spec(extra) is not None:
            import torch

            if torch.cuda.is_available():
                return name
    return next(name for name in readers if BACKENDS[name].extra is None)


def compress(image: Any, model: str | None = None, quality: float = DEFAULT_QUALITY) -> bytes:
    """Compress an image with a shipped model (None = default). Returns the stream bytes."""
    return Codec(model, quality).compress(image)


def decompress(data: bytes, limits: Limits | None = None, *, realism: float = 0.0) -> np.ndarray:
    """Decode any neurocodec stream; the model is read from its header. Returns uint8 (H, W, 3).

    ``realism``: as :meth:`Codec.decompress`."""
    realism = check_realism(realism)
    header, segments = unpack(data, limits)
    return Codec._of_stream_model(header.model_id, header.weight_hash, limits)._decode(header, segments,
                                                                                        realism=realism)


def check_realism(value: Any) -> float:
    """A realism value as a float in [0, 1]; raises RealismError for anything else."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise RealismError(f"realism must be a number in [0, 1] (0: the plain decoder, 1: the most texture), "
                           f"got {value!r}")
    return float(value)


def realism_models() -> list[str]:
    """Names of the installed models that have a realism decoder."""
    from .zoo import list_models
    from .zoo.realism import find_realism

    return [info.name for info in list_models() if find_realism(info) is not None]
