"""What the inspection commands print, as plain documents: one builder per command.

``mlestar status``, ``show``, ``lineage``, ``audit`` and ``models`` render
their tables from these dicts, and ``--json`` prints the same dict, so the
human and the machine output cannot disagree. Every document carries
``"schema": "mlestar.<command>/1"``; docs/cli.md lists every field with its
type and unit, and a test keeps that page and these builders in step.

Times are seconds since the epoch, durations seconds, sizes bytes; metric
values are in their catalog unit (``config/catalog.py``: fractions 0..1,
seconds, bytes, counts). Values that are not finite numbers become ``null``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mlestar.config.catalog import METRICS, STAGE_ORDER, stage_folder
from mlestar.errors import MlestarError
from mlestar.tracking.audit import read_records
from mlestar.workflow.compare import number, saved_config
from mlestar.workflow.inspect import lineage, list_runs, verify_run_audit
from mlestar.workflow.layout import AUDIT_FILE
from mlestar.workflow.state import DONE, RunState

SCHEMAS = {name: f"mlestar.{name}/1" for name in ("status", "show", "lineage", "audit", "models", "compare")}


def status_report(runs_dir: Path) -> dict[str, Any]:
    """``mlestar.status/1``: every run under ``runs_dir``, oldest first."""
    return {"schema": SCHEMAS["status"], "runs_dir": str(runs_dir),
            "runs": [_run_row(Path(runs_dir) / state.run_id, state) for state in list_runs(runs_dir)]}


def _run_row(run_dir: Path, state: RunState) -> dict[str, Any]:
    """One run in the status list; the primary metric is the one its saved config names."""
    data = state.data
    stages = (data.get("stages") or {}).values()
    created, ended = data.get("created"), data.get("ended")
    metric = primary_metric_name(run_dir)
    spec = METRICS.get(metric)
    return {"run_id": state.run_id, "project": str(data.get("project") or ""), "status": state.status,
            "created": created, "ended": ended,
            "duration_s": ended - created if created is not None and ended is not None else None,
            "stages_done": sum(s.get("status") in DONE for s in stages), "stages_total": len(stages),
            "primary_metric": metric, "primary_unit": spec.unit if spec else "number",
            "primary_value": number((data.get("metrics") or {}).get(metric))}


def primary_metric_name(run_dir: Path) -> str:
    """``task.primary_metric`` of the run's saved config (the schema resolves the domain's default)."""
    task = saved_config(run_dir).get("task") or {}
    return str(task.get("primary_metric") or "test_accuracy")


def run_domain(run_dir: Path) -> str:
    """``images`` or ``tables``, from the run's saved config (images when it cannot be read)."""
    from mlestar.config import build_config  # pydantic validation: only when a run is shown

    config = saved_config(run_dir)
    try:
        return build_config(config, base_units=True).domain if config else "images"
    except MlestarError:
        return "images"


def stage_order(run_dir: Path, names: list[str]) -> list[str]:
    """``names`` in the workflow order of the run's domain (the stage registry's); unknown names last."""
    from mlestar.workflow.stage import list_stages

    rank = {name: i for i, name in enumerate(list_stages(run_domain(run_dir)))}
    return sorted(names, key=lambda name: (rank.get(name, len(rank)), name))


def show_report(run_dir: Path) -> dict[str, Any]:
    """``mlestar.show/1``: one run's stages in workflow order, gates, remedies, failure and metrics."""
    state = RunState.load(run_dir)
    data = state.data
    stages = data.get("stages") or {}
    return {"schema": SCHEMAS["show"], "run_id": state.run_id, "project": str(data.get("project") or ""),
            "status": state.status, "domain": run_domain(run_dir), "created": data.get("created"),
            "ended": data.get("ended"), "config_hash": data.get("config_hash"),
            "stages": [_stage_row(name, stages[name]) for name in stage_order(run_dir, list(stages))],
            "gates": [_gate_row(g) for g in data.get("gates") or []],
            "adjustments": [_adjustment_row(a) for a in data.get("adjustments") or []],
            "failure": _failure_row(data.get("failure")), "metrics": metric_map(data.get("metrics") or {})}


