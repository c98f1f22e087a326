"""The `triton` backend: Triton kernels for the lane-parallel rANS format (coder id 1).

Imported lazily by `neurocodec.coding.get_backend("triton")` (never by
`import neurocodec` or `import neurocodec.coding`); needs the `[triton]` extra
and torch. The format is specified in docs/format.md (section 11) and
implemented for reference in `neurocodec.coding.lanes`; these kernels write
exactly the reference's bytes and decode its streams.

Kernels (one program per block of `B` lanes; a lane is one thread's column):

* `_lane_encode`: the encoder. With `FUSED`, it reads the latents `y`
  (float32), their integer means and table indexes, quantises in the kernel
  (`symbol = clamp(rint(y) - mean, int32)`, round half to even in float64,
  exactly what `MeanScaleHyperprior.quantise` computes), gathers each
  symbol's frequency and cumulative frequency from the tables in device
  memory and runs the rANS lanes backwards, writing each block's words from
  the end of a scratch row. Without `FUSED` it reads int32 symbols.
* `_lane_cost`: the optional planning pass: the exact integer size estimate
  (`LaneTables.cost`) summed per program, from which the host picks the
  number of lanes exactly as the reference does (`plan_lanes`).
* `_lane_decode`: the decoder; table lookup by binary search over the
  cumulative frequencies of the symbol's table (no slot tables needed).

Where they run (`TritonLaneCoder.executor`):

* `"cuda"`: compiled kernels on the GPU (torch.cuda available);
* `"interpreter"`: the same kernels under Triton's interpreter on CPU
  tensors (chosen automatically when `TRITON_INTERPRET=1` and no GPU); slow,
  for tests;
* `"reference"`: no GPU and no interpreter requested: the numpy reference
  (same bytes). This is what lets a CPU-only machine use `coder="triton"`.

No GPU speed figure exists for these kernels: they have been run only under the
interpreter and compiled ahead of time (see `compile_for`), never on a GPU.
"""

from __future__ import annotations

import os
import threading
import types
from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

from ..errors import FormatError
from . import lanes as ref
from .corrupt import corrupt_data_is_format_error
from .identity_cache import IdentityCache
from .tables import IntTables, _as_indexes, _check_coding_inputs

__all__ = ["TritonLaneCoder", "compile_for", "KERNEL_NAMES"]


# ---------------------------------------------------------------------------
# Kernel source. Plain functions: `_variants` binds them either as compiled
# (JITFunction) or interpreted (InterpretedFunction) kernels, each variant with
# its own globals so that helper calls resolve to helpers of the same kind.
# ---------------------------------------------------------------------------


def _add(a, b):
    """Combine function of the sums and prefix sums (`tl.sum` / `tl.cumsum` are avoided:
    Triton builds them as jit or interpreted functions depending on TRITON_INTERPRET at
    import, and these kernels must work both ways in one process)."""
    return a + b


def _bit_length(z):
    """Bit length (0..32) of int64 values in [0, 2**32)."""
    nb = z * 0
    t = z
    h = (t >> 16) != 0
    nb += h.to(tl.int64) * 16
    t = tl.where(h, t >> 16, t)
    h = (t >> 8) != 0
    nb += h.to(tl.int64) * 8
    t = tl.where(h, t >> 8, t)
    h = (t >> 4) != 0
    nb += h.to(tl.int64) * 4
    t = tl.where(h, t >> 4, t)
    h = (t >> 2) != 0
    nb += h.to(tl.int64) * 2
    t = tl.where(h, t >> 2, t)
    h = (t >> 1) != 0
    nb += h.to(tl.int64)
    t = tl.where(h, t >> 1, t)
    nb += (t != 0).to(tl.int64)
    return nb


def _symbols(y_ptr, mean_ptr, sym_ptr, i, active, FUSED: tl.constexpr):
    """int64 symbols at positions i: clamp(rint(y) - mean, int32), or loaded int32 symbols."""
    if FUSED:
        v = tl.load(y_ptr + i, mask=active, other=0.0).to(tl.float64)
        v = tl.minimum(tl.maximum(v, -1099511627776.0), 1099511627776.0)  # |v| <= 2**40
        fl = tl.floor(v)
        frac = v - fl
        r = fl.to(tl.int64)
        up = (frac > 0.5) | ((frac == 0.5) & ((r & 1) == 1))  # round half to even
        r = r + up.to(tl.int64)
        m = tl.load(mean_ptr + i, mask=active, other=0)
        s = tl.minimum(tl.maximum(r - m, -2147483648), 2147483647)
    else:
        s = tl.load(sym_ptr + i, mask=active, other=0).to(tl.int64)
    return s


