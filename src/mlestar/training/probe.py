"""Measure training throughput of a model on this machine, briefly.

Used by stage 2 (the reference model: is the task feasible?) and stage 3
(each candidate: which model and how many epochs fit the time budget?).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlestar.training.precision import autocast_dtype

MIN_STEPS = 4        # oneDNN and the allocator warm up over the first steps; only later ones count
MIN_SECONDS = 1.0


def train_throughput(model: nn.Module, shape: tuple[int, int, int], num_classes: int, *, batch_size: int,
                     device: torch.device, precision: str = "fp32", channels_last: bool = False,
                     max_seconds: float = 4.0) -> dict[str, Any]:
    """Images per second of forward+backward+SGD steps on random data (median of the later steps)."""
    model = model.to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    x = torch.randn(batch_size, *shape, device=device)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    y = torch.randint(0, num_classes, (batch_size,), device=device)
    dtype = autocast_dtype(precision)
    timings: list[float] = []
    began = time.perf_counter()
    while len(timings) < MIN_STEPS or (time.perf_counter() - began < MIN_SECONDS and
                                       time.perf_counter() - began < max_seconds):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    steady = sorted(timings[len(timings) // 2:])
    return {"images_per_second": batch_size / steady[len(steady) // 2], "steps": len(timings),
            "batch_size": batch_size, "precision": precision, "channels_last": channels_last}
