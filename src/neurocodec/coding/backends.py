"""The coder backends, and the container coder whose bytes each one writes.

One table holds, per backend: the name :func:`neurocodec.coding.get_backend` takes, the
coder name and id the container header records for its bytes, and where its code lives.
The container (``neurocodec.format.CODER_IDS``) and the codec (which coder a stream
records, which backend decodes it) read them from here. Standard library only, so that
the format layer can read the table without numpy or constriction.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Backend:
    """One coder backend.

    Attributes:
      name: what ``get_backend`` takes.
      container_coder: the coder name the container header records for the bytes this
        backend writes; backends that write the same bytes share it.
      container_id: that coder's id in the header (never reused for other bytes).
      implementation: ``"module:Class"`` below ``neurocodec.coding``, imported on first use.
      extra: the pip extra the backend needs, or None.
    """

    name: str
    container_coder: str
    container_id: int
    implementation: str
    extra: str | None = None


BACKENDS: Mapping[str, Backend] = types.MappingProxyType({b.name: b for b in (
    Backend("cpu", "cpu-range", 0, "cpu:CpuRangeCoder"),
    # the numpy reference of the lane-parallel rANS format and its Triton kernels: same bytes
    Backend("lanes", "triton-rans", 1, "lanes:LaneCoder"),
    Backend("triton", "triton-rans", 1, "triton_backend:TritonLaneCoder", extra="triton"),
)})

#: Container coder name -> header id.
CONTAINER_CODERS: Mapping[str, int] = types.MappingProxyType(
    {b.container_coder: b.container_id for b in BACKENDS.values()})


def container_coder(backend: str) -> str:
    """The container coder name of the bytes ``backend`` writes.

    Raises:
      ValueError: ``backend`` is not a backend name.
    """
    try:
        return BACKENDS[backend].container_coder
    except KeyError:
        raise ValueError(f"unknown coder {backend!r}; available: {sorted(BACKENDS)}") from None


def backends_reading(coder: str) -> tuple[str, ...]:
    """The backends that read streams of the container coder ``coder`` (empty if none)."""
    return tuple(b.name for b in BACKENDS.values() if b.container_coder == coder)
