"""The neurocodec container, version 1: header, segments, CRC32 and limits.

A neurocodec stream (a `.ncdc` file) is one header followed by a payload of
opaque byte segments. The header names what is needed to decode the payload
(container version, entropy coder, model id and weight hash, the quality the
encoder used, image geometry and tiling) and the length of every segment. The
header and the payload each carry a CRC32. `docs/format.md` is the normative
specification; this module implements it.

This layer only moves bytes: it never imports torch or numpy and never runs a
network. What the segments contain is decided by the codec layer.

Parsing is defensive. `unpack` and `read_header` check every declared length
against the bytes that remain and against `Limits` *before* they read or
allocate anything, and the only exceptions they raise for bad input bytes are
subclasses of `neurocodec.errors.FormatError`.

Typical use:

>>> header = Header(model_id="demo-1", weight_hash=bytes(8), coder="cpu-range",
...                 quality=0.5, height=16, width=24)
>>> data = pack(header, [b"z-bytes", b"y-bytes"])
>>> unpack(data) == (header, [b"z-bytes", b"y-bytes"])
True
"""

from __future__ import annotations

import hashlib
import math
import numbers
import operator
import re
import struct
import types
import zlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

from ..coding.backends import CONTAINER_CODERS
from ..errors import (
    ChecksumError,
    FormatError,
    LimitExceededError,
    TruncatedStreamError,
    UnsupportedVersionError,
)

__all__ = [
    "CODER_IDS",
    "DEFAULT_LIMITS",
    "FILE_EXTENSION",
    "FORMAT_VERSION",
    "Header",
    "Limits",
    "MAGIC",
    "MIN_STREAM_SIZE",
    "MODEL_ID_PATTERN",
    "SUPPORTED_VERSIONS",
    "StreamLayout",
    "coder_id",
    "coder_name",
    "pack",
    "read_header",
    "read_layout",
    "unpack",
    "weight_hash_of",
]

#: The four bytes every neurocodec stream starts with.
MAGIC = b"NCDC"

#: The container version `pack` writes.
FORMAT_VERSION = 1

#: Container versions `unpack` and `read_header` accept.
SUPPORTED_VERSIONS = (1,)

#: File name extension of a neurocodec stream.
FILE_EXTENSION = ".ncdc"

#: Entropy coder names and their ids in the header. Ids are never reused. The coding
#: layer's backend table is the one source (each backend names the coder it writes).
CODER_IDS: Mapping[str, int] = CONTAINER_CODERS
_CODER_NAMES: Mapping[int, str] = types.MappingProxyType({v: k for k, v in CODER_IDS.items()})

# Field layout (all little-endian, no padding).
_LEAD = struct.Struct("<4sBBBB")  # magic, version, flags, coder_id, model_id_len
_BODY = struct.Struct("<8sfIIBIIH")  # weight_hash, quality, height, width, channels,
#                                     tile_height, tile_width, extra_len
_U32 = struct.Struct("<I")

_MODEL_ID_MAX = 64
#: What a model id (a model's name) may be: 1..64 characters of a-z 0-9 . _ -
#: (the container stores it as ASCII; the zoo and `neurocodec train --name` use the same rule).
MODEL_ID_PATTERN = f"[a-z0-9._-]{{1,{_MODEL_ID_MAX}}}"
_MODEL_ID_RE = re.compile(MODEL_ID_PATTERN.encode("ascii"))
_WEIGHT_HASH_LEN = 8
_U8_MAX = 0xFF
_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFFFFFF
_SUPPORTED_CHANNELS = (3,)
_RESERVED_CHANNELS = (1,)

#: Size in bytes of the smallest possible stream (1-byte model id, no extra
#: bytes, no segments).
MIN_STREAM_SIZE = _LEAD.size + 1 + _BODY.size + _U32.size + _U32.size + _U32.size

BytesLike = Union[bytes, bytearray, memoryview]


# --------------------------------------------------------------------------- #
# Coder ids
# --------------------------------------------------------------------------- #


def coder_id(name: str) -> int:
    """Returns the header id of an entropy coder.

    Args:
      name: A coder name, a key of `CODER_IDS` (e.g. `"cpu-range"`).

    Returns:
      The coder's id as stored in the header (`int`, 0..255).

    Raises:
      ValueError: If `name` is not a known coder name.
    """
    try:
        return CODER_IDS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown coder {name!r}; known coders: {', '.join(sorted(CODER_IDS))}"
        ) from None


