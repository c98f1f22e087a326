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

from .cpu import CpuRangeCoder
from .lanes import LaneCoder
from .tables import IntTables, build_tables

__all__ = ["IntTables", "build_tables", "get_backend", "available_backends", "CpuRangeCoder", "LaneCoder"]


def _triton_backend():
    """The `triton` backend class, imported only when asked for (needs the [triton] extra)."""
    try:
        from .triton_backend import TritonLaneCoder
    except ImportError as exc:
        raise ImportError(
            "the 'triton' coder backend needs triton and torch: pip install 'neurocodec[triton]' "
            f"({exc}). Streams it writes (coder 'triton-rans') decode without it, through the "
            "numpy reference backend 'lanes'."
        ) from exc
    return TritonLaneCoder()


_BACKENDS = {"cpu": CpuRangeCoder, "lanes": LaneCoder, "triton": _triton_backend}
_RESERVED: dict = {}
_instances: dict = {}


def available_backends() -> tuple[str, ...]:
    """Names accepted by `get_backend`: `("cpu", "lanes", "triton")` ("triton" needs the
    [triton] extra)."""
    return tuple(sorted(_BACKENDS))


def get_backend(name: str = "cpu"):
    """Returns the coder backend called `name` (one shared instance per name).

    Args:
      name: `"cpu"`, the constriction range coder (`CpuRangeCoder`, container
        coder `cpu-range`); `"lanes"`, the numpy reference of the lane-parallel
        rANS format (`LaneCoder`, container coder `triton-rans`); `"triton"`,
        the Triton kernels of that format (`TritonLaneCoder`, same bytes; imports
        triton and torch on first use; runs the kernels on a GPU, under the
        Triton interpreter if `TRITON_INTERPRET=1` and there is no GPU, else the
        numpy reference).

    Returns:
      An object with `encode(symbols, table_indexes, tables) -> bytes` and
      `decode(data, table_indexes, tables) -> np.ndarray` (int32).

    Raises:
      ImportError: for `"triton"` without the [triton] extra installed.
      ValueError: for an unknown name; the message lists the available ones.
    """
    if name in _RESERVED:
        raise NotImplementedError(
            f"{_RESERVED[name]}; available backends: {', '.join(available_backends())}"
        )
    if name not in _BACKENDS:
        raise ValueError(
            f"unknown coder backend {name!r}; available backends: "
            f"{', '.join(available_backends())}"
        )
    backend = _instances.get(name)
    if backend is None:
        backend = _instances.setdefault(name, _BACKENDS[name]())
    return backend
