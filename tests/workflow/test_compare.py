"""The shared compare rows (``mlestar compare`` and the dashboard): flattening, config and metric differences."""

from __future__ import annotations

import math

import pytest

from mlestar.workflow.compare import config_differences, flatten, format_delta, metric_differences


def test_flatten_indexes_lists_of_mappings_like_the_override_paths() -> None:
    tree = {"gates": [{"metric": "val_accuracy", "threshold": 0.9}, {"metric": "model_size", "on_fail": {"n": 2}}],
            "empty": [], "mixed": [{"a": 1}, 2]}
    assert flatten(tree) == {"gates.0.metric": "val_accuracy", "gates.0.threshold": 0.9, "gates.1.metric": "model_size",
                             "gates.1.on_fail.n": 2, "empty": [], "mixed": [{"a": 1}, 2]}


def test_flatten_makes_dotted_keys_and_keeps_lists_and_empty_mappings_whole() -> None:
    tree = {"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}, "f": None}
    assert flatten(tree) == {"a.b": 1, "a.c.d": [1, 2], "e": {}, "f": None}


def test_config_rows_tell_absent_from_null() -> None:
    rows = config_differences([{"k": None, "same": 1}, {"same": 1, "x": "a"}])
    assert rows == [{"key": "k", "values": ["null", None], "differs": True},
                    {"key": "same", "values": ["1", "1"], "differs": False},
                    {"key": "x", "values": [None, '"a"'], "differs": True}]


def test_metric_rows_have_values_deltas_and_the_best_by_direction() -> None:
    rows = {r["metric"]: r for r in metric_differences([
        {"test_accuracy": 0.5, "latency_p95": 0.010, "custom": 1},
        {"test_accuracy": 0.75, "latency_p95": 0.004, "custom": float("nan")},
        {"test_accuracy": 0.5, "latency_p95": 0.010}])}
    accuracy = rows["test_accuracy"]
    assert accuracy["values"] == [0.5, 0.75, 0.5] and accuracy["deltas"] == [None, 0.25, 0.0]
    assert accuracy["best"] == [1] and accuracy["texts"] == ["50.00%", "75.00%", "50.00%"] and accuracy["differs"]
    latency = rows["latency_p95"]  # lower is better
    assert latency["best"] == [1] and latency["deltas"][1] == pytest.approx(-0.006) and latency["unit"] == "seconds"
    custom = rows["custom"]  # not in the catalog: no direction; NaN and absent are both missing
    assert custom["values"] == [1.0, None, None] and custom["best"] == [] and custom["higher_is_better"] is None
    assert list(rows) == ["test_accuracy", "latency_p95", "custom"]  # catalog order, unknown names last


def test_float_noise_is_not_a_difference() -> None:
    [row] = metric_differences([{"val_loss": 0.1 + 0.2}, {"val_loss": 0.3}])
    assert not row["differs"] and math.isclose(row["deltas"][1], 0.0, abs_tol=1e-15)


@pytest.mark.parametrize("value, unit, text", [(0.0125, "fraction", "+1.25%"), (-0.5, "seconds", "-500.0 ms"),
                                               (0.0, "count", "0"), (None, "bytes", "-")])
def test_format_delta(value: float | None, unit: str, text: str) -> None:
    assert format_delta(value, unit) == text
