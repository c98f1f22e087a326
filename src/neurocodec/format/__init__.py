"""The neurocodec container format (`.ncdc` files).

A stream is a header (model id, weight hash, coder id, quality, geometry,
tiling, segment lengths, CRC32) followed by opaque payload segments and a
payload CRC32. This package only moves bytes: it imports neither torch nor
numpy. The byte layout is specified in docs/format.md.

>>> from neurocodec.format import Header, pack, unpack, Limits
>>> data = pack(header, segments)                          # doctest: +SKIP
>>> header, segments = unpack(data, limits=Limits())      # doctest: +SKIP

Parsing raises only `neurocodec.errors.FormatError` subclasses for bad bytes.
"""

from .container import (
    CODER_IDS,
    DEFAULT_LIMITS,
    FILE_EXTENSION,
    FORMAT_VERSION,
    MAGIC,
    MIN_STREAM_SIZE,
    MODEL_ID_PATTERN,
    SUPPORTED_VERSIONS,
    Header,
    Limits,
    StreamLayout,
    coder_id,
    coder_name,
    pack,
    read_header,
    read_layout,
    unpack,
    weight_hash_of,
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
