"""Measure training throughput of a model on this machine, briefly.

Used by stage 2 (the reference model: is the task feasible?) and stage 3
(each candidate: which model and how many epochs fit the time budget?).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlestar.training.precision import autocast_dtype
from mlestar.training.spec import TrainSpec

MIN_STEPS = 4        # oneDNN and the allocator warm up over the first steps; only later ones count
MIN_SECONDS = 1.0
LOOP_STEPS = 6       # steps per timed pass of the real loop (at batches up to LOOP_BATCH; fewer above)
LOOP_BATCH = 256
LOOP_SECONDS = 4.0   # keep timing passes until this much has been measured (noise on a shared machine)


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


def loop_steps(batch_size: int) -> int:
    """Steps per timed pass: ``LOOP_STEPS``, or for batches over ``LOOP_BATCH`` as many as hold about as
    many images (at least 2): a 2,000-image batch times 2 steps, not 6 (12,000 images, 30-60 s a pass on a
    2-core CPU)."""
    return LOOP_STEPS if batch_size <= LOOP_BATCH else max(2, math.ceil(LOOP_STEPS * LOOP_BATCH / batch_size))


def loop_throughput(model: nn.Module, shape: tuple[int, int, int], num_classes: int, spec: TrainSpec, *,
                    device: torch.device, min_seconds: float = LOOP_SECONDS) -> dict[str, Any]:
    """Images per second of :func:`~mlestar.training.loop.fit`'s own epoch loop on random data.

    Unlike :func:`train_throughput` this times everything a training step
    costs in the planned recipe: batch gathering, augmentation, the optimizer
    with its groups, the schedule, lookahead, the loss bookkeeping. Passes of
    :func:`loop_steps` steps run after one untimed warm-up pass until
    ``min_seconds`` are measured; the median pass counts. A planner using
    the plain step time alone underestimated a CIFAR-10 epoch by 23%.
    The loop runs past the stem bias's epochs, where most of a fit's epochs
    are (that bias takes no gradient then). ``model`` keeps its
    ``requires_grad`` flags.
    """
    from mlestar.training.loop import Trainer, prepare_model

    steps = loop_steps(spec.batch_size)
    n = spec.batch_size * steps
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=generator).to(device)
    y = torch.randint(0, num_classes, (n,), generator=generator).to(device)
    # Long nominal training: schedules and lookahead stay in their mid-run regime during the probe.
    spec = replace(spec, epochs=10_000, max_seconds=None)
    trainer = Trainer(prepare_model(model.to(device), x, spec), (x, y), spec)
    # Time the regime most epochs train in: after the stem bias's first epochs fit stops its gradient,
    # 1.09x faster per step (airbench_s, bf16, AMX CPU; 5 interleaved pairs, docs/benchmarks.md).
    trainer.step_count = trainer.spent_from
    trainer.train_epoch(1)
    passes: list[float] = []
    while len(passes) < 2 or sum(passes) < min_seconds:
        start = time.perf_counter()
        trainer.train_epoch(len(passes) + 2)
        passes.append(time.perf_counter() - start)
    trainer.thaw()
    return {"images_per_second": n / statistics.median(passes), "steps": steps * (len(passes) + 1),
            "batch_size": spec.batch_size, "precision": spec.precision, "channels_last": spec.channels_last,
            "method": "fit's epoch loop on random data"}
