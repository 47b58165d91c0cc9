"""What a model costs: size on disk, FLOPs, latency, throughput, memory.

All measurements feed one synthetic input of shape ``(C, H, W)`` through the
model on the device its parameters live on. Timings are wall-clock and so
depend on the machine and its load; report them together with the hardware.
Every function that runs the model puts it in eval mode for the measurement
and restores the mode it found afterwards.
"""

from __future__ import annotations

import io
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

_MIN_REPEATS = 5  # fewer timings than this make p95 meaningless


@dataclass(frozen=True)
class EfficiencySample:
    """How much :func:`efficiency_report` runs the model: fixed counts, so its cost is bounded and stated.

    The work does not grow with the data (it never touches it): ``warmup`` batch-1 passes,
    up to ``latency_probes`` probes of ``latency_calls`` timed batch-1 passes, then
    ``1 + throughput_batches`` passes of ``throughput_batch`` images. Probes run whole within
    ``latency_seconds``; past it none starts and the running one stops at 5 calls, so a slow
    model or a loaded machine costs about that long, not three probes (what ran is stated
    under ``measured``).
    """

    latency_probes: int = 3  # several probes: one that a busy moment of the machine slowed is outvoted
    latency_calls: int = 20  # timed batch-1 passes per probe; p95 of 20 lies between the two slowest
    latency_seconds: float = 2.0  # the latency timing's cap, as before (past it: see probed_latency)
    warmup: int = 3  # untimed batch-1 passes first (allocator, oneDNN primitives, cuDNN choice)
    throughput_batch: int = 256  # images per throughput pass: "a large batch" (a GPU at 64 is launch-bound)
    throughput_batches: int = 3  # timed passes of that batch, after one untimed one; the fastest counts

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            least = 0 if name in ("warmup", "latency_seconds") else 1
            if value < least:
                raise ValueError(f"EfficiencySample.{name} must be at least {least}, got {value}")


