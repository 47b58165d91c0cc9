"""Stage 7 in a real (tiny digits) run: deployment.json, the bundle's extra files, metrics, int8 adoption."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from tiny_workflow import run_tiny

from mlestar.config.catalog import STAGE_ORDER
from mlestar.config.schema import MlestarConfig
from mlestar.deploy import create_app, load_bundle, verify_bundle
from mlestar.stages.s7_deployment import DEFAULT_ALERT_LATENCY_S, alert_thresholds, serving_runtime
from mlestar.utils.io import read_json
from mlestar.workflow.state import RunState


def _stage_dir(runs_dir: Path, run_id: str) -> Path:
    return runs_dir / run_id / "07_deployment"


@pytest.fixture(scope="module")
def deployment(finished_run: tuple[Path, str]) -> dict[str, Any]:
    runs_dir, run_id = finished_run
    return read_json(_stage_dir(runs_dir, run_id) / "deployment.json")


def test_deployment_json_records_parity_benchmark_and_no_quantization(deployment: dict[str, Any]) -> None:
    for fmt in ("torchscript", "onnx"):
        parity = deployment["parity"][fmt]
        assert parity["passed"] and parity["top1_agreement"] == 1.0 and parity["min_top1_agreement"] == 0.98
        assert parity["max_abs_diff"] <= parity["tolerance"] == 1e-4
    assert deployment["quantization"] == {"method": "none"}
    assert set(deployment["benchmark"]) == {"torchscript", "onnx"}
    for result in deployment["benchmark"].values():
        assert 0 < result["latency_s"]["p50"] <= result["latency_s"]["p95"]  # values: test_deploy_extras
        assert set(result["throughput"]) == {"32", "64"} and min(result["throughput"].values()) > 0
    assert deployment["served"] == {"runtime": "torchscript", "precision": "fp32", "variant": "torchscript"}
    assert deployment["latency_s"] == deployment["benchmark"]["torchscript"]["latency_s"]


def test_metrics_are_the_catalogued_gateable_numbers(finished_run: tuple[Path, str],
                                                     deployment: dict[str, Any]) -> None:
    runs_dir, run_id = finished_run
    metrics = RunState.load(runs_dir / run_id).stage("deployment")["metrics"]
    served = deployment["benchmark"]["torchscript"]
    assert metrics["parity_top1_agreement"] == 1.0
    assert metrics["deploy_latency_p95"] == served["latency_s"]["p95"]
    assert metrics["deploy_throughput"] == max(served["throughput"].values())
    assert metrics["bundle_size"] == deployment["bundle_size_bytes"] > 0
    assert metrics["quantized_accuracy_drop"] is None
    assert metrics["onnx_max_abs_diff"] == deployment["parity"]["onnx"]["max_abs_diff"]


def test_bundle_extras_are_checksummed_and_describe_this_bundle(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    bundle = _stage_dir(runs_dir, run_id) / "bundle"
    manifest = verify_bundle(bundle)
    assert {"openapi.json", "benchmark.json", "alerts.yml", "requirements.txt", "reference.json"} <= set(manifest)
    bench = read_json(bundle / "benchmark.json")
    assert set(bench["runtimes"]) == {"torchscript", "onnx"} and bench["default"] == "torchscript"
    assert bench["machine"]["cpu_count"] >= 1
    requirements = (bundle / "requirements.txt").read_text()
    assert f"onnxruntime=={importlib.metadata.version('onnxruntime')}" in requirements
    rules = {r["alert"]: r for r in yaml.safe_load((bundle / "alerts.yml").read_text())["groups"][0]["rules"]}
    assert rules["MlestarLatencyP95"]["expr"].endswith(f"> {DEFAULT_ALERT_LATENCY_S:g}")  # tiny sets no constraint
    assert rules["MlestarInputDrift"]["expr"] == "mlestar_drift_score > 0.5"
    metadata = read_json(bundle / "metadata.json")
    assert metadata["serving"]["max_batch_size"] == 32 and metadata["serving"]["runtime"] == "torchscript"


def test_reference_is_stage_1s_training_statistics(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    analysis = read_json(runs_dir / run_id / "01_situation_analysis" / "analysis.json")
    reference = read_json(_stage_dir(runs_dir, run_id) / "bundle" / "reference.json")
    assert reference["channel_mean"] == pytest.approx(analysis["channel_mean"])
    train = analysis["class_counts"]["train"]
    assert reference["class_frequencies"] == pytest.approx([c / sum(train) for c in train])


def test_the_bundled_openapi_is_the_served_schema(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    bundle_dir = _stage_dir(runs_dir, run_id) / "bundle"
    served = create_app(load_bundle(bundle_dir)).openapi()
    assert read_json(bundle_dir / "openapi.json") == json.loads(json.dumps(served))


def test_alert_latency_comes_from_the_constraints_unless_set() -> None:
    assert alert_thresholds(MlestarConfig()).latency_p95_s == DEFAULT_ALERT_LATENCY_S
    constrained = MlestarConfig(constraints={"max_inference_latency": "40ms"})
    assert alert_thresholds(constrained).latency_p95_s == pytest.approx(0.04)
    explicit = MlestarConfig(constraints={"max_inference_latency": "40ms"},
                             deployment={"alerts": {"max_latency_p95": "15ms", "max_error_rate": "2%",
                                                    "max_drift_score": 0.8, "window": "10m"}})
    thresholds = alert_thresholds(explicit)
    assert (thresholds.latency_p95_s, thresholds.error_rate, thresholds.drift_score, thresholds.window_s) == \
        pytest.approx((0.015, 0.02, 0.8, 600.0))


def test_serving_runtime_prefers_config_then_int8_then_torchscript() -> None:
    assert serving_runtime("onnx", ["torchscript", "onnx"], None) == "onnx"
    assert serving_runtime(None, ["torchscript", "onnx"], "onnx") == "onnx"
    assert serving_runtime(None, ["torchscript", "onnx"], None) == "torchscript"
    assert serving_runtime(None, ["onnx"], None) == "onnx"


def test_config_refuses_quantizing_a_format_that_is_not_exported() -> None:
    with pytest.raises(ValueError, match="quantize 'onnx' quantizes the onnx export"):
        MlestarConfig(deployment={"formats": ["torchscript"], "quantize": "onnx"})
    with pytest.raises(ValueError, match="serve.runtime 'onnx' is not in deployment.formats"):
        MlestarConfig(deployment={"formats": ["torchscript"], "serve": {"runtime": "onnx"}})


def test_int8_is_decided_on_validation_and_served_when_adopted(run_copy: tuple[Path, str]) -> None:
    runs_dir, _ = run_copy
    state = run_tiny(runs_dir, deployment={"quantize": "onnx", "max_quantized_accuracy_drop": "100%",
                                           "serve": {"max_batch_size": 8}})
    assert [name for name in STAGE_ORDER if state.stage(name)["status"] == "passed"] == ["deployment"]
    folder = _stage_dir(runs_dir, state.run_id)
    record = read_json(folder / "deployment.json")
    quant = record["quantization"]
    val_size = read_json(runs_dir / state.run_id / "01_situation_analysis" / "dataset.json")["splits"]["val"]["size"]
    assert quant["method"] == "onnx" and quant["adopted"] and quant["n_images"] == val_size  # validation, not test
    assert quant["accuracy_drop"] == pytest.approx(quant["fp32_accuracy"] - quant["int8_accuracy"])
    assert record["served"] == {"runtime": "onnx", "precision": "int8", "variant": "onnx-int8"}
    assert state.stage("deployment")["metrics"]["quantized_accuracy_drop"] == quant["accuracy_drop"]
    assert set(record["benchmark"]) == {"torchscript", "onnx", "onnx-int8"}
    bundle = load_bundle(folder / "bundle")
    assert (bundle.runtime, bundle.precision) == ("onnx", "int8")
    assert "onnx-int8" in read_json(folder / "bundle" / "benchmark.json")["runtimes"]
    with TestClient(create_app(bundle)) as client:
        assert client.get("/health").json()["precision"] == "int8"
        assert client.app.state.server.settings.max_batch_size == 8  # type: ignore[attr-defined]
