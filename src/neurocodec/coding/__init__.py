"""Integer probability tables and entropy coders: `(symbols, table indexes, tables) <-> bytes`.

```python
from neurocodec.coding import IntTables, build_tables, get_backend

tables = build_tables(pmfs, minima, precision=16)    # at export time only
backend = get_backend("cpu")                          # constriction range coder
data = backend.encode(symbols, table_indexes, tables)
symbols = backend.decode(data, table_indexes, tables) # int32, same shape
```

This layer uses numpy and constriction only (never torch). Coding is integer
work: the only floats are the exact dyadic probabilities `freqs / 2**precision`
handed to constriction, which re-quantises them with exact arithmetic.

Backends: `cpu` (constriction range coder, container coder `cpu-range`),
`lanes` (numpy reference of the lane-parallel rANS format, container coder
`triton-rans`, see `neurocodec.coding.lanes` and docs/format.md section 11) and
`triton` (Triton kernels of that format, same bytes). `triton` is the one
exception to "never torch": `neurocodec.coding.triton_backend` imports triton
and torch, only when `get_backend("triton")` is first called (the `[triton]`
extra), because its fused encoder quantises float latents where they live, on
the GPU (`encode_latents`). Everything else here, including decoding
`triton-rans` streams, needs neither.

What the coder guarantees:

* Exact round trip: `decode(encode(s, i, T), i, T)` equals `s` (as int32, same
  shape) for every int32 array `s` of any shape, every integer array `i` of the
  same shape with values in `[0, T.num_tables)`, and every `IntTables` `T`.
  The decoder must be given identical `i` and `T` (equal values; the bytes
  carry neither).
* Every int32 is codable: a value outside its table's range costs the escape
  symbol plus a bypass code of `log2(33) + max(L - 1, 0)` bits, `L` the bit
  length of its zigzagged value.
* Determinism: the bytes are a function of `(s, i, T)` only (no randomness,
  no dependence on threads, platform or byte order), and the format is pinned
  by golden tests. Byte layout: little-endian 32-bit words of a constriction
  `stream.queue` range coder; symbols grouped by table in increasing table
  order, each group in C order, then the escaped values (see
  `neurocodec.coding.cpu` for the exact layout). An empty input is `b""`.
* Size: within a fraction of a percent of `IntTables.ideal_bits` plus at most
  a few 32-bit words of flush for large inputs.
* Robustness: `decode` of arbitrary bytes returns an int32 array or raises
  `neurocodec.errors.FormatError`, nothing else; its work is bounded by
  `len(table_indexes)` (O(N) time and memory), never by the data.
* Complexity: O(N) time and memory for N symbols (grouping uses numpy's radix
  sort for up to 65536 tables), plus O(total table size) once per `IntTables`
  object to build the constriction models, which the backend caches.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..lazy import lazy_attributes
from .backends import BACKENDS, CONTAINER_CODERS, Backend, backends_reading, container_coder

if TYPE_CHECKING:
    from .cpu import CpuRangeCoder
    from .lanes import LaneCoder
    from .tables import IntTables, build_tables

__all__ = ["BACKENDS", "CONTAINER_CODERS", "Backend", "CpuRangeCoder", "IntTables", "LaneCoder",
           "available_backends", "backends_reading", "build_tables", "container_coder", "get_backend"]

# These import numpy and constriction, so they load on first use: the format layer reads
# the coder table (.backends) through this package and must stay free of both.
__getattr__ = lazy_attributes(__name__, {"IntTables": "tables", "build_tables": "tables", "CpuRangeCoder": "cpu",
                                         "LaneCoder": "lanes"})


_instances: dict = {}


def available_backends() -> tuple[str, ...]:
    """Names accepted by `get_backend`: `("cpu", "lanes", "triton")` ("triton" needs the
    [triton] extra)."""
    return tuple(sorted(BACKENDS))


def get_backend(name: str = "cpu"):
    """Returns the coder backend called `name` (one shared instance per name).

    Args:
      name: `"cpu"`, the constriction range coder (`CpuRangeCoder`, container
        coder `cpu-range`); `"lanes"`, the numpy reference of the lane-parallel
        rANS format (`LaneCoder`, container coder `triton-rans`); `"triton"`,
        the Triton kernels of that format (`TritonLaneCoder`, same bytes; imports
        triton and torch on first use; runs the kernels on a GPU, under the
        Triton interpreter if `TRITON_INTERPRET=1` and there is no GPU, else the
        numpy reference). `BACKENDS` lists them with their container coders.

    Returns:
      An object with `encode(symbols, table_indexes, tables) -> bytes` and
      `decode(data, table_indexes, tables) -> np.ndarray` (int32).

    Raises:
      ImportError: for `"triton"` without the [triton] extra installed.
      ValueError: for an unknown name; the message lists the available ones.
    """
    if name not in BACKENDS:
        raise ValueError(
            f"unknown coder backend {name!r}; available backends: "
            f"{', '.join(available_backends())}"
        )
    backend = _instances.get(name)
    if backend is None:
        backend = _instances.setdefault(name, _implementation(BACKENDS[name])())
    return backend


def _implementation(spec: Backend) -> type:
    """The class of a backend, imported now (a missing extra is named in the error)."""
    module, cls = spec.implementation.split(":")
    try:
        return getattr(importlib.import_module(f".{module}", __name__), cls)
    except ImportError as exc:
        if spec.extra is None:
            raise
        readers = [b for b in backends_reading(spec.container_coder) if BACKENDS[b].extra is None]
        raise ImportError(
            f"the {spec.name!r} coder backend needs {spec.extra} and torch: pip install "
            f"'neurocodec[{spec.extra}]' ({exc}). Streams it writes (coder {spec.container_coder!r}) "
            f"decode without it, through the numpy reference backend {readers[0]!r}."
        ) from exc