def _emit(x, act, f, c, q, wpos, words_ptr, base):
    """One encoder operation on the lanes `act`: renormalise (emit), then code (f, c) at precision q.

    Emitted words of this operation go, in lane order, just below `wpos`.
    """
    emit = act & (x >= (f << (32 - q)))
    ei = emit.to(tl.int32)
    cnt = tl.reduce(ei, 0, _add)
    wpos = wpos - cnt
    pos = wpos + (tl.associative_scan(ei, 0, _add) - ei)
    tl.store(words_ptr + base + pos, (x & 65535).to(tl.int32), mask=emit)
    x = tl.where(emit, x >> 16, x)
    fs = tl.where(act, f, 1)
    quot = (x.to(tl.uint32) // fs.to(tl.uint32)).to(tl.int64)  # x < 2**32 here
    x = tl.where(act, (quot << q) + (x - quot * fs) + c, x)
    return x, wpos


def _read(x, need, rd, end, words_ptr):
    """Decoder renormalisation: lanes `need` read the block's next words in lane order."""
    ni = need.to(tl.int32)
    cnt = tl.reduce(ni, 0, _add)
    pos = rd + (tl.associative_scan(ni, 0, _add) - ni)
    w = tl.load(words_ptr + pos, mask=need & (pos < end), other=0).to(tl.int64)
    x = tl.where(need, (x << 16) | w, x)
    rd = rd + cnt
    return x, rd, (rd > end).to(tl.int32)


def _search(cum_ptr, lo, hi, slot, niter):
    """Largest entry e in [lo, hi) with cum[e] <= slot (cum[lo] == 0 <= slot)."""
    for _ in range(niter):
        mid = (lo + hi) >> 1
        go = tl.load(cum_ptr + mid) <= slot
        lo = tl.where(go, mid, lo)
        hi = tl.where(go, hi, mid)
    return lo


def _lane_encode(y_ptr, mean_ptr, sym_ptr, idx_ptr, freq_ptr, cum_ptr, off_ptr, minima_ptr, sizes_ptr,
                 words_ptr, final_ptr, wstart_ptr, n, L, S, CAP, LEN_OFF,
                 B: tl.constexpr, P: tl.constexpr, FUSED: tl.constexpr):
    pid = tl.program_id(0)
    lane = pid.to(tl.int64) * B + tl.arange(0, B).to(tl.int64)
    x = tl.full([B], 65536, tl.int64)
    one = tl.full([B], 1, tl.int64)
    base = pid.to(tl.int64) * CAP
    wpos = tl.reduce(tl.full([B], 0, tl.int64), 0, _add) + CAP
    for kk in range(0, S):
        i = lane + (S - 1 - kk) * L
        active = i < n
        t = tl.load(idx_ptr + i, mask=active, other=0)
        s = _symbols(y_ptr, mean_ptr, sym_ptr, i, active, FUSED)
        mn = tl.load(minima_ptr + t)
        sz = tl.load(sizes_ptr + t)
        local = s - mn
        esc = active & ((local < 0) | (local >= sz))
        local = tl.where(esc, sz, local)
        e = tl.load(off_ptr + t) + local
        f = tl.load(freq_ptr + e, mask=active, other=1)
        c = tl.load(cum_ptr + e, mask=active, other=0)
        if tl.reduce(esc.to(tl.int32), 0, _add) > 0:
            z = tl.where(s >= 0, 2 * s, -2 * s - 1)
            nb = _bit_length(tl.where(esc, z, 0))
            wl = tl.minimum(tl.maximum(nb - 1, 0), 16)
            wh = tl.maximum(nb - 17, 0)
            lead = tl.where(nb > 0, one << tl.maximum(nb - 1, 0), 0)
            man = z - lead
            low = man & ((one << wl) - 1)
            high = man >> 16
            lf = tl.load(freq_ptr + LEN_OFF + nb, mask=esc, other=1)
            lc = tl.load(cum_ptr + LEN_OFF + nb, mask=esc, other=0)
            x, wpos = _emit(x, esc & (wh > 0), one, high, wh, wpos, words_ptr, base)
            x, wpos = _emit(x, esc & (wl > 0), one, low, wl, wpos, words_ptr, base)
            x, wpos = _emit(x, esc, lf, lc, 16, wpos, words_ptr, base)
        x, wpos = _emit(x, active, f, c, P, wpos, words_ptr, base)
    tl.store(final_ptr + lane, x)
    tl.store(wstart_ptr + pid, wpos)


def _lane_cost(y_ptr, mean_ptr, sym_ptr, idx_ptr, minima_ptr, sizes_ptr, off_ptr, cost_ptr, lencost_ptr,
               part_ptr, nesc_ptr, n, BLOCK: tl.constexpr, FUSED: tl.constexpr):
    pid = tl.program_id(0)
    i = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    active = i < n
    t = tl.load(idx_ptr + i, mask=active, other=0)
    s = _symbols(y_ptr, mean_ptr, sym_ptr, i, active, FUSED)
    mn = tl.load(minima_ptr + t)
    sz = tl.load(sizes_ptr + t)
    local = s - mn
    esc = active & ((local < 0) | (local >= sz))
    local = tl.where(esc, sz, local)
    cost = tl.load(cost_ptr + tl.load(off_ptr + t) + local, mask=active, other=0)
    z = tl.where(s >= 0, 2 * s, -2 * s - 1)
    nb = _bit_length(tl.where(esc, z, 0))
    extra = tl.load(lencost_ptr + nb, mask=esc, other=0) + (tl.maximum(nb - 1, 0) << 16)
    cost += tl.where(esc, extra, 0)
    tl.store(part_ptr + pid, tl.reduce(cost, 0, _add))
    tl.store(nesc_ptr + pid, tl.reduce(esc.to(tl.int64), 0, _add))


def _lane_decode(words_ptr, final_ptr, starts_ptr, counts_ptr, idx_ptr, freq_ptr, cum_ptr, off_ptr,
                 minima_ptr, sizes_ptr, out_ptr, xout_ptr, rdout_ptr, err_ptr, n, L, S, LEN_OFF, NITER,
                 B: tl.constexpr, P: tl.constexpr):
    pid = tl.program_id(0)
    lane = pid.to(tl.int64) * B + tl.arange(0, B).to(tl.int64)
    one = tl.full([B], 1, tl.int64)
    x = tl.load(final_ptr + lane)
    rd = tl.load(starts_ptr + pid)
    end = rd + tl.load(counts_ptr + pid)
    err = tl.full([B], 0, tl.int32)
    for k in range(0, S):
        i = lane + k * L
        active = i < n
        t = tl.load(idx_ptr + i, mask=active, other=0)
        tb = tl.load(off_ptr + t)
        slot = x & ((1 << P) - 1)
        e = _search(cum_ptr, tb, tl.load(off_ptr + t + 1), slot, NITER)
        f = tl.load(freq_ptr + e)
        c = tl.load(cum_ptr + e)
        x = tl.where(active, f * (x >> P) + slot - c, x)
        x, rd, bad = _read(x, active & (x < 65536), rd, end, words_ptr)
        err = err | bad
        mn = tl.load(minima_ptr + t)
        sz = tl.load(sizes_ptr + t)
        local = e - tb
        esc = active & (local == sz)
        val = mn + local
        if tl.reduce(esc.to(tl.int32), 0, _add) > 0:
            # Operation 1: the escape's bit length under the 33-entry length table.
            slot16 = x & 65535
            e2 = _search(cum_ptr, tl.full([B], 0, tl.int64) + LEN_OFF, tl.full([B], 0, tl.int64) + (LEN_OFF + 33),
                         slot16, 6)
            f2 = tl.load(freq_ptr + e2)
            c2 = tl.load(cum_ptr + e2)
            x = tl.where(esc, f2 * (x >> 16) + slot16 - c2, x)
            x, rd, bad = _read(x, esc & (x < 65536), rd, end, words_ptr)
            err = err | bad
            nb = e2 - LEN_OFF
            wl = tl.minimum(tl.maximum(nb - 1, 0), 16)
            wh = tl.maximum(nb - 17, 0)
            # Operations 2 and 3: raw bits (f = 1).
            has_lo = esc & (wl > 0)
            vlo = tl.where(has_lo, x & ((one << wl) - 1), 0)
            x = tl.where(has_lo, x >> wl, x)
            x, rd, bad = _read(x, has_lo & (x < 65536), rd, end, words_ptr)
            err = err | bad
            has_hi = esc & (wh > 0)
            vhi = tl.where(has_hi, x & ((one << wh) - 1), 0)
            x = tl.where(has_hi, x >> wh, x)
            x, rd, bad = _read(x, has_hi & (x < 65536), rd, end, words_ptr)
            err = err | bad
            z = tl.where(nb > 0, one << tl.maximum(nb - 1, 0), 0) | vlo | (vhi << 16)
            v = tl.where((z & 1) == 0, z >> 1, -((z + 1) >> 1))
            err = err | (esc & (v >= mn) & (v < mn + sz)).to(tl.int32)
            val = tl.where(esc, v, val)
        tl.store(out_ptr + i, val.to(tl.int32), mask=active)
    tl.store(xout_ptr + lane, x)
    tl.store(rdout_ptr + pid, rd)
    tl.store(err_ptr + lane, err)


_HELPERS = (_add, _bit_length, _symbols, _emit, _read, _search)
_KERNELS = (_lane_encode, _lane_cost, _lane_decode)
#: Kernel names, for `compile_for`.
KERNEL_NAMES = tuple(k.__name__ for k in _KERNELS)

_variant_cache: dict[str, dict[str, Any]] = {}
_variant_lock = threading.Lock()


def _variants(mode: str) -> dict[str, Any]:
    """The kernels as `"jit"` (JITFunction) or `"interpret"` (InterpretedFunction) objects."""
    with _variant_lock:
        if mode not in _variant_cache:
            wrap = JITFunction if mode == "jit" else InterpretedFunction
            scope = dict(globals())
            out = {}
            for fn in _HELPERS + _KERNELS:
                clone = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
                clone.__module__ = fn.__module__
                clone.__qualname__ = fn.__qualname__
                if mode == "interpret" and fn is _add:
                    # The interpreter sums with numpy when it recognises Triton's own combine function.
                    out["_add"] = scope["_add"] = tl.standard._sum_combine
                    continue
                if mode == "interpret" and fn in _HELPERS:
                    # Plain calls inside an interpreted kernel: they see the patched `tl`
                    # (the kernel patches this scope), without re-patching on every call.
                    out[fn.__name__] = scope[fn.__name__] = clone
                else:
                    out[fn.__name__] = scope[fn.__name__] = wrap(clone)
            _variant_cache[mode] = out
        return _variant_cache[mode]


# ---------------------------------------------------------------------------
# Ahead-of-time compilation (no GPU needed)
# ---------------------------------------------------------------------------

_SIGNATURES = {
    "_lane_encode": ({"y_ptr": "*fp32", "mean_ptr": "*i64", "sym_ptr": "*i32", "idx_ptr": "*i32",
                      "freq_ptr": "*i64", "cum_ptr": "*i64", "off_ptr": "*i64", "minima_ptr": "*i64",
                      "sizes_ptr": "*i64", "words_ptr": "*i32", "final_ptr": "*i64", "wstart_ptr": "*i64",
                      "n": "i64", "L": "i64", "S": "i32", "CAP": "i64", "LEN_OFF": "i64",
                      "B": "constexpr", "P": "constexpr", "FUSED": "constexpr"},
                     {"B": 32, "P": 16, "FUSED": True}),
    "_lane_cost": ({"y_ptr": "*fp32", "mean_ptr": "*i64", "sym_ptr": "*i32", "idx_ptr": "*i32",
                    "minima_ptr": "*i64", "sizes_ptr": "*i64", "off_ptr": "*i64", "cost_ptr": "*i64",
                    "lencost_ptr": "*i64", "part_ptr": "*i64", "nesc_ptr": "*i64", "n": "i64",
                    "BLOCK": "constexpr", "FUSED": "constexpr"},
                   {"BLOCK": 1024, "FUSED": True}),
    "_lane_decode": ({"words_ptr": "*i32", "final_ptr": "*i64", "starts_ptr": "*i64", "counts_ptr": "*i64",
                      "idx_ptr": "*i32", "freq_ptr": "*i64", "cum_ptr": "*i64", "off_ptr": "*i64",
                      "minima_ptr": "*i64", "sizes_ptr": "*i64", "out_ptr": "*i32", "xout_ptr": "*i64",
                      "rdout_ptr": "*i64", "err_ptr": "*i32", "n": "i64", "L": "i64", "S": "i32",
                      "LEN_OFF": "i64", "NITER": "i32", "B": "constexpr", "P": "constexpr"},
                     {"B": 32, "P": 16}),
}


def compile_for(arch: int, kernels: tuple[str, ...] = KERNEL_NAMES, *, block_lanes: int = 32,
                precision: int = 16) -> dict[str, dict[str, Any]]:
    """Compiles the kernels ahead of time for an NVIDIA target, without a GPU.

    Args:
      arch: CUDA compute capability as an int (80 = sm_80 / A100, 90 = sm_90 / H100).
      kernels: which kernels (default all of `KERNEL_NAMES`).
      block_lanes, precision: the constexprs `B` and `P` to compile for.

    Returns:
      `{kernel name: compiled.asm}`: the dict of stages Triton produced
      (`"ttir"`, `"ttgir"`, `"llir"`, `"ptx"`, and `"cubin"` when `ptxas` is
      available, as it is in Triton's wheels).
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    jit = _variants("jit")
    out = {}
    for name in kernels:
        signature, constexprs = _SIGNATURES[name]
        constexprs = dict(constexprs)
        if "B" in constexprs:
            constexprs["B"] = block_lanes
        if "P" in constexprs:
            constexprs["P"] = precision
        src = ASTSource(fn=jit[name], signature=dict(signature), constexprs=constexprs)
        compiled = triton.compile(src, target=GPUTarget("cuda", int(arch), 32))
        out[name] = dict(compiled.asm)
    return out


# ---------------------------------------------------------------------------
# Host side
# ---------------------------------------------------------------------------


class _DeviceTables:
    """`LaneTables` arrays on a device (int64)."""

    def __init__(self, lt: ref.LaneTables, device: torch.device):
        def put(a):
            return torch.from_numpy(np.array(a, dtype=np.int64)).to(device)

        self.freq = put(lt.freq)
        self.cum = put(lt.cum)
        self.offsets = put(lt.offsets)
        self.minima = put(lt.minima)
        self.sizes = put(lt.sizes)
        self.cost = put(lt.cost)
        self.length_cost = put(lt.length_cost)
        self.len_off = int(lt.offsets[-2])
        self.niter = max(1, int(lt.max_entries - 1).bit_length())
        self.precision = lt.precision


def _interpret_requested() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


class TritonLaneCoder:
    """The `triton` backend: lane-parallel rANS (coder id 1) with Triton kernels.

    Same `encode`/`decode` API and guarantees as the cpu backend, plus the
    fused `encode_latents`. Bytes are identical to the numpy reference
    (`neurocodec.coding.lanes`), which decodes them on any machine, and the
    reverse.

    Args:
      executor: `"cuda"`, `"interpreter"` or `"reference"` (see the module
        docstring); None (default) picks `"cuda"` if torch sees a GPU, else
        `"interpreter"` if `TRITON_INTERPRET=1`, else `"reference"`.
    """

    name = "triton"

    def __init__(self, executor: str | None = None):
        if executor is None:
            if torch.cuda.is_available():
                executor = "cuda"
            elif _interpret_requested():
                executor = "interpreter"
            else:
                executor = "reference"
        if executor not in ("cuda", "interpreter", "reference"):
            raise ValueError(f"executor must be 'cuda', 'interpreter' or 'reference', got {executor!r}")
        if executor == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("executor 'cuda' needs a CUDA GPU; none is available")
        self.executor = executor
        self.device = torch.device("cuda" if executor == "cuda" else "cpu")
        self._cache: IdentityCache[_DeviceTables] = IdentityCache()

    def __repr__(self) -> str:
        return f"TritonLaneCoder(executor={self.executor!r})"

    # -- helpers ---------------------------------------------------------------

    def _kernels(self) -> dict[str, Any]:
        return _variants("jit" if self.executor == "cuda" else "interpret")

    def _tables(self, tables: IntTables) -> tuple[ref.LaneTables, _DeviceTables]:
        lt = ref.lane_tables(tables)
        return lt, self._cache.get(tables, lambda _: _DeviceTables(lt, self.device))

    # -- encoding --------------------------------------------------------------

    def encode(self, symbols: Any, table_indexes: Any, tables: IntTables, lanes: int | None = None) -> bytes:
        """Encodes int32 symbols under their tables (as `LaneCoder.encode`; same bytes)."""
        ref._check_tables(tables)
        if self.executor == "reference":
            return ref.encode(symbols, table_indexes, tables, lanes)
        sym, idx = _check_coding_inputs(symbols, table_indexes, tables.num_tables)
        lt, dev = self._tables(tables)
        sym_t = torch.from_numpy(np.ascontiguousarray(sym.ravel())).to(self.device)
        idx_t = torch.from_numpy(np.ascontiguousarray(idx.ravel())).to(self.device)
        return self._encode(None, None, sym_t, idx_t, lt, dev, lanes)

    def encode_latents(self, y: Any, mean: Any, index: Any, tables: IntTables, lanes: int | None = None) -> bytes:
        """Fused quantise-and-encode, on the device where the latents live.

        Args:
          y: float32 tensor (any shape): the scaled latents.
          mean: integer tensor of the same shape (or float holding integers): the
            exact prior's means.
          index: integer tensor of the same shape, table indexes in `[0, T)`.
          tables: the `IntTables` (precision <= 16).
          lanes: as in `encode`.

        Returns:
          The segment bytes of the symbols `clamp(rint(y) - mean, int32)`
          (round half to even, as `MeanScaleHyperprior.quantise`), identical to
          `encode` of those symbols.

        Raises:
          ValueError: on mismatched shapes, non-integer means or out-of-range indexes.
        """
        ref._check_tables(tables)
        y = torch.as_tensor(y)
        mean = torch.as_tensor(mean)
        index = torch.as_tensor(index)
        if not (y.shape == mean.shape == index.shape):
            raise ValueError(f"y, mean and index must have the same shape, got {tuple(y.shape)}, "
                             f"{tuple(mean.shape)} and {tuple(index.shape)}")
        if y.dtype != torch.float32:
            raise ValueError(f"y must be float32, got {y.dtype}")
        if mean.is_floating_point():
            if not bool(torch.all(mean == torch.round(mean))):
                raise ValueError("mean must hold integers (means of the exact prior)")
        elif mean.dtype == torch.bool or mean.is_complex():
            raise ValueError(f"mean must be an integer tensor, got {mean.dtype}")
        if index.is_floating_point() or index.dtype == torch.bool or index.is_complex():
            raise ValueError(f"index must be an integer tensor, got {index.dtype}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= tables.num_tables):
            raise ValueError(f"table indexes must lie in [0, {tables.num_tables})")
        if self.executor == "reference":
            v = torch.round(y.detach().cpu().double()) - mean.detach().cpu().double()
            s = torch.clamp(v, -2**31, 2**31 - 1).to(torch.int32).numpy()
            return ref.encode(s, index.detach().cpu().to(torch.int32).numpy(), tables, lanes)
        lt, dev = self._tables(tables)
        y_t = y.detach().reshape(-1).to(self.device).contiguous()
        mean_t = mean.detach().reshape(-1).to(self.device).to(torch.int64).contiguous()
        idx_t = index.detach().reshape(-1).to(self.device).to(torch.int32).contiguous()
        return self._encode(y_t, mean_t, None, idx_t, lt, dev, lanes)

    def _cost(self, y_a, m_a, s_a, idx_t, dev, fused: bool) -> tuple[int, int]:
        """(exact integer size estimate, number of escapes): the planning pass on the device."""
        n = idx_t.numel()
        block = 1024
        programs = -(-n // block)
        part = torch.zeros(programs, dtype=torch.int64, device=self.device)
        nesc = torch.zeros(programs, dtype=torch.int64, device=self.device)
        self._kernels()["_lane_cost"][(programs,)](y_a, m_a, s_a, idx_t, dev.minima, dev.sizes, dev.offsets,
                                                   dev.cost, dev.length_cost, part, nesc, n,
                                                   BLOCK=block, FUSED=fused)
        return int(part.sum()), int(nesc.sum())

    def _encode(self, y_t, mean_t, sym_t, idx_t, lt, dev, lanes) -> bytes:
        n = idx_t.numel()
        if n == 0:
            return b""
        k = self._kernels()
        fused = y_t is not None
        dummy_f = torch.zeros(1, dtype=torch.float32, device=self.device)
        dummy_i64 = torch.zeros(1, dtype=torch.int64, device=self.device)
        dummy_i32 = torch.zeros(1, dtype=torch.int32, device=self.device)
        y_a = y_t if fused else dummy_f
        m_a = mean_t if fused else dummy_i64
        s_a = dummy_i32 if fused else sym_t
        n_esc = None
        if lanes is None:
            cost, n_esc = self._cost(y_a, m_a, s_a, idx_t, dev, fused)
            lanes = ref.plan_lanes(n, cost)
        log2_block, blocks = ref.lane_layout(min(int(lanes), n))
        B = 1 << log2_block
        L = B * blocks
        S = -(-n // L)
        sb = S * B
        cap = sb + 3 * min(n_esc, sb) if n_esc is not None else 4 * sb
        words = torch.zeros((blocks, cap), dtype=torch.int32, device=self.device)
        final = torch.zeros(L, dtype=torch.int64, device=self.device)
        wstart = torch.zeros(blocks, dtype=torch.int64, device=self.device)
        k["_lane_encode"][(blocks,)](y_a, m_a, s_a, idx_t, dev.freq, dev.cum, dev.offsets, dev.minima, dev.sizes,
                                     words, final, wstart, n, L, S, cap, dev.len_off,
                                     B=B, P=dev.precision, FUSED=fused)
        start = wstart.cpu().numpy()
        if start.min() < 0:  # cannot happen: cap bounds the words of any block
            raise RuntimeError("lane encoder scratch overflow")
        # Compact each block's words [start_g, cap) on the device, then copy once.
        counts = torch.as_tensor(cap - start, device=self.device)
        block_of = torch.repeat_interleave(torch.arange(blocks, device=self.device), counts)
        first = torch.cumsum(counts, 0) - counts
        col = torch.arange(block_of.numel(), device=self.device) - first[block_of] + wstart[block_of]
        flat = words[block_of, col].cpu().numpy().astype(np.uint16)
        bounds = np.cumsum(cap - start)[:-1]
        return ref.pack_segment(log2_block, final.cpu().numpy(), np.split(flat, bounds))

    # -- decoding --------------------------------------------------------------

    def decode(self, data: Any, table_indexes: Any, tables: IntTables) -> np.ndarray:
        """Decodes a lane segment (as `LaneCoder.decode`): int32 array, or FormatError."""
        ref._check_tables(tables)
        if self.executor == "reference":
            return ref.decode(data, table_indexes, tables)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
        idx = _as_indexes(table_indexes, tables.num_tables)
        lt, dev = self._tables(tables)
        n = idx.size
        if n == 0:
            if memoryview(data).nbytes:
                raise FormatError(f"{memoryview(data).nbytes} bytes of data for 0 symbols")
            return np.zeros(idx.shape, dtype=np.int32)
        seg = ref.Segment(data, n)  # raises FormatError on a bad header
        with corrupt_data_is_format_error():
            out = self._decode(seg, idx, lt, dev)
        return out.reshape(idx.shape)

    def _decode(self, seg: ref.Segment, idx: np.ndarray, lt, dev) -> np.ndarray:
        d = self.device
        n = idx.size
        words = torch.from_numpy(seg.words.astype(np.int32)).to(d)
        if words.numel() == 0:
            words = torch.zeros(1, dtype=torch.int32, device=d)
        final = torch.from_numpy(seg.final).to(d)
        starts = torch.from_numpy(seg.starts).to(d)
        counts = torch.from_numpy(seg.counts).to(d)
        idx_t = torch.from_numpy(np.ascontiguousarray(idx.ravel().astype(np.int32))).to(d)
        out = torch.zeros(n, dtype=torch.int32, device=d)
        xout = torch.zeros(seg.lanes, dtype=torch.int64, device=d)
        rdout = torch.zeros(seg.blocks, dtype=torch.int64, device=d)
        err = torch.zeros(seg.lanes, dtype=torch.int32, device=d)
        self._kernels()["_lane_decode"][(seg.blocks,)](
            words, final, starts, counts, idx_t, dev.freq, dev.cum, dev.offsets, dev.minima, dev.sizes,
            out, xout, rdout, err, n, seg.lanes, seg.steps, dev.len_off, dev.niter,
            B=seg.block_lanes, P=dev.precision)
        if bool((err != 0).any()):
            raise FormatError("corrupt coded data: a lane block reads past its words or an escape is "
                              "not canonical")
        if bool((xout != ref.STATE_LOW).any()):
            raise FormatError("corrupt coded data: a lane does not end in the initial state")
        if not np.array_equal(rdout.cpu().numpy(), seg.starts + seg.counts):
            raise FormatError("corrupt coded data: words left over after the last symbol")
        return out.cpu().numpy()
