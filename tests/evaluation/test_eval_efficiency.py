"""Efficiency numbers: sizes and FLOPs checked against hand counts, timings for sanity."""

from __future__ import annotations

import psutil
import pytest
import torch
from torch import nn

from mlestar.evaluation import (
    count_flops,
    efficiency_report,
    measure_latency,
    measure_throughput,
    model_size_bytes,
    num_params,
    peak_memory_bytes,
)


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
    assert set(latency) == {"p50", "p95", "mean"}
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


def test_efficiency_report() -> None:
    model = tiny_net()
    report = efficiency_report(model, (1, 8, 8), batch_size=16, latency_seconds=0.5, throughput_seconds=0.1)
    assert set(report) == {"num_params", "model_size_bytes", "flops", "latency_p50", "latency_p95",
                           "throughput", "peak_memory"}
    assert report["num_params"] == sum(p.numel() for p in model.parameters())
    assert report["flops"] == count_flops(model, (1, 8, 8))
    assert all(value > 0 for value in report.values())


def test_no_grad_graph_is_built() -> None:
    model = tiny_net()
    count_flops(model, (1, 8, 8))
    assert all(p.grad is None for p in model.parameters())
    assert torch.is_grad_enabled()
