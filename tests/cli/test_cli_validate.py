"""`mlestar validate`: limits and gates in words that parse back, `--json`, and unit errors with exit 2."""

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.config import build_config, load_config
from mlestar.config.summary import constraint_lines, gate_line, metric_value_words, summary_lines
from mlestar.config.units import parse_duration, parse_fraction, parse_latency, parse_size

runner = CliRunner()
FIXTURES = Path(__file__).parent.parent / "fixtures"

CONFIG = {
    "constraints": {"max_training_time": "4h", "max_model_size": "50MB", "max_inference_latency": "50ms",
                    "max_peak_memory": "2GiB"},
    "task": {"targets": {"test_accuracy": "95%"}},
    "gates": [
        {"metric": "val_accuracy", "threshold": "90%", "on_fail": {"return_to": "action_planning", "max_attempts": 3}},
        {"name": "small", "metric": "model_size", "op": "<=", "threshold": "8MiB", "on_fail": {"max_attempts": 1}},
        {"metric": "leakage_fraction", "op": "<=", "threshold": "1%"},
        {"metric": "latency_p95", "op": "<", "threshold": "20ms", "on_fail": {"return_to": "implementation"}},
    ],
}


def write(tmp_path: Path, raw: dict | str) -> Path:
    path = tmp_path / "mle_star_config.yaml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_constraints_and_gates_in_words() -> None:
    assert summary_lines(build_config(CONFIG)) == [
        "training time: at most 4 h",
        "model size: at most 50 MB (50,000,000 bytes)",
        "inference latency: at most 50 ms per sample",
        "peak memory: at most 2 GiB (2,147,483,648 bytes)",
        "target test_accuracy: 95%",
        "gate after implementation: val_accuracy at least 90%, up to 3 attempts: a failure applies a remedy and "
        "re-runs from action_planning",
        "gate 'small' after evaluation: model_size at most 8 MiB (8,388,608 bytes), 1 attempt: a failure ends the run",
        "gate after situation_analysis: leakage_fraction at most 1%, a failure ends the run (fix the data)",
        "gate after evaluation: latency_p95 less than 20 ms, up to 2 attempts: a failure applies a remedy and "
        "re-runs from implementation",
    ]


QUANTITY = re.compile(r"at (?:most|least) (?P<text>.+?)(?: \([0-9,]+ bytes\))?(?: per sample)?(?:,|$)")


def test_the_words_parse_back_to_the_values_read() -> None:
    config = build_config(CONFIG)
    parsers = {"training time": parse_duration, "model size": parse_size, "inference latency": parse_latency,
               "peak memory": parse_size}
    values = {"training time": config.constraints.max_training_time, "model size": config.constraints.max_model_size,
              "inference latency": config.constraints.max_inference_latency,
              "peak memory": config.constraints.max_peak_memory}
    for line in constraint_lines(config):
        what = line.split(":")[0]
        text = QUANTITY.search(line).group("text")
        assert parsers[what](text) == pytest.approx(values[what]), line
    for gate in config.gates[:2]:
        text = QUANTITY.search(gate_line(gate)).group("text")
        parse = parse_fraction if gate.metric == "val_accuracy" else parse_size
        assert parse(text) == pytest.approx(gate.threshold)


@pytest.mark.parametrize("metric, value, words", [
    ("training_time", 5400.0, "1.5 h"), ("latency_p95", 0.0125, "12.5 ms"), ("val_accuracy", 0.875, "87.5%"),
    ("epochs_completed", 4.0, "4"), ("bundle_size", 3072.0, "3 KiB (3,072 bytes)"),
    ("model_size", 1536.0, "1.536 kB (1,536 bytes)"),
])
def test_metric_values_read_in_their_unit(metric: str, value: float, words: str) -> None:
    assert metric_value_words(metric, value) == words


def test_validate_prints_the_words(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(write(tmp_path, CONFIG))])
    assert result.exit_code == 0, result.output
    assert "  model size: at most 50 MB (50,000,000 bytes)\n" in result.output
    assert "  gate after implementation: val_accuracy at least 90%, up to 3 attempts" in result.output


def test_validate_json_record(tmp_path: Path) -> None:
    path = write(tmp_path, CONFIG)
    result = runner.invoke(app, ["validate", "--json", str(path)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    loaded = load_config(path)
    assert (record["schema"], record["valid"], record["config_hash"], record["domain"]) == (
        "mlestar.validate/1", True, loaded.hash, "images")
    assert record["stages"][0] == "situation_analysis" and len(record["stages"]) == 7
    assert record["constraints"] == {"max_training_time": 14400.0, "max_model_size": 50e6,
                                     "max_inference_latency": pytest.approx(0.05), "max_peak_memory": 2.0 * 2**30}
    assert record["targets"] == {"test_accuracy": 0.95}
    first, small = record["gates"][:2]
    assert {k: first[k] for k in ("stage", "metric", "op", "threshold", "unit", "return_to", "max_attempts")} == {
        "stage": "implementation", "metric": "val_accuracy", "op": ">=", "threshold": 0.9, "unit": "fraction",
        "return_to": "action_planning", "max_attempts": 3}
    assert (small["name"], small["threshold"], small["unit"]) == ("small", 8.0 * 2**20, "bytes")
    assert record["warnings"] == []


def test_validate_json_lists_legacy_warnings() -> None:
    result = runner.invoke(app, ["validate", "--json", str(FIXTURES / "sample_project_config.yaml")])
    record = json.loads(result.output)
    assert result.exit_code == 0 and "hardware: not supported by mlestar; ignored" in record["warnings"]


def test_validate_json_of_an_invalid_config_says_why_and_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "--json", str(write(tmp_path, "constraints: {max_model_size: 50M}\n"))])
    assert result.exit_code == 2
    record = json.loads(result.output)
    assert (record["schema"], record["valid"]) == ("mlestar.validate/1", False)
    assert "constraints.max_model_size: '50M' is ambiguous; write 50MB (10^6 bytes) or 50MiB (2^20 bytes)" in \
        record["error"]


@pytest.mark.parametrize("content, message", [
    ("constraints:\n  max_inference_latency: 50\n",
     "constraints.max_inference_latency: 50 has no unit; write '50ms' or '50s'"),
    ("gates:\n  - metric: val_accuracy\n    threshold: 1.5\n",
     "gates.0.threshold: 1.5 is ambiguous (1.5% or 150%?); write '1.5%' or a fraction such as 0.015"),
    ("refinement:\n  timeout: 300\n", "refinement.timeout: 300 has no unit"),
    ("deployment:\n  serve:\n    max_upload_size: 10M\n", "write 10MB (10^6 bytes) or 10MiB (2^20 bytes)"),
])
def test_bare_numbers_exit_2_with_the_key_and_both_readings(tmp_path: Path, content: str, message: str) -> None:
    result = runner.invoke(app, ["validate", str(write(tmp_path, content))])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_init_writes_the_starter_which_validates_in_words(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    result = runner.invoke(app, ["validate", str(tmp_path / "mle_star_config.yaml")])
    assert result.exit_code == 0, result.output
    assert "  training time: at most 10 min\n" in result.output
    assert "  inference latency: at most 50 ms per sample\n" in result.output
