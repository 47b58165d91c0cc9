"""Efficiency numbers: sizes and FLOPs checked against hand counts, timings for sanity."""

from __future__ import annotations

import psutil
import pytest
import torch
from torch import nn

from mlestar.evaluation import (
    EfficiencySample,
    batch_throughput,
    count_flops,
    efficiency_report,
    measure_latency,
    measure_throughput,
    model_size_bytes,
    num_params,
    peak_memory_bytes,
    probed_latency,
)
from mlestar.evaluation import efficiency as efficiency_module


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3))


def test_model_size_is_four_bytes_per_param() -> None:
    model = nn.Linear(1000, 100)
    expected = 4 * num_params(model)  # 100_100 float32 values
    assert abs(model_size_bytes(model) - expected) / expected < 0.05


def test_model_size_counts_half_models_as_fp32() -> None:
    model = nn.Linear(1000, 100)
    assert model_size_bytes(model.half()) == model_size_bytes(nn.Linear(1000, 100))


def test_flops_single_conv() -> None:
    # output 8 x 10 x 10 = 800 values, each 3 * 3 * 3 = 27 MACs -> 21_600 MACs
    assert count_flops(nn.Conv2d(3, 8, 3, padding=1), (3, 10, 10)) == 2 * 21_600


def test_flops_strided_grouped_conv() -> None:
    # output 8 x 4 x 4 = 128 values ((9 - 3) // 2 + 1 = 4), each (4 / 2) * 3 * 3 = 18 MACs
    assert count_flops(nn.Conv2d(4, 8, 3, stride=2, groups=2), (4, 9, 9)) == 2 * 128 * 18


def test_flops_single_linear() -> None:
    # 60 inputs x 7 outputs = 420 MACs; flatten has no cost
    assert count_flops(nn.Sequential(nn.Flatten(), nn.Linear(60, 7)), (3, 4, 5)) == 2 * 420


def test_flops_sum_over_layers_and_restore_mode() -> None:
    model = tiny_net().train()
    conv = 4 * 8 * 8 * 1 * 9  # 2304 MACs; batch norm and ReLU are not counted
    linear = 256 * 3
    assert count_flops(model, (1, 8, 8)) == 2 * (conv + linear)
    assert model.training  # measuring must not leave the model in eval mode


def test_latency() -> None:
    latency = measure_latency(tiny_net(), (1, 8, 8), warmup=2, repeats=20, max_seconds=2.0)
    assert set(latency) == {"p50", "p95", "mean", "calls"} and latency["calls"] <= 20
    assert all(value > 0 for value in latency.values())
    assert latency["p95"] >= latency["p50"]


def test_latency_stops_early_after_five_repeats() -> None:
    model, calls = tiny_net(), []
    model.register_forward_hook(lambda *_: calls.append(1))
    measure_latency(model, (1, 8, 8), warmup=5, repeats=50, max_seconds=0.0)
    assert len(calls) == 5  # no warm-up once the budget is spent; the minimum of 5 timed runs


def test_latency_rejects_zero_repeats() -> None:
    with pytest.raises(ValueError):
        measure_latency(tiny_net(), (1, 8, 8), repeats=0)


def test_throughput() -> None:
    assert measure_throughput(tiny_net(), (1, 8, 8), batch_size=16, max_seconds=0.1) > 0


def test_peak_memory_is_at_least_current_rss() -> None:
    assert peak_memory_bytes() >= 0.9 * psutil.Process().memory_info().rss


def batch_sizes_seen(model: nn.Module) -> list[int]:
    """A spy: the batch size of every forward pass ``model`` makes from now on."""
    sizes: list[int] = []
    model.register_forward_hook(lambda module, inputs, output: sizes.append(inputs[0].shape[0]))
    return sizes


def test_efficiency_report() -> None:
    model = tiny_net()
    report = efficiency_report(model, (1, 8, 8), sample=EfficiencySample(latency_calls=5, throughput_batch=16))
    assert set(report) == {"num_params", "model_size_bytes", "flops", "latency_p50", "latency_p95",
                           "throughput", "peak_memory", "measured"}
    assert report["num_params"] == sum(p.numel() for p in model.parameters())
    assert report["flops"] == count_flops(model, (1, 8, 8))
    assert all(value > 0 for key, value in report.items() if key != "measured")
    assert report["latency_p95"] >= report["latency_p50"]


