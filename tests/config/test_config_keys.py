"""config.keys walks the schema: every key with its unit; docs/config.md documents each unit-bearing one."""

from pathlib import Path

from mlestar.config.keys import schema_keys, unit_keys

DOCS = Path(__file__).parents[2] / "docs" / "config.md"


def test_unit_keys_and_their_kinds() -> None:
    assert {k.path: k.unit for k in unit_keys()} == {
        "task.targets": "metric", "gates[].threshold": "metric",
        "constraints.max_training_time": "duration", "constraints.max_model_size": "size",
        "constraints.max_inference_latency": "latency", "constraints.max_peak_memory": "size",
        "refinement.budget_floor": "duration", "refinement.timeout": "duration",
        "refinement.heartbeat_interval": "duration",
        "refinement.compare_timeout": "duration", "deployment.min_top1_agreement": "fraction",
        "deployment.max_quantized_accuracy_drop": "fraction", "deployment.serve.max_wait": "latency",
        "deployment.serve.max_upload_size": "size", "deployment.alerts.max_error_rate": "fraction",
        "deployment.alerts.max_latency_p95": "latency", "deployment.alerts.window": "duration",
    }


def test_sections_lists_and_named_entries_are_walked() -> None:
    keys = {k.path: k for k in schema_keys()}
    assert keys["gates"].section and keys["gates[].on_fail"].section and "gates[].on_fail.max_attempts" in keys
    assert "refinement.search_space.*.when" in keys and not keys["task.targets"].section
    variants = {k.variant for k in schema_keys() if k.path == "data.path"}
    assert variants == {"images", "tables"}
    assert keys["constraints.max_model_size"].description == "fp32 weights on disk, e.g. '50MB'"


def test_docs_list_every_unit_key() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [k.path for k in unit_keys() if f"`{k.path}`" not in text]
    assert missing == [], f"document these keys in docs/config.md: {missing}"
