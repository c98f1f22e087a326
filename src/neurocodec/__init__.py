"""neurocodec: neural image compression with portable bitstreams and shipped models.

Quick use::

    import neurocodec
    data = neurocodec.compress(image, quality=4)   # PIL image, uint8 array or tensor
    pixels = neurocodec.decompress(data)           # uint8 (H, W, 3)
    textured = neurocodec.decompress(data, realism=1.0)  # the same stream, realism decoder

``import neurocodec`` is light: torch and the models load on first use.
"""

from __future__ import annotations

from .errors import (FormatError, ImageError, NeurocodecError, RealismError, RealismUnavailableError,
                     UnknownModelError)

__version__ = "0.5.0"

_LAZY = {
    "Codec": ("codec", "Codec"),
    "compress": ("codec", "compress"),
    "decompress": ("codec", "decompress"),
    "list_models": ("zoo", "list_models"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'neurocodec' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["Codec", "FormatError", "ImageError", "NeurocodecError", "RealismError", "RealismUnavailableError",
           "UnknownModelError", "compress", "decompress", "list_models", "__version__"]
