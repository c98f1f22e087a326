"""Training arithmetic: bf16 autocast for the transforms, float32 for everything exact.

``precision="bf16"`` runs the model's ``analysis`` and ``synthesis`` (the transforms: most
of a step's work) under ``torch.autocast`` with bfloat16, and hands their outputs on as
float32. Everything else stays float32, outside any autocast region: the gains, the
fixed-point prior's fake quantisation (integer-valued sums must stay exact, DESIGN.md
decision 2), the rate terms (``y_bits`` / ``z_bits``, sums of small logs over many symbols)
and the loss. The coding face never uses autocast, so streams do not depend on how a model
was trained; bf16 only changes which float32 weights training arrives at.

``"auto"`` picks bf16 where the device computes it natively and fp32 elsewhere: a CUDA GPU
with bf16 support, or a CPU with AVX-512 BF16 or AMX (on other CPUs bf16 is emulated and
slower than fp32). Measured on this project's CPU (AMD EPYC, AVX-512 BF16, one thread,
block-hyperprior, batch 8 of 128-pixel crops): see ``benchmarks/train_throughput.py``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

#: /proc/cpuinfo flags that mean native bf16 arithmetic on x86 (AVX-512 BF16, AMX tiles).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def bf16_flags_in(cpuinfo: str) -> tuple[str, ...]:
    """The native-bf16 flags (:data:`NATIVE_BF16_FLAGS`) in the text of /proc/cpuinfo."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            present = set(line.partition(":")[2].split())
            return tuple(f for f in NATIVE_BF16_FLAGS if f in present)
    return ()


@functools.lru_cache(maxsize=1)
def cpu_bf16_flags() -> tuple[str, ...]:
    """The native-bf16 flags this CPU reports (empty where it has none, or where there is no
    /proc/cpuinfo: other systems train in fp32 under ``auto``)."""
    try:
        return bf16_flags_in(Path("/proc/cpuinfo").read_text())
    except OSError:
        return ()


def resolve(precision: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """``precision`` ("auto", "fp32", "bf16") on ``device`` -> (autocast dtype or None for
    float32, a short reason to print)."""
    if precision == "fp32":
        return None, "fp32 (asked)"
    if precision == "bf16":
        if device.type == "cpu" and not cpu_bf16_flags():
            return torch.bfloat16, ("bf16 autocast for the transforms (asked; WARNING: this CPU has no native bf16, "
                                    "so it is emulated: a block-hyperprior step took 14x its fp32 time on an AVX2 "
                                    "EPYC; --precision auto picks fp32 here)")
        return torch.bfloat16, "bf16 autocast for the transforms (asked)"
    if precision != "auto":
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "bf16 autocast for the transforms (auto: the GPU supports bf16)"
        return None, "fp32 (auto: this GPU has no bf16)"
    flags = cpu_bf16_flags()
    if flags:
        return torch.bfloat16, f"bf16 autocast for the transforms (auto: CPU has {', '.join(flags)})"
    return None, "fp32 (auto: this CPU has no native bf16, no AVX-512 BF16 or AMX)"


def autocast_transforms(model: torch.nn.Module, device: torch.device, dtype: torch.dtype | None) -> None:
    """Make ``model.analysis`` and ``model.synthesis`` run under autocast to ``dtype`` and
    return float32 (nothing happens for ``dtype`` None).

    The wrappers are set on this model instance only (its class, its state dict and every
    other model stay as they are); the training loop calls this once on the model it built.
    """
    if dtype is None:
        return
    for name in ("analysis", "synthesis"):
        method = getattr(model, name)

        @functools.wraps(method)
        def wrapped(*args, _method=method, **kwargs):
            with torch.autocast(device.type, dtype=dtype):
                out = _method(*args, **kwargs)
            return out.float()

        object.__setattr__(model, name, wrapped)