def _stage_row(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A stage as recorded; a cached one (``skipped``) keeps the summary and metrics of the execution reused."""
    return {"name": name, "folder": stage_folder(name) if name in STAGE_ORDER else name,
            "status": str(entry.get("status")), "attempts": int(entry.get("attempts") or 0),
            "duration_s": number(entry.get("duration")), "summary": entry.get("summary"),
            "metrics": metric_map(entry.get("metrics") or {}), "cached_from": entry.get("cached_from"),
            "reason": entry.get("reason"), "error": entry.get("error")}


def _gate_row(gate: dict[str, Any]) -> dict[str, Any]:
    return {"name": gate.get("name"), "stage": gate.get("stage"), "metric": gate.get("metric"),
            "op": gate.get("op"), "threshold": number(gate.get("threshold")), "value": number(gate.get("value")),
            "passed": bool(gate.get("passed")), "attempt": gate.get("attempt"), "message": gate.get("message")}


def _adjustment_row(adj: dict[str, Any]) -> dict[str, Any]:
    return {"gate": adj.get("gate"), "remedy": adj.get("remedy"), "diagnosis": adj.get("diagnosis"),
            "evidence": adj.get("evidence"), "value": number(adj.get("value")), "return_to": adj.get("return_to"),
            "attempt": adj.get("attempt")}


def _failure_row(failure: dict[str, Any] | None) -> dict[str, Any] | None:
    """``None`` for a run that did not fail; else its message, and the gate when a gate ran out of attempts."""
    if not failure:
        return None
    return {"message": str(failure.get("message") or ""), "gate": failure.get("gate"),
            "metric": failure.get("metric"), "values": [number(v) for v in failure.get("values") or []],
            "remedies_tried": list(failure.get("remedies_tried") or []), "crashed": bool(failure.get("crashed"))}


def lineage_report(run_dir: Path, artifact: str | None = None) -> dict[str, Any]:
    """``mlestar.lineage/1``: a run's artifacts (or those whose path contains ``artifact``)."""
    report = lineage(run_dir, artifact)
    return {"schema": SCHEMAS["lineage"], "run_id": report["run_id"], "artifact_filter": artifact,
            "artifacts": report["artifacts"], "config_inputs": report["config_inputs"]}


def audit_report(run_dir: Path, *, verify: bool = False) -> dict[str, Any]:
    """``mlestar.audit/1``: the records of the audit trail, or (``verify``) the chain's verification.

    Exactly one of ``records`` and ``verification`` is ``null``.
    """
    verification = None
    records = None
    if verify:
        result = verify_run_audit(run_dir)
        verification = {"ok": result.ok, "records": result.records, "problems": list(result.problems),
                        "notes": list(result.notes)}
    else:
        records = read_records(Path(run_dir) / AUDIT_FILE)
    return {"schema": SCHEMAS["audit"], "run_id": Path(run_dir).name, "records": records,
            "verification": verification}


def models_report(*, image_size: int, channels: int, classes: int) -> dict[str, Any]:
    """``mlestar.models/1``: each registered model built at its default width for the input given."""
    from mlestar.evaluation.model_summary import summarize_all  # torch: only for this report

    rows = summarize_all(image_size=image_size, in_channels=channels, num_classes=classes)
    return {"schema": SCHEMAS["models"],
            "input": {"image_size": image_size, "channels": channels, "classes": classes},
            "models": [{"name": r.name, "width": r.width, "params": r.params, "flops": r.flops,
                        "size_bytes": r.size_bytes, "description": r.description} for r in rows]}


def metric_map(metrics: dict[str, Any]) -> dict[str, float | None]:
    """Metric name -> value in its catalog unit, sorted by name; non-numbers become ``None``."""
    return {name: number(metrics[name]) for name in sorted(metrics)}


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by ``None``, so strict JSON can hold it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