def coder_name(ident: int) -> str:
    """Returns the name of the entropy coder with a given header id.

    Args:
      ident: A coder id as read from a stream.

    Returns:
      The coder's name, a key of `CODER_IDS`.

    Raises:
      UnsupportedVersionError: If the id is not known to this installation
        (a `FormatError`, since the id came from a stream).
    """
    try:
        return _CODER_NAMES[ident]
    except (KeyError, TypeError):
        known = ", ".join(f"{i} ({n})" for i, n in sorted(_CODER_NAMES.items()))
        raise UnsupportedVersionError(
            f"unknown entropy coder id {ident!r}; this installation knows coder ids {known}. "
            "The stream needs a newer neurocodec."
        ) from None


def weight_hash_of(weights: BytesLike) -> bytes:
    """Returns the 8-byte weight hash stored in headers for a weight file.

    Args:
      weights: The complete contents of the weight file.

    Returns:
      The first 8 bytes of the SHA-256 digest of `weights`.
    """
    return hashlib.sha256(weights).digest()[:_WEIGHT_HASH_LEN]


# --------------------------------------------------------------------------- #
# Header and limits
# --------------------------------------------------------------------------- #


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return operator.index(value)


def _as_bytes(value: Any, name: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be bytes, got {type(value).__name__}")


def _to_f32(value: float) -> float:
    """Rounds a float to the nearest float32, as the header stores it."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


@dataclass(frozen=True)
class Header:
    """Everything the container says about a stream, besides the segments.

    Construction normalises and validates the fields: integers become `int`,
    byte strings become `bytes`, and `quality` is rounded to the nearest
    float32 (the precision the stream stores), so that
    `unpack(pack(h, s))[0] == h` holds exactly.

    Attributes:
      model_id: Registered model name, 1..64 characters of `[a-z0-9._-]`.
      weight_hash: 8 bytes, the first 8 bytes of the SHA-256 of the weight
        file (see `weight_hash_of`).
      coder: Entropy coder name, a key of `CODER_IDS`.
      quality: The rate parameter the encoder used (model-specific; finite,
        representable as float32).
      height: Image height in pixels, >= 1.
      width: Image width in pixels, >= 1.
      channels: Number of colour channels; 3 in container v1.
      tile_height: Tile height in pixels, or 0 when the whole image is one tile.
      tile_width: Tile width in pixels, or 0 when the whole image is one tile.
        `tile_height` and `tile_width` are both 0 or both >= 1.
      extra: Model-specific bytes (at most 65535).

    Raises:
      TypeError: If a field has the wrong type.
      ValueError: If a field has an invalid value.
    """

    model_id: str
    weight_hash: bytes
    coder: str
    quality: float
    height: int
    width: int
    channels: int = 3
    tile_height: int = 0
    tile_width: int = 0
    extra: bytes = b""

    def __post_init__(self) -> None:
        setf = object.__setattr__
        setf(self, "weight_hash", _as_bytes(self.weight_hash, "weight_hash"))
        setf(self, "extra", _as_bytes(self.extra, "extra"))
        for name in ("height", "width", "channels", "tile_height", "tile_width"):
            setf(self, name, _as_int(getattr(self, name), name))
        q = self.quality
        if isinstance(q, bool) or not isinstance(q, numbers.Real):
            raise TypeError(f"quality must be a real number, got {type(q).__name__}")
        q = float(q)
        if not math.isfinite(q):
            raise ValueError(f"quality must be finite, got {q!r}")
        try:
            q = _to_f32(q)
        except OverflowError:
            raise ValueError(f"quality {q!r} is out of float32 range") from None
        setf(self, "quality", q)
        _validate_header(self)

    @property
    def coder_id(self) -> int:
        """The header id of `coder` (see `CODER_IDS`)."""
        return CODER_IDS[self.coder]

    @property
    def tile_grid(self) -> tuple[int, int]:
        """The number of tile rows and columns, `(rows, cols)`.

        `(1, 1)` when the image is one tile. Tiles are laid out from the
        top-left corner; tiles on the bottom row and right column are cropped
        to the image.
        """
        if self.tile_height == 0:
            return (1, 1)
        return (-(-self.height // self.tile_height), -(-self.width // self.tile_width))

    def to_dict(self) -> dict[str, Any]:
        """Returns the header as a JSON-friendly dict.

        Returns:
          A dict with the same keys as the dataclass fields; `weight_hash` and
          `extra` are lowercase hex strings, every other value is a `str`,
          `int` or `float`.
        """
        return {
            "model_id": self.model_id,
            "weight_hash": self.weight_hash.hex(),
            "coder": self.coder,
            "quality": self.quality,
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "tile_height": self.tile_height,
            "tile_width": self.tile_width,
            "extra": self.extra.hex(),
        }


def _validate_header(h: Header) -> None:
    """Raises TypeError / ValueError if `h` cannot be written as a v1 header."""
    if not isinstance(h.model_id, str):
        raise TypeError(f"model_id must be a str, got {type(h.model_id).__name__}")
    if not (h.model_id.isascii() and _MODEL_ID_RE.fullmatch(h.model_id.encode("ascii"))):
        raise ValueError(
            f"model_id must be 1..{_MODEL_ID_MAX} characters of [a-z0-9._-], got {h.model_id!r}"
        )
    if len(h.weight_hash) != _WEIGHT_HASH_LEN:
        raise ValueError(
            f"weight_hash must be exactly {_WEIGHT_HASH_LEN} bytes, got {len(h.weight_hash)}"
        )
    if not isinstance(h.coder, str) or h.coder not in CODER_IDS:
        raise ValueError(
            f"unknown coder {h.coder!r}; known coders: {', '.join(sorted(CODER_IDS))}"
        )
    if not (isinstance(h.quality, float) and math.isfinite(h.quality)):
        raise ValueError(f"quality must be a finite float, got {h.quality!r}")
    for name in ("height", "width"):
        v = getattr(h, name)
        if not 1 <= v <= _U32_MAX:
            raise ValueError(f"{name} must be in 1..{_U32_MAX}, got {v}")
    if h.channels not in _SUPPORTED_CHANNELS:
        raise ValueError(f"channels must be 3 in container v{FORMAT_VERSION}, got {h.channels}")
    for name in ("tile_height", "tile_width"):
        v = getattr(h, name)
        if not 0 <= v <= _U32_MAX:
            raise ValueError(f"{name} must be in 0..{_U32_MAX}, got {v}")
    if (h.tile_height == 0) != (h.tile_width == 0):
        raise ValueError(
            "tile_height and tile_width must both be 0 (one tile) or both >= 1, "
            f"got {h.tile_height} x {h.tile_width}"
        )
    if len(h.extra) > _U16_MAX:
        raise ValueError(f"extra must be at most {_U16_MAX} bytes, got {len(h.extra)}")


@dataclass(frozen=True)
class Limits:
    """Decoder-side limits on what a stream may declare.

    They bound the work and memory a hostile or corrupted stream can cause.
    They are a policy of the reader, not part of the format: `pack` does not
    apply them, and a reader that trusts its input may raise them.

    Attributes:
      max_pixels: Largest accepted `height * width`.
      max_segments: Largest accepted number of segments.
      max_bytes: Largest accepted total stream size in bytes (checked by
        `unpack` only; `read_header` may be given just a prefix of a stream).

    Raises:
      TypeError: If a limit is not an int.
      ValueError: If a limit is not positive.
    """

    max_pixels: int = 2**28
    max_segments: int = 2**20
    max_bytes: int = 2**32 - 1

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_segments", "max_bytes"):
            v = _as_int(getattr(self, name), name)
            if v < 1:
                raise ValueError(f"Limits.{name} must be >= 1, got {v}")
            object.__setattr__(self, name, v)


#: The limits `unpack` and `read_header` use when given `limits=None`.
DEFAULT_LIMITS = Limits()


# --------------------------------------------------------------------------- #
# Writing
# --------------------------------------------------------------------------- #


def pack(header: Header, segments: Sequence[BytesLike]) -> bytes:
    """Serialises a header and payload segments into a container v1 stream.

    Args:
      header: The stream's `Header`.
      segments: The payload, a sequence of byte strings (`bytes`,
        `bytearray` or `memoryview`), each at most 2**32 - 1 bytes; at most
        2**32 - 1 of them. Their meaning and order are the codec layer's.

    Returns:
      The complete stream as `bytes`.

    Raises:
      TypeError: If `header` is not a `Header` or a segment is not bytes-like.
      ValueError: If the header or the segment list cannot be represented in
        container v1. (Invalid arguments are a programming error, so this is
        never a `FormatError`.)
    """
    if not isinstance(header, Header):
        raise TypeError(f"header must be a Header, got {type(header).__name__}")
    _validate_header(header)
    if isinstance(segments, (bytes, bytearray, memoryview, str)):
        raise TypeError("segments must be a sequence of byte strings, not a single byte string")
    segs = [_as_bytes(s, f"segments[{i}]") for i, s in enumerate(segments)]
    if len(segs) > _U32_MAX:
        raise ValueError(f"at most {_U32_MAX} segments fit in a stream, got {len(segs)}")
    for i, s in enumerate(segs):
        if len(s) > _U32_MAX:
            raise ValueError(f"segments[{i}] is {len(s)} bytes; a segment holds at most {_U32_MAX}")

    model_id = header.model_id.encode("ascii")
    head = b"".join(
        (
            _LEAD.pack(MAGIC, FORMAT_VERSION, 0, header.coder_id, len(model_id)),
            model_id,
            _BODY.pack(
                header.weight_hash,
                header.quality,
                header.height,
                header.width,
                header.channels,
                header.tile_height,
                header.tile_width,
                len(header.extra),
            ),
            header.extra,
            _U32.pack(len(segs)),
            struct.pack(f"<{len(segs)}I", *(len(s) for s in segs)),
        )
    )
    payload = b"".join(segs)
    return b"".join(
        (
            head,
            _U32.pack(zlib.crc32(head)),
            payload,
            _U32.pack(zlib.crc32(payload)),
        )
    )


# --------------------------------------------------------------------------- #
# Reading
# --------------------------------------------------------------------------- #


def _as_buffer(data: Any) -> memoryview:
    """A flat, contiguous, unsigned-byte memoryview of `data`, without copying bytes."""
    try:
        mv = memoryview(data)
    except TypeError:
        raise TypeError(
            f"expected bytes, bytearray or memoryview, got {type(data).__name__}"
        ) from None
    if mv.ndim == 1 and mv.format == "B" and mv.c_contiguous:
        return mv
    if mv.c_contiguous:
        return mv.cast("B")
    return memoryview(mv.tobytes())


class _Reader:
    """A cursor that checks every length against what remains before reading."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: memoryview, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def need(self, size: int, what: str) -> None:
        if size > self.remaining:
            raise TruncatedStreamError(
                f"stream ends inside {what}: it needs {size} bytes at offset {self.pos}, "
                f"but only {self.remaining} remain (stream is {len(self.buf)} bytes)"
            )

    def fields(self, layout: struct.Struct, what: str) -> tuple:
        self.need(layout.size, what)
        values = layout.unpack_from(self.buf, self.pos)
        self.pos += layout.size
        return values

    def take(self, size: int, what: str) -> memoryview:
        self.need(size, what)
        out = self.buf[self.pos : self.pos + size]
        self.pos += size
        return out


def _check_magic_and_version(buf: memoryview) -> None:
    n = len(buf)
    if n == 0:
        raise TruncatedStreamError(
            f"empty input; a neurocodec stream is at least {MIN_STREAM_SIZE} bytes"
        )
    head = bytes(buf[: len(MAGIC)])
    if head != MAGIC[: len(head)]:
        raise FormatError(
            f"not a neurocodec stream: it starts with {head!r}, expected magic {MAGIC!r}"
        )
    if n <= len(MAGIC):
        raise TruncatedStreamError(
            f"stream is only {n} bytes; a neurocodec stream is at least {MIN_STREAM_SIZE} bytes"
        )
    version = buf[len(MAGIC)]
    if version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        hint = (
            "The stream was written by a newer neurocodec; upgrade to read it."
            if version > max(SUPPORTED_VERSIONS)
            else "No neurocodec release writes this version; the stream is corrupt."
        )
        raise UnsupportedVersionError(
            f"container version {version} is not supported; this installation reads "
            f"version {supported}. {hint}"
        )


def _parse_header(buf: memoryview, limits: Limits) -> tuple[Header, tuple[int, ...], int]:
    """Parses and validates the header (spec steps 1-6).

    Returns:
      The header, the segment lengths and the offset of the payload.
    """
    _check_magic_and_version(buf)
    r = _Reader(buf)
    _, _, flags, coder, model_id_len = r.fields(_LEAD, "the fixed header fields")
    if not 1 <= model_id_len <= _MODEL_ID_MAX:
        raise FormatError(
            f"model_id_len is {model_id_len} (offset 7); it must be 1..{_MODEL_ID_MAX}"
        )
    model_id_raw = bytes(r.take(model_id_len, "model_id"))
    (
        weight_hash,
        quality,
        height,
        width,
        channels,
        tile_height,
        tile_width,
        extra_len,
    ) = r.fields(_BODY, "the image geometry fields")
    extra = bytes(r.take(extra_len, f"the {extra_len} extra bytes"))
    (n_segments,) = r.fields(_U32, "n_segments")
    table_size = 4 * n_segments
    r.need(table_size, f"the segment length table ({n_segments} segments)")
    if n_segments > limits.max_segments:
        raise LimitExceededError(
            f"stream declares {n_segments} segments, over the limit of {limits.max_segments} "
            f"(Limits.max_segments); to read it, pass limits=Limits(max_segments={n_segments}) "
            "or larger"
        )
    lengths = struct.unpack_from(f"<{n_segments}I", buf, r.pos)
    r.pos += table_size
    crc_offset = r.pos
    (stored_crc,) = r.fields(_U32, "header_crc")
    actual_crc = zlib.crc32(buf[:crc_offset])
    if stored_crc != actual_crc:
        raise ChecksumError(
            f"header CRC32 mismatch: stored 0x{stored_crc:08x} at offset {crc_offset}, "
            f"computed 0x{actual_crc:08x} over bytes 0..{crc_offset - 1}; the header is corrupt"
        )

    # Field semantics. The header CRC matched, so these are what the writer wrote.
    if flags != 0:
        raise FormatError(
            f"flags is 0x{flags:02x} (offset 5); it is reserved and must be 0 in container v1"
        )
    coder_str = coder_name(coder)
    if not _MODEL_ID_RE.fullmatch(model_id_raw):
        raise FormatError(
            f"model_id {model_id_raw!r} is not 1..{_MODEL_ID_MAX} characters of [a-z0-9._-]"
        )
    if not math.isfinite(quality):
        raise FormatError(f"quality is {quality!r}; it must be finite")
    if height < 1 or width < 1:
        raise FormatError(f"image size is {height} x {width}; both must be >= 1")
    if channels not in _SUPPORTED_CHANNELS:
        if channels in _RESERVED_CHANNELS:
            raise UnsupportedVersionError(
                f"channels = {channels} is reserved and not supported by this installation "
                f"(container v{FORMAT_VERSION} reads 3-channel streams)"
            )
        raise FormatError(f"channels is {channels}; container v{FORMAT_VERSION} requires 3")
    if (tile_height == 0) != (tile_width == 0):
        raise FormatError(
            f"tile size is {tile_height} x {tile_width}; both must be 0 (one tile) or both >= 1"
        )
    pixels = height * width
    if pixels > limits.max_pixels:
        raise LimitExceededError(
            f"image is {height} x {width} = {pixels} pixels, over the limit of "
            f"{limits.max_pixels} (Limits.max_pixels); to read it, pass "
            f"limits=Limits(max_pixels={pixels}) or larger"
        )
    try:
        header = Header(
            model_id=model_id_raw.decode("ascii"),
            weight_hash=weight_hash,
            coder=coder_str,
            quality=quality,
            height=height,
            width=width,
            channels=channels,
            tile_height=tile_height,
            tile_width=tile_width,
            extra=extra,
        )
    except (TypeError, ValueError) as exc:  # pragma: no cover - the checks above cover this
        raise FormatError(f"invalid header: {exc}") from exc
    return header, lengths, r.pos


def _limits(limits: Limits | None) -> Limits:
    if limits is None:
        return DEFAULT_LIMITS
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a Limits or None, got {type(limits).__name__}")
    return limits


@dataclass(frozen=True)
class StreamLayout:
    """Where a stream's parts lie, as its header declares them.

    Attributes:
      header: The validated `Header`.
      segment_lengths: The declared length of every payload segment, in order.
      payload_offset: Size of the header in bytes (lengths table and header CRC
        included), i.e. the offset of the first segment.
    """

    header: Header
    segment_lengths: tuple[int, ...]
    payload_offset: int


def read_layout(data: BytesLike, limits: Limits | None = None) -> StreamLayout:
    """Parses and validates the header of a stream, and says where its parts lie.

    As `read_header` (the payload is neither read nor checked), for tools that
    show a stream's structure without decoding it, e.g. `neurocodec info`.

    Raises:
      The errors of `read_header`.
    """
    header, lengths, payload_offset = _parse_header(_as_buffer(data), _limits(limits))
    return StreamLayout(header, tuple(lengths), payload_offset)


def read_header(data: BytesLike, limits: Limits | None = None) -> Header:
    """Parses and validates only the header of a stream.

    The payload is neither read nor checked, so this works on a stream whose
    payload is damaged or missing (e.g. for `neurocodec info`). `data` may be
    the whole stream or any prefix of it that contains the complete header.

    Args:
      data: The stream (or a prefix of it), any bytes-like object.
      limits: Limits to enforce; `None` means `DEFAULT_LIMITS`.
        `Limits.max_bytes` is not applied here.

    Returns:
      The validated `Header`.

    Raises:
      TruncatedStreamError: If `data` ends before the header does.
      FormatError: If `data` is not a neurocodec stream or a header field is
        invalid.
      UnsupportedVersionError: If the container version or coder id is unknown.
      ChecksumError: If the header CRC32 does not match.
      LimitExceededError: If the declared pixels or segments exceed `limits`.
      TypeError: If `data` is not bytes-like or `limits` is not a `Limits`.
    """
    lim = _limits(limits)
    header, _, _ = _parse_header(_as_buffer(data), lim)
    return header


def unpack(data: BytesLike, limits: Limits | None = None) -> tuple[Header, list[bytes]]:
    """Parses and validates a complete stream.

    Every declared length is checked against the bytes that remain and against
    `limits` before anything is read or allocated; both CRC32s are verified; no
    bytes may follow the payload CRC. Validation order is specified in
    docs/format.md.

    Args:
      data: The whole stream, any bytes-like object (`bytes`, `bytearray`,
        `memoryview`, `mmap`, ...). It is not copied except for the returned
        segments.
      limits: Limits to enforce; `None` means `DEFAULT_LIMITS`.

    Returns:
      A tuple `(header, segments)`: the validated `Header` and the payload
      segments as a list of `bytes`, in stream order.

    Raises:
      TruncatedStreamError: If `data` is empty or ends before a field, length
        table or segment it declares.
      FormatError: If `data` is not a neurocodec stream, a header field is
        invalid, or bytes follow the payload CRC.
      UnsupportedVersionError: If the container version or coder id is unknown.
      ChecksumError: If the header or payload CRC32 does not match.
      LimitExceededError: If the stream size, pixels or segments exceed `limits`.
      TypeError: If `data` is not bytes-like or `limits` is not a `Limits`.
    """
    lim = _limits(limits)
    buf = _as_buffer(data)
    _check_magic_and_version(buf)
    if len(buf) > lim.max_bytes:
        raise LimitExceededError(
            f"stream is {len(buf)} bytes, over the limit of {lim.max_bytes} (Limits.max_bytes); "
            f"to read it, pass limits=Limits(max_bytes={len(buf)}) or larger"
        )
    header, lengths, start = _parse_header(buf, lim)
    payload_size = sum(lengths)
    remaining = len(buf) - start
    if payload_size + 4 > remaining:
        raise TruncatedStreamError(
            f"stream ends inside the payload: {len(lengths)} segments declare {payload_size} "
            f"bytes plus a 4-byte payload CRC from offset {start}, but only {remaining} "
            f"bytes remain (stream is {len(buf)} bytes)"
        )
    end = start + payload_size
    (stored_crc,) = _U32.unpack_from(buf, end)
    actual_crc = zlib.crc32(buf[start:end])
    if stored_crc != actual_crc:
        raise ChecksumError(
            f"payload CRC32 mismatch: stored 0x{stored_crc:08x} at offset {end}, computed "
            f"0x{actual_crc:08x} over bytes {start}..{end - 1}; the payload is corrupt"
        )
    trailing = remaining - payload_size - 4
    if trailing:
        raise FormatError(
            f"{trailing} trailing bytes after the end of the stream (the stream is complete "
            f"and valid in its first {end + 4} bytes, but the input is {len(buf)} bytes)"
        )
    segments = []
    pos = start
    for n in lengths:
        segments.append(bytes(buf[pos : pos + n]))
        pos += n
    return header, segments
