"""Exceptions shared by every layer.

Only this module may be imported by every layer; it imports nothing.
"""


class NeurocodecError(Exception):
    """Base class of every error neurocodec raises on purpose."""


class FormatError(NeurocodecError, ValueError):
    """A byte string is not a valid neurocodec stream.

    Raised for malformed, truncated, corrupted or foreign data, and for streams that
    need a model or coder this installation does not have. Never any other exception
    type escapes from parsing or decoding bytes.
    """


class TruncatedStreamError(FormatError):
    """The stream ends before a length or segment it declares."""


class ChecksumError(FormatError):
    """A CRC32 stored in the stream does not match the bytes it covers."""


class UnsupportedVersionError(FormatError):
    """The stream's container version or coder id is unknown to this installation."""


class UnknownModelError(FormatError):
    """The stream names a model (or weight hash) this installation does not ship."""


class LimitExceededError(FormatError):
    """A size declared by the stream exceeds a configured limit (e.g. max pixels)."""


class ImageError(NeurocodecError, ValueError):
    """An input image has an unsupported shape, dtype or mode."""


class RealismError(NeurocodecError, ValueError):
    """A realism value (``--realism``, ``decompress(realism=...)``) outside [0, 1] or not a number."""


class RealismUnavailableError(RealismError):
    """Realism was asked of a model that ships no realism decoder (docs/models.md, "Realism decoders")."""
