"""Evaluate declarative quality gates against the metrics a run has produced."""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass
from typing import Any, Callable

from mlestar.config.catalog import METRICS
from mlestar.config.schema import GateConfig
from mlestar.config.units import format_quantity

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
}


@dataclass(frozen=True)
class GateOutcome:
    """One gate check: the value seen, the verdict, and a sentence for people."""

    name: str
    stage: str
    metric: str
    op: str
    threshold: float
    value: float | None
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_gate(gate: GateConfig, metrics: dict[str, Any]) -> GateOutcome:
    """Compare ``metrics[gate.metric]`` with the threshold; a missing or NaN value fails."""
    value = metrics.get(gate.metric)
    unit = METRICS[gate.metric].unit
    threshold = float(gate.threshold)  # parsed to base units by the schema
    if value is None or (isinstance(value, float) and math.isnan(value)):
        passed = False
        message = f"{gate.name}: {gate.metric} was not produced, so the gate cannot pass"
    else:
        passed = bool(_OPS[gate.op](float(value), threshold))
        verdict = "passed" if passed else "FAILED"
        message = (f"{gate.name}: {gate.metric} = {format_quantity(float(value), unit)} "
                   f"{gate.op} {format_quantity(threshold, unit)} {verdict}")
    return GateOutcome(str(gate.name), str(gate.stage), gate.metric, gate.op, threshold,
                       None if value is None else float(value), passed, message)


def gates_for_stage(gates: list[GateConfig], stage: str) -> list[GateConfig]:
    """Gates checked right after ``stage``, in config order."""
    return [gate for gate in gates if gate.stage == stage]
