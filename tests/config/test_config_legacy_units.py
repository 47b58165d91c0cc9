"""Bare numbers in legacy sample-project files keep their old reading, each with a warning that names it.

An mlestar config refuses the same values (tests/config/test_config_units.py); a legacy file is
translated, so ``inference_time: 0.05`` still means 50 ms, ``accuracy: 85`` 85%, ``memory: 8G`` 8 GiB.
"""

from pathlib import Path

import pytest

from mlestar.config import build_config, load_config
from mlestar.errors import ConfigError


def load_yaml(tmp_path: Path, text: str):  # noqa: ANN201  (LoadedConfig)
    path = tmp_path / "mle_star_config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def unit_warnings(loaded) -> dict[str, str]:  # noqa: ANN001
    """Legacy key path -> its warnings about units, one per line (a key may set a gate and a constraint)."""
    found: dict[str, str] = {}
    for w in loaded.warnings:
        if "the sample projects' reading" in w:
            key = w.split(": ", 1)[0]
            found[key] = f"{found[key]}\n{w}" if key in found else w
    return found


def test_sample_project_bare_numbers_keep_the_legacy_reading_and_are_named(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, """
quality_gates:
  stage_5_evaluation: {min_test_accuracy: 85, max_inference_time: 0.05, model_size_limit: 50000000}
performance_targets: {accuracy: 90, training_time: 3600, memory_usage: 8G}
""")
    cfg = loaded.config
    gates = {g.metric: g.threshold for g in cfg.gates}
    assert gates == {"test_accuracy": pytest.approx(0.85), "latency_p95": pytest.approx(0.05),
                     "model_size": 50e6}
    assert cfg.task.targets == {"test_accuracy": pytest.approx(0.9)}
    c = cfg.constraints
    assert (c.max_training_time, c.max_inference_latency, c.max_model_size, c.max_peak_memory) == (
        3600, pytest.approx(0.05), 50e6, 8 * 2**30)
    warned = unit_warnings(loaded)
    assert warned["quality_gates.stage_5_evaluation.min_test_accuracy"] == (
        "quality_gates.stage_5_evaluation.min_test_accuracy: "
        "85 has no unit mlestar accepts; read as '85%' (percent, the sample projects' reading) for "
        "gates[0].threshold; write the unit to keep this reading")
    assert "read as '0.05s' (seconds" in warned["quality_gates.stage_5_evaluation.max_inference_time"]
    assert "read as '50000000B' (bytes" in warned["quality_gates.stage_5_evaluation.model_size_limit"]
    assert "for constraints.max_inference_latency" in warned["quality_gates.stage_5_evaluation.max_inference_time"]
    assert "read as '90%' (percent" in warned["performance_targets.accuracy"]
    assert "for task.targets.test_accuracy" in warned["performance_targets.accuracy"]
    assert "read as '3600s' (seconds" in warned["performance_targets.training_time"]
    assert "'8G' has no unit mlestar accepts; read as '8GiB' (binary" in warned["performance_targets.memory_usage"]


def test_values_with_units_give_no_unit_warning(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, """
quality_gates:
  stage_5_evaluation: {min_test_accuracy: 0.85, max_inference_time: "50ms", model_size_limit: "50MB"}
performance_targets: {accuracy: "90%", training_time: "1 hour"}
""")
    assert unit_warnings(loaded) == {}


def test_a_bare_number_and_its_explicit_form_agree_without_a_conflict(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, """
performance_targets: {inference_time: 0.05, accuracy: 85}
evaluation:
  targets: {inference_time: "50ms", accuracy: "85%"}
""")
    assert not any("is already" in w for w in loaded.warnings), loaded.warnings
    assert loaded.config.constraints.max_inference_latency == pytest.approx(0.05)


def test_mlestar_sections_inside_a_legacy_file_are_read_the_legacy_way(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, """
experiment: {name: old}
constraints: {max_inference_latency: 0.02}
refinement: {timeout: 120}
gates:
  - {metric: val_accuracy, threshold: 75}
""")
    cfg = loaded.config
    assert (cfg.constraints.max_inference_latency, cfg.refinement.timeout) == (pytest.approx(0.02), 120)
    assert cfg.gates[0].threshold == pytest.approx(0.75)
    warned = unit_warnings(loaded)
    assert set(warned) == {"constraints.max_inference_latency", "refinement.timeout", "gates[0]"}


def test_tabular_sample_gates_keep_the_legacy_reading(tmp_path: Path) -> None:
    csv = tmp_path / "train.csv"
    csv.write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40)))
    loaded = load_yaml(tmp_path, f"""
project: {{name: t, type: tabular}}
data: {{raw_data_path: {csv}, target_column: y}}
quality_gates:
  stage_4_implementation: {{max_training_time: 60}}
  stage_5_evaluation: {{max_mape: 15}}
""")
    gates = {g.metric: g.threshold for g in loaded.config.gates}
    assert gates == {"training_time": 60, "test_mape": pytest.approx(0.15)}
    warned = unit_warnings(loaded)
    assert "read as '60s'" in warned["quality_gates.stage_4_implementation.max_training_time"]
    assert "read as '15%'" in warned["quality_gates.stage_5_evaluation.max_mape"]


@pytest.mark.parametrize("raw, message", [
    ({"constraints": {"max_inference_latency": 0.05}},
     "constraints.max_inference_latency: 0.05 has no unit; write '0.05ms' or '0.05s'"),
    ({"gates": [{"metric": "test_accuracy", "threshold": 85}]},
     "gates.0.threshold: 85 is ambiguous (85% or 8500%?); write '85%' or a fraction such as 0.85"),
    ({"task": {"targets": {"test_accuracy": 85}}}, "task.targets: test_accuracy: 85 is ambiguous"),
    ({"constraints": {"max_peak_memory": "8G"}},
     "constraints.max_peak_memory: '8G' is ambiguous; write 8GB (10^9 bytes) or 8GiB (2^30 bytes)"),
])
def test_the_same_values_in_an_mlestar_config_are_refused(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(raw)
    assert message in str(err.value)
