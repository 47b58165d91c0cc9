"""The bundle's operational files (alert rules, requirements) and the runtime benchmark."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pytest
import yaml

from mlestar.deploy import benchmark
from mlestar.deploy.benchmark import benchmark_runner, best_throughput, latency, machine, throughput, tile
from mlestar.deploy.extras import AlertThresholds, render_alerts, serving_pins
from mlestar.deploy.metrics import ERROR_KINDS

THRESHOLDS = AlertThresholds(drift_score=0.7, latency_p95_s=0.04, error_rate=0.02, window_s=600)


def _rules(text: str) -> dict[str, dict[str, object]]:
    (group,) = yaml.safe_load(text)["groups"]
    return {rule["alert"]: rule for rule in group["rules"]}


def test_alert_rules_carry_the_thresholds_and_window() -> None:
    rules = _rules(render_alerts("airbench_xs", "run-7", THRESHOLDS))
    assert set(rules) == {"MlestarInputDrift", "MlestarLatencyP95", "MlestarErrorRate"}
    assert rules["MlestarInputDrift"]["expr"] == "mlestar_drift_score > 0.7"
    latency_expr = str(rules["MlestarLatencyP95"]["expr"])
    assert latency_expr.startswith("histogram_quantile(0.95, sum by (le) (rate(mlestar_request_latency_seconds_bucket")
    assert '{route="/predict"}[600s]' in latency_expr and latency_expr.endswith("> 0.04")
    error_expr = str(rules["MlestarErrorRate"]["expr"])
    assert 'status=~"[45].."' in error_expr and error_expr.endswith("> 0.02")
    for rule in rules.values():
        assert rule["for"] == "600s"
        assert rule["labels"] == {"severity": "warning", "model": "airbench_xs", "version": "run-7"}
        assert rule["annotations"]["summary"]  # type: ignore[index]


def test_alert_expressions_name_only_series_the_server_exports() -> None:
    text = render_alerts("m", "v", THRESHOLDS)
    for series in ("mlestar_drift_score", "mlestar_request_latency_seconds_bucket", "mlestar_requests_total"):
        assert series in text
    assert "mlestar_errors_total" in text and len(ERROR_KINDS) == len(set(ERROR_KINDS))


def test_serving_pins_are_exact_for_the_numbers_and_add_the_runtime() -> None:
    with_onnx = {pin.distribution: pin.exact for pin in serving_pins(["torchscript", "onnx"])}
    assert all(with_onnx[name] for name in ("torch", "numpy", "pillow", "onnxruntime"))
    assert not any(with_onnx[name] for name in ("fastapi", "uvicorn", "prometheus-client", "python-multipart"))
    assert "onnxruntime" not in {pin.distribution for pin in serving_pins(["torchscript"])}
    assert "mlestar" not in with_onnx  # shipped as a wheel, not pinned from an index


def test_tile_repeats_images_to_the_batch_size() -> None:
    images = np.arange(3, dtype=np.float32).reshape(3, 1, 1, 1)
    assert tile(images, 7)[:, 0, 0, 0].tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert tile(images, 2).shape == (2, 1, 1, 1)


class FakeClock:
    """Stands in for the ``time`` module of mlestar.deploy.benchmark: time passes only inside the fake model.

    So the measurements are exact numbers, whatever this machine's speed or load.
    """

    def __init__(self) -> None:
        self.now, self.calls = 0.0, 0

    def perf_counter(self) -> float:
        return self.now

    def model(self, durations: Iterable[float]) -> benchmark.Runner:
        """A runner whose successive calls take ``durations`` seconds of fake time."""
        steps = iter(durations)

        def run(batch: np.ndarray) -> np.ndarray:
            self.now += next(steps)
            self.calls += 1
            return np.zeros((len(batch), 2), np.float32)

        return run


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(benchmark, "time", fake)
    return fake


def test_latency_times_each_call_after_an_untimed_warm_up(clock: FakeClock) -> None:
    # a 1 s first call, then calls of 1/256 ... 10/256 s (exact in binary)
    run = clock.model([1.0] + [k / 256 for k in range(1, 11)])
    timed = latency(run, np.zeros((1, 1, 2, 2), np.float32), repeats=10)
    assert timed == {"p50": pytest.approx(5.5 / 256), "p95": pytest.approx(9.55 / 256)}  # numpy's linear percentiles
    assert clock.calls == 11


def test_throughput_is_images_over_the_time_of_the_timed_calls(clock: FakeClock) -> None:
    batch = np.zeros((32, 1, 2, 2), np.float32)
    # warm-up 1 s (not counted), then 1/256 s a call: 13 calls cross the 0.05 s budget (12/256 < 0.05 <= 13/256)
    rate = throughput(clock.model([1.0] + [1 / 256] * 100), batch, budget_s=0.05)
    assert rate == pytest.approx(32 * 256) and clock.calls == 1 + 13


def test_throughput_times_at_least_three_calls(clock: FakeClock) -> None:
    rate = throughput(clock.model([1.0, 0.5, 0.25, 0.25, 99.0]), np.zeros((4, 1, 2, 2), np.float32), budget_s=0.0)
    assert rate == pytest.approx(3 * 4 / 1.0) and clock.calls == 4


def test_benchmark_runner_reports_both_batch_sizes() -> None:
    calls: list[int] = []

    def counting(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return np.zeros((len(batch), 2), np.float32)

    result = benchmark_runner(counting, np.zeros((5, 1, 2, 2), np.float32), repeats=4, budget_s=0.01)
    assert set(result) == {"latency_s", "throughput"} and set(result["throughput"]) == {"32", "64"}
    assert calls.count(1) == 5 and {32, 64} <= set(calls)  # one warm-up + 4 timed calls at batch 1
    assert best_throughput(result) == max(result["throughput"].values()) > 0
    assert best_throughput({}) is None


def test_machine_names_the_cpu_and_threads() -> None:
    info = machine()
    assert info["cpu_count"] >= 1 and info["torch_threads"] >= 1 and info["cpu"]


@pytest.mark.parametrize("window", [0.4, 59.6])
def test_short_windows_round_to_whole_seconds(window: float) -> None:
    rules = _rules(render_alerts("m", "v", AlertThresholds(0.5, 0.1, 0.05, window)))
    assert rules["MlestarInputDrift"]["for"] == f"{max(1, round(window))}s"
