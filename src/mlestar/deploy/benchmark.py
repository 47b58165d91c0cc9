"""Speed of an exported model, as the bundle's ``benchmark.json`` records it.

For each runtime: latency percentiles at batch 1 (one request, no batching)
and throughput at the batch sizes the micro-batcher reaches under load
(32 and 64). Measured in-process, without HTTP, so the numbers describe
the model and its runtime on this machine; ``benchmarks/serve.py`` measures
the server end to end.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from mlestar.deploy.export import Runner

LATENCY_REPEATS = 50
THROUGHPUT_BATCHES = (32, 64)
THROUGHPUT_BUDGET_S = 0.25  # per batch size: enough calls for a stable mean, little stage time
_MIN_CALLS = 3


def tile(images: np.ndarray, n: int) -> np.ndarray:
    """A batch of exactly ``n`` images, repeating ``images`` in order when there are fewer."""
    return np.ascontiguousarray(images[np.arange(n) % len(images)])


def latency(run: Runner, sample: np.ndarray, repeats: int = LATENCY_REPEATS) -> dict[str, float]:
    """p50/p95 seconds of ``run`` on ``sample`` (one image: batch 1), after one warm-up call."""
    run(sample)  # warm-up: the first call allocates and, for TorchScript, profiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(sample)
        times.append(time.perf_counter() - start)
    return {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95))}


def throughput(run: Runner, batch: np.ndarray, budget_s: float = THROUGHPUT_BUDGET_S) -> float:
    """Images per second of ``run`` on ``batch``: calls repeated for ``budget_s`` (at least 3), after a warm-up."""
    run(batch)
    calls, start = 0, time.perf_counter()
    while calls < _MIN_CALLS or time.perf_counter() - start < budget_s:
        run(batch)
        calls += 1
    return calls * len(batch) / (time.perf_counter() - start)


def benchmark_runner(run: Runner, images: np.ndarray, *, repeats: int = LATENCY_REPEATS,
                     batches: tuple[int, ...] = THROUGHPUT_BATCHES,
                     budget_s: float = THROUGHPUT_BUDGET_S) -> dict[str, Any]:
    """Latency at batch 1 and throughput at each of ``batches`` for one runner.

    Args:
        images: float32 ``(N, C, H, W)`` model input; tiled when ``N`` is below a batch size.

    Returns:
        ``{"latency_s": {"p50", "p95"}, "throughput": {"32": img/s, "64": img/s}}``.
    """
    return {"latency_s": latency(run, tile(images, 1), repeats),
            "throughput": {str(n): throughput(run, tile(images, n), budget_s) for n in batches}}


def best_throughput(result: dict[str, Any]) -> float | None:
    """The highest images/s over the measured batch sizes of one :func:`benchmark_runner` result."""
    values = list(result.get("throughput", {}).values())
    return max(values) if values else None


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model and count, and the thread settings that shape them."""
    import torch

    from mlestar.tracking.environment import cpu_info

    cpu = cpu_info()
    return {"cpu": cpu["model"], "cpu_count": cpu["cores"], "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__}
