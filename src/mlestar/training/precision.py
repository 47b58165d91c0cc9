"""Pick the device and numeric precision that train fastest here without losing accuracy.

On CPUs, bf16 autocast pays only where the CPU computes bf16 dot products
natively: AMX tiles (Intel Sapphire Rapids and later) train convnets 2-3x
faster than fp32, and AVX-512 BF16 (Intel Cooper Lake, AMD Zen 4 and later)
1.6-1.9x faster (measured on a Zen 5 EPYC, docs/benchmarks.md). Elsewhere
(AVX2 only) bf16 is emulated and about 10x slower than fp32, so ``auto`` means
fp32 there. On GPUs, ``auto`` is bf16 where supported.
"""

from __future__ import annotations


import torch


def cpu_has_amx() -> bool:
    """True when the CPU advertises AMX bf16 tiles."""
    probe = getattr(torch._C, "_cpu", None)
    if probe is not None and hasattr(probe, "_is_amx_tile_supported"):
        try:
            return bool(probe._is_amx_tile_supported())
        except RuntimeError:
            pass
    return "amx_bf16" in _cpu_flags()


def cpu_native_bf16() -> str | None:
    """How this CPU computes bf16 natively: ``"amx"``, ``"avx512_bf16"``, or None (emulated)."""
    if cpu_has_amx():
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in _cpu_flags() else None


def _cpu_flags() -> set[str]:
    """The CPU's instruction-set flags (a seam for tests: :func:`mlestar.tracking.environment.cpu_flags`)."""
    from mlestar.tracking.environment import cpu_flags

    return cpu_flags()


def choose_device(requested: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU falls back to cpu."""
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def choose_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """Return ``(precision, reason)`` with precision in fp32, bf16, fp16."""
    if requested != "auto":
        if device.type == "cpu" and requested == "fp16":
            return "bf16", "fp16 autocast is GPU-only; bf16 used on the CPU instead"
        return requested, "set in the config"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "GPU supports bf16"
        return "fp16", "GPU without bf16: fp16 with loss scaling"
    native = cpu_native_bf16()
    if native == "amx":
        return "bf16", "CPU has AMX: bf16 autocast trains 2-3x faster"
    if native == "avx512_bf16":
        return "bf16", "CPU has AVX-512 BF16 (native bf16 dot products): bf16 autocast trains 1.6-1.9x faster"
    return "fp32", "CPU without AMX or AVX-512 BF16: bf16 would be emulated and slower than fp32"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype for a precision name, or None for fp32."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
