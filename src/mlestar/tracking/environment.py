"""Capture what a run ran on, so it can be reproduced and compared.

Python and package versions, CPU model and features (AMX, bf16), GPU name,
thread count, the git commit of the working directory when there is one.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

_PACKAGES = ("mlestar", "torch", "torchvision", "numpy", "scikit-learn", "optuna", "onnx", "onnxruntime",
             "fastapi", "pydantic", "pillow")


def package_versions() -> dict[str, str | None]:
    """Installed version of each package mlestar's results depend on (None when absent)."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpuinfo_field(name: str) -> str | None:
    """The value of ``name`` for the first processor in /proc/cpuinfo (None without /proc or the field)."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return None
    return next((ln.partition(":")[2].strip() for ln in lines if ln.partition(":")[0].strip() == name), None)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what :mod:`platform` knows."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """Every instruction-set flag the CPU advertises (/proc/cpuinfo; empty where there is none)."""
    return set((_cpuinfo_field("flags") or "").split())


def cpu_info() -> dict[str, Any]:
    """CPU model, core count and the instruction-set flags that decide precision."""
    interesting = sorted(f for f in cpu_flags() if f.startswith(("amx", "avx512_bf16", "avx512f", "avx2")))
    return {"model": cpu_model(), "cores": os.cpu_count(), "flags": interesting}


def gpu_info() -> dict[str, Any] | None:
    """Name and memory of the first GPU, or None without one.

    Asks nvidia-smi rather than importing torch: importing torch costs seconds,
    and a fully cached re-run must not pay that just to describe the machine.
    """
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(0)
        return {"name": props.name, "memory_bytes": props.total_memory, "count": torch.cuda.device_count()}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = [line.split(",") for line in out.stdout.strip().splitlines() if "," in line]
    if out.returncode != 0 or not rows:
        return None
    return {"name": rows[0][0].strip(), "memory_bytes": int(float(rows[0][1])) * 2**20, "count": len(rows)}


def git_commit(path: Path | None = None) -> str | None:
    """HEAD commit of the git repository at ``path`` (cwd by default), or None."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path or Path.cwd(), capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def capture_environment() -> dict[str, Any]:
    """Everything above in one JSON-ready mapping."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "cpu": cpu_info(),
        "gpu": gpu_info(),
        "git_commit": git_commit(),
        "argv": sys.argv,
    }