def test_efficiency_report_runs_exactly_the_sample_it_states() -> None:
    model = tiny_net()
    sizes = batch_sizes_seen(model)
    sample = EfficiencySample(latency_probes=2, latency_calls=7, latency_seconds=float("inf"), warmup=2,
                              throughput_batch=12, throughput_batches=4)
    measured = efficiency_report(model, (1, 8, 8), sample=sample)["measured"]
    assert measured["latency_calls"] == 14 and measured["latency_probes"] == 2
    assert measured["throughput_batch"] == 12 and measured["throughput_batches"] == 4
    # warm-up + 2 probes x 7 timed batch-1 passes, 1 batch-1 pass for FLOPs, then 1 + 4 passes of 12 images
    assert sizes.count(1) == 2 + 14 + 1
    assert sizes.count(12) == 1 + 4
    assert len(sizes) == 2 + 14 + 1 + 1 + 4


def test_efficiency_report_runs_whole_probes_within_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Passes timed at 1 s each, time unlimited: every probe runs its 20 calls, the work is the sample's.
    monkeypatch.setattr(efficiency_module, "_timed_forward", lambda model, x: model(x) is None or 1.0)
    model = tiny_net()
    sizes = batch_sizes_seen(model)
    default = EfficiencySample(latency_seconds=float("inf"))  # every probe, however loaded the test machine
    report = efficiency_report(model, (1, 8, 8), sample=default)
    assert len(sizes) == default.warmup + default.latency_probes * default.latency_calls + 1 \
        + 1 + default.throughput_batches
    assert report["measured"]["latency_calls"] == 60
    assert report["latency_p50"] == report["latency_p95"] == 1.0
    assert report["throughput"] == default.throughput_batch / 1.0


def test_efficiency_report_states_what_its_time_allowed() -> None:
    # Out of time at once (a loaded machine, a slow model): one probe of the 5 calls a p95 needs, no
    # warm-up, and the record says so.
    model = tiny_net()
    sizes = batch_sizes_seen(model)
    report = efficiency_report(model, (1, 8, 8), sample=EfficiencySample(latency_seconds=0.0, warmup=3))
    assert report["measured"]["latency_probes"] == 1 and report["measured"]["latency_calls"] == 5
    assert sizes.count(1) == 5 + 1  # one probe, the FLOPs pass


def test_probed_latency_reports_the_quietest_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    # Probe 1 hits a busy machine (every call 9 ms, one 50 ms); probe 2 is quiet (every call 2 ms).
    timings = iter([0.009] * 9 + [0.050] + [0.002] * 10)
    monkeypatch.setattr(efficiency_module, "_timed_forward", lambda model, x: next(timings))
    latency = probed_latency(tiny_net(), (1, 8, 8), probes=2, calls=10, warmup=0)
    assert latency == {"p50": pytest.approx(0.002), "p95": pytest.approx(0.002), "mean": pytest.approx(0.002),
                       "probes": 2, "calls": 20}


def test_probed_latency_keeps_each_probes_slow_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    # The p95 is the chosen probe's own (not the fastest calls pooled): its slow call lifts it above the median.
    timings = iter(([0.001] * 19 + [0.011]) * 2)
    monkeypatch.setattr(efficiency_module, "_timed_forward", lambda model, x: next(timings))
    latency = probed_latency(tiny_net(), (1, 8, 8), probes=2, calls=20, warmup=0)
    assert latency["p50"] == pytest.approx(0.001)
    # numpy's linear interpolation at rank 0.95 * 19 = 18.05: 5% of the way from the 19th to the 20th value
    assert latency["p95"] == pytest.approx(0.001 + 0.05 * 0.010)


def test_batch_throughput_takes_the_fastest_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    timings = iter([5.0, 0.5, 0.25, 1.0])  # untimed warm-up, then three timed passes
    monkeypatch.setattr(efficiency_module, "_timed_forward", lambda model, x: next(timings))
    assert batch_throughput(tiny_net(), (1, 8, 8), batch_size=10, batches=3) == pytest.approx(40.0)


def test_batch_throughput_and_sample_refuse_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        batch_throughput(tiny_net(), (1, 8, 8), batches=0)
    with pytest.raises(ValueError, match="latency_calls"):
        EfficiencySample(latency_calls=0)


def test_no_grad_graph_is_built() -> None:
    model = tiny_net()
    count_flops(model, (1, 8, 8))
    assert all(p.grad is None for p in model.parameters())
    assert torch.is_grad_enabled()
