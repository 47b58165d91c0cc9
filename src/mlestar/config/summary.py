"""A validated config in words and as a JSON record: what ``mlestar validate`` prints.

Each quantity is written by its kind's formatter in :mod:`mlestar.config.units`, so the words
parse back to the value that was read ("model size: at most 50 MB" -> ``'50 MB'`` -> 50e6).
"""

from __future__ import annotations

from typing import Any, Callable

from mlestar.config.catalog import METRICS
from mlestar.config.loader import LoadedConfig
from mlestar.config.schema import GateConfig, MlestarConfig
from mlestar.config.units import UNIT_FORMATTERS, format_duration, format_latency, format_quantity, format_size

VALIDATE_SCHEMA = "mlestar.validate/1"

# How a gate's comparison reads.
OP_WORDS = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than", "==": "exactly"}

def _size_words(size: float) -> str:
    """``50 MB (50,000,000 bytes)``: the readable form and the exact count, so MB and MiB cannot be confused."""
    return f"{format_size(size)} ({size:,.0f} bytes)"


def _latency_words(seconds: float) -> str:
    return f"{format_latency(seconds)} per sample"


# constraint key -> (what it limits, how its value reads)
_CONSTRAINTS: dict[str, tuple[str, Callable[[float], str]]] = {
    "max_training_time": ("training time", format_duration),
    "max_model_size": ("model size", _size_words),
    "max_inference_latency": ("inference latency", _latency_words),
    "max_peak_memory": ("peak memory", _size_words),
}


def metric_value_words(metric: str, value: float) -> str:
    """A value of ``metric`` in its catalog unit's words: ``90%``, ``4 h``, ``50 MB (50,000,000 bytes)``."""
    unit = METRICS[metric].unit
    if unit == "bytes":
        return _size_words(value)
    if unit == "seconds" and "latency" in metric:
        return format_latency(value)
    return UNIT_FORMATTERS[unit](value)


def constraint_lines(config: MlestarConfig) -> list[str]:
    """``"model size: at most 50 MB (50,000,000 bytes)"``, one per constraint that is set."""
    lines = []
    for key, (what, words) in _CONSTRAINTS.items():
        value = getattr(config.constraints, key)
        if value is not None:
            lines.append(f"{what}: at most {words(value)}")
    return lines


def target_lines(config: MlestarConfig) -> list[str]:
    """``"target test_accuracy: 95%"``, one per target."""
    return [f"target {metric}: {metric_value_words(metric, value)}"
            for metric, value in config.task.targets.items()]


def gate_line(gate: GateConfig) -> str:
    """``"gate after implementation: val_accuracy at least 90%, up to 3 attempts: ..."``.

    A name the user gave is quoted after ``gate``. A gate on a stage-1 metric describes the data,
    which no remedy changes: its failure ends the run (workflow.remedies diagnoses ``data_quality``).
    """
    named = f" {gate.name!r}" if gate.name != _default_gate_name(gate) else ""
    condition = f"{gate.metric} {OP_WORDS[gate.op]} {metric_value_words(gate.metric, float(gate.threshold))}"
    attempts = gate.on_fail.max_attempts
    if METRICS[gate.metric].stage == "situation_analysis":
        failure = "a failure ends the run (fix the data)"
    elif attempts == 1:
        failure = "1 attempt: a failure ends the run"
    else:
        failure = (f"up to {attempts} attempts: a failure applies a remedy and re-runs from "
                   f"{gate.on_fail.return_to or 'action_planning'}")
    return f"gate{named} after {gate.stage}: {condition}, {failure}"


def _default_gate_name(gate: GateConfig) -> str:
    """The name the schema gives a gate without one (schema.GateConfig._resolve)."""
    return f"{gate.metric} {gate.op} {format_quantity(float(gate.threshold), METRICS[gate.metric].unit)}"


def summary_lines(config: MlestarConfig) -> list[str]:
    """Constraints, targets and gates in words, in that order."""
    return [*constraint_lines(config), *target_lines(config), *(gate_line(g) for g in config.gates)]


def validate_record(loaded: LoadedConfig, stages: list[str]) -> dict[str, Any]:
    """The ``mlestar validate --json`` record (schema ``mlestar.validate/1``); quantities in base units.

    Seconds, bytes and 0..1 fractions, as the run's ``config.json`` holds them; each gate's ``unit``
    says which (docs/cli.md).
    """
    config = loaded.config
    return {
        "schema": VALIDATE_SCHEMA,
        "valid": True,
        "path": str(loaded.path) if loaded.path is not None else None,
        "config_hash": loaded.hash,
        "domain": config.domain,
        "stages": list(stages),
        "constraints": config.constraints.model_dump(mode="json"),
        "targets": dict(config.task.targets),
        "gates": [_gate_record(g) for g in config.gates],
        "warnings": list(loaded.warnings),
    }


def _gate_record(gate: GateConfig) -> dict[str, Any]:
    return {"name": gate.name, "stage": gate.stage, "metric": gate.metric, "op": gate.op,
            "threshold": float(gate.threshold), "unit": METRICS[gate.metric].unit,
            "return_to": gate.on_fail.return_to or "action_planning", "max_attempts": gate.on_fail.max_attempts,
            "text": gate_line(gate)}


def invalid_record(message: str, hint: str | None) -> dict[str, Any]:
    """The ``--json`` record of a config that does not validate (the command exits 2)."""
    return {"schema": VALIDATE_SCHEMA, "valid": False, "error": message, "hint": hint}