def num_params(model: nn.Module) -> int:
    """All parameters, trainable or frozen (frozen weights still cost memory and time)."""
    return sum(p.numel() for p in model.parameters())


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of the model's state_dict, stored as float32, serialized with ``torch.save``.

    Floating tensors are cast to float32 first, so a model held in half
    precision for inference reports the same size as its fp32 checkpoint.
    Includes buffers (BatchNorm statistics) and the small pickle overhead.
    """
    state = {key: _as_fp32_cpu(value) for key, value in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    return len(buf.getvalue())


def _as_fp32_cpu(value: Any) -> Any:
    """A detached CPU copy of a tensor, float32 when floating; anything else unchanged."""
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach().cpu()
    return value.float() if value.is_floating_point() else value


def count_flops(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """FLOPs of one forward pass at batch 1, counting ``nn.Conv2d`` and ``nn.Linear`` only.

    Each multiply-accumulate counts as 2 FLOPs. Biases, normalization,
    activations, pooling, attention matmuls and any other layer are not
    counted; for conv nets they are a small fraction of the total. A layer
    called twice in one forward pass is counted twice.
    """
    macs: list[int] = []
    hooks = [m.register_forward_hook(_mac_hook(macs)) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with _eval_mode(model), torch.inference_mode():
            model(_example_input(model, input_shape, batch_size=1))
    finally:
        for hook in hooks:
            hook.remove()
    return 2 * sum(macs)


def _mac_hook(macs: list[int]) -> Any:
    """A forward hook appending each call's multiply-accumulates to ``macs``."""

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            # every output element sums (in_channels / groups) * kh * kw products
            kh, kw = module.kernel_size
            macs.append(output.numel() * (module.in_channels // module.groups) * kh * kw)
        else:
            # every output element sums in_features products (any leading dims)
            macs.append(output.numel() * module.in_features)

    return hook


def measure_latency(model: nn.Module, input_shape: tuple[int, int, int], *, warmup: int = 5,
                    repeats: int = 50, max_seconds: float = 5.0) -> dict[str, float]:
    """Seconds per batch-1 forward pass: ``{"p50", "p95", "mean"}``, and ``"calls"``, how many were timed.

    Runs ``warmup`` untimed passes (allocator, cuDNN autotune, caches), then
    up to ``repeats`` timed ones. Stops early once ``max_seconds`` have
    passed since the start (warm-up included), but always times at least
    ``min(5, repeats)`` passes so a slow model still gets a p95.

    Raises:
        ValueError: ``repeats < 1``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    x = _example_input(model, input_shape, batch_size=1)
    deadline = time.perf_counter() + max_seconds
    times: list[float] = []
    with _eval_mode(model), torch.inference_mode():
        for _ in range(warmup):
            if time.perf_counter() >= deadline:
                break
            _timed_forward(model, x)
        while len(times) < repeats:
            times.append(_timed_forward(model, x))
            if time.perf_counter() >= deadline and len(times) >= min(_MIN_REPEATS, repeats):
                break
    seconds = np.asarray(times)
    return {"p50": float(np.percentile(seconds, 50)), "p95": float(np.percentile(seconds, 95)),
            "mean": float(seconds.mean()), "calls": float(len(times))}


def measure_throughput(model: nn.Module, input_shape: tuple[int, int, int], batch_size: int = 256,
                       max_seconds: float = 3.0) -> float:
    """Images per second at ``batch_size``, timed over about ``max_seconds``.

    One untimed warm-up batch, then batches until ``max_seconds`` have passed
    (at least one timed batch, however slow).

    Raises:
        ValueError: ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    x = _example_input(model, input_shape, batch_size=batch_size)
    with _eval_mode(model), torch.inference_mode():
        _timed_forward(model, x)
        elapsed, images = 0.0, 0
        while elapsed < max_seconds or images == 0:
            elapsed += _timed_forward(model, x)
            images += batch_size
    return images / elapsed


def probed_latency(model: nn.Module, input_shape: tuple[int, int, int], *, probes: int = 3, calls: int = 20,
                   warmup: int = 3, max_seconds: float = float("inf")) -> dict[str, float]:
    """Batch-1 latency from up to ``probes`` probes of ``calls`` timed passes: the quietest probe's numbers.

    Returns ``{"p50", "p95", "mean"}`` (seconds) of the probe with the lowest p95, with
    ``"probes"`` (how many ran) and ``"calls"`` (timed passes, all probes). Other processes
    on the machine only ever add time, so the lowest probe is the estimate of what the model
    costs, as in :func:`mlestar.tuning.objective.confirmed_latency`; one probe that a busy
    moment slowed is outvoted, yet the chosen probe's p95 still covers its own slowest calls.
    ``warmup`` untimed passes run before the first probe only. Within ``max_seconds`` every
    probe runs its ``calls``; past it no probe starts, and the one running stops once it
    has 5 (seen on a loaded 2-core CPU: batch-1 passes of 230 ms instead of 3 ms).
    """
    deadline = time.perf_counter() + max_seconds
    results = [measure_latency(model, input_shape, warmup=warmup, repeats=calls, max_seconds=max_seconds)]
    while len(results) < probes and (left := deadline - time.perf_counter()) > 0:
        results.append(measure_latency(model, input_shape, warmup=0, repeats=calls, max_seconds=left))
    best = min(results, key=lambda result: result["p95"])
    return {**best, "probes": float(len(results)), "calls": float(sum(r["calls"] for r in results))}


def batch_throughput(model: nn.Module, input_shape: tuple[int, int, int], *, batch_size: int = 64,
                     batches: int = 3) -> float:
    """Images per second at ``batch_size``: one untimed pass, then ``batches`` timed ones; the fastest counts.

    Exactly ``1 + batches`` passes whatever the machine, so the cost is known in advance;
    taking the fastest pass discounts time other processes took from this one.

    Raises:
        ValueError: ``batch_size`` or ``batches`` below 1.
    """
    if batch_size < 1 or batches < 1:
        raise ValueError(f"batch_size and batches must be at least 1, got {batch_size} and {batches}")
    x = _example_input(model, input_shape, batch_size=batch_size)
    with _eval_mode(model), torch.inference_mode():
        _timed_forward(model, x)
        fastest = min(_timed_forward(model, x) for _ in range(batches))
    return batch_size / fastest


def peak_memory_bytes() -> int:
    """Peak resident memory of this process so far, in bytes.

    Uses ``getrusage`` where it exists (``ru_maxrss`` is KiB on Linux, bytes
    on macOS). On Windows, psutil's peak working set; failing that, the
    current RSS, which is a lower bound of the peak.
    """
    try:
        import resource
    except ImportError:  # Windows has no resource module
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def efficiency_report(model: nn.Module, input_shape: tuple[int, int, int], *,
                      sample: EfficiencySample = EfficiencySample()) -> dict[str, Any]:
    """All efficiency numbers for one model, ready for JSON, from a fixed amount of work (``sample``).

    Keys and units: ``num_params`` (count), ``model_size_bytes`` (fp32
    checkpoint), ``flops`` (conv and linear only, batch 1),
    ``latency_p50``/``latency_p95`` (seconds, batch 1, :func:`probed_latency`),
    ``throughput`` (images/s at ``sample.throughput_batch``, :func:`batch_throughput`),
    ``peak_memory`` (bytes, this process's peak RSS, measured last so it
    includes the runs above) and ``measured``: what was run, so a reader
    knows the sample behind each number (``latency_calls`` timed passes in
    the ``latency_probes`` probes that ran, ``throughput_batch`` images times
    ``throughput_batches`` timed passes, each after its warm-up).
    """
    latency = probed_latency(model, input_shape, probes=sample.latency_probes, calls=sample.latency_calls,
                             warmup=sample.warmup, max_seconds=sample.latency_seconds)
    report: dict[str, Any] = {
        "num_params": num_params(model),
        "model_size_bytes": model_size_bytes(model),
        "flops": count_flops(model, input_shape),
        "latency_p50": latency["p50"],
        "latency_p95": latency["p95"],
        "throughput": batch_throughput(model, input_shape, batch_size=sample.throughput_batch,
                                       batches=sample.throughput_batches),
    }
    report["peak_memory"] = peak_memory_bytes()
    report["measured"] = {"input_shape": list(input_shape), "latency_batch": 1,
                          "latency_calls": int(latency["calls"]), "latency_probes": int(latency["probes"]),
                          "latency_warmup": sample.warmup,
                          "throughput_batch": sample.throughput_batch,
                          "throughput_batches": sample.throughput_batches, "throughput_warmup": 1,
                          "estimate": "the probe with the lowest p95; the fastest throughput pass"}
    return report


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode for the block, then restore its previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _example_input(model: nn.Module, input_shape: tuple[int, int, int], *, batch_size: int) -> torch.Tensor:
    """Random ``(batch_size, C, H, W)`` input on the model's device and in its float dtype."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    generator = torch.Generator().manual_seed(0)  # same input every call; values barely matter
    return torch.randn((batch_size, *input_shape), generator=generator).to(device=device, dtype=dtype)


def _timed_forward(model: nn.Module, x: torch.Tensor) -> float:
    """Seconds for one forward pass, waiting for the GPU to finish when there is one."""
    start = time.perf_counter()
    model(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)  # kernels run asynchronously; time their completion
    return time.perf_counter() - start
