"""What the run page shows: the stages as a pipeline, gates with verdicts and remedies, loop-backs,
metrics, tool commands, the audit trail with its verification, and the lineage graph.

Every function here only reads the run folder (and the runs folder's ``lineage.db``)
and returns plain JSON-ready data; values are passed through as data, never as
markup, so the browser decides how to show them (as text).
"""

from __future__ import annotations

import shlex
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlestar.config.catalog import METRICS, STAGE_ORDER, stage_folder, stage_number
from mlestar.dashboard.files import file_url, is_inside
from mlestar.dashboard.runs import format_metric, summarize
from mlestar.errors import AuditError
from mlestar.tracking.audit import read_records
from mlestar.workflow.inspect import lineage, verify_run_audit
from mlestar.workflow.runner import AUDIT_FILE, LINEAGE_FILE
from mlestar.workflow.stage import create_stage
from mlestar.workflow.state import RUN_FILE, RunState

TENSORBOARD_DIR = f"{stage_folder('implementation')}/tensorboard"
STUDY_DB = f"{stage_folder('refinement')}/study.db"
_WATCHED = (RUN_FILE, f"{stage_folder('implementation')}/history.json",
            f"{stage_folder('implementation')}/checkpoints/last.pt")


@lru_cache(maxsize=1)
def stage_titles() -> dict[str, str]:
    """Stage name -> title, from the stage registry."""
    return {name: create_stage(name).title for name in STAGE_ORDER}


def catalog() -> dict[str, Any]:
    """The stages in order and every metric's unit, direction and meaning."""
    return {"stages": [{"name": n, "number": stage_number(n), "folder": stage_folder(n), "title": stage_titles()[n]}
                       for n in STAGE_ORDER],
            "metrics": {name: {"stage": spec.stage, "unit": spec.unit, "higher_is_better": spec.higher_is_better,
                               "description": spec.description} for name, spec in METRICS.items()}}


def version(run_dir: Path) -> str:
    """A token that changes whenever the run's state or its training curves change (for polling)."""
    parts = []
    for rel in _WATCHED:
        try:
            stat = (Path(run_dir) / rel).stat()
            parts.append(f"{stat.st_mtime_ns}:{stat.st_size}")
        except OSError:
            parts.append("-")
    return "/".join(parts)


def run_detail(run_dir: Path, now: float | None = None) -> dict[str, Any]:
    """Everything the run page's overview needs, from ``run.json`` and ``config.json``.

    Raises:
        TrackingError: when ``run.json`` is corrupted.
    """
    now = time.time() if now is None else now
    data = RunState.load(run_dir).data
    stages = data.get("stages") or {}
    return {"run": summarize(Path(run_dir), data, now).model_dump(), "version": version(run_dir),
            "stages": [stage_row(name, stages.get(name) or {}, now) for name in STAGE_ORDER],
            "gates": gate_rows(data), "loopbacks": loopback_rows(data), "failure": data.get("failure"),
            "metrics": metric_rows(data.get("metrics") or {}), "tools": tool_commands(Path(run_dir))}


def stage_row(name: str, entry: dict[str, Any], now: float) -> dict[str, Any]:
    """One pipeline node: state, attempts, duration (so far, when running), summary."""
    status = str(entry.get("status") or "pending")
    duration = entry.get("duration")
    if status == "running" and entry.get("started"):
        duration = now - float(entry["started"])
    return {"name": name, "number": stage_number(name), "folder": stage_folder(name),
            "title": stage_titles()[name], "status": status, "attempts": int(entry.get("attempts") or 0),
            "duration": duration, "summary": entry.get("summary"), "reason": entry.get("reason"),
            "cached_from": entry.get("cached_from"), "error": entry.get("error")}


def gate_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each gate check in order, failed ones with the remedy chosen for them.

    The n-th failed check of a gate is answered by the n-th adjustment recorded for
    that gate; a failed check without one ended the run (``exhausted``).
    """
    remedies: dict[str, list[dict[str, Any]]] = {}
    for adjustment in data.get("adjustments") or []:
        remedies.setdefault(str(adjustment.get("gate")), []).append(adjustment)
    rows = []
    for check in data.get("gates") or []:
        queue = remedies.get(str(check.get("name")), [])
        remedy = queue.pop(0) if queue and not check.get("passed") else None
        rows.append(_gate_row(check, remedy))
    return rows


def _gate_row(check: dict[str, Any], remedy: dict[str, Any] | None) -> dict[str, Any]:
    spec = METRICS.get(str(check.get("metric")))
    unit = spec.unit if spec else "number"
    return {"attempt": check.get("attempt"), "name": check.get("name"), "stage": check.get("stage"),
            "metric": check.get("metric"), "op": check.get("op"), "threshold": check.get("threshold"),
            "threshold_text": format_metric(check.get("threshold"), unit), "value": check.get("value"),
            "value_text": format_metric(check.get("value"), unit), "passed": bool(check.get("passed")),
            "message": check.get("message"), "remedy": remedy,
            "exhausted": not check.get("passed") and remedy is None}


def loopback_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each loop-back edge (``from`` -> ``to``) with the gate, remedy and diagnosis behind it."""
    adjustments = data.get("adjustments") or []
    rows = []
    for index, edge in enumerate(data.get("loopbacks") or []):
        extra = adjustments[index] if index < len(adjustments) else {}
        rows.append({"from": edge.get("from"), "to": edge.get("to") or extra.get("return_to"),
                     "gate": edge.get("gate"), "remedy": edge.get("remedy"),
                     "diagnosis": extra.get("diagnosis"), "evidence": extra.get("evidence")})
    return rows


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's metrics in catalog order (unknown names last), each with its formatted value."""
    known = [m for m in METRICS if m in metrics]
    names = known + sorted(set(metrics) - set(known))
    rows = []
    for name in names:
        spec = METRICS.get(name)
        value = metrics[name]
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        rows.append({"metric": name, "value": value, "text": format_metric(number, spec.unit if spec else "number"),
                     "stage": spec.stage if spec else None, "description": spec.description if spec else ""})
    return rows


def tool_commands(run_dir: Path) -> list[dict[str, Any]]:
    """Shell commands that open the run in TensorBoard and optuna-dashboard."""
    absolute = run_dir.resolve()
    logdir, study = absolute / TENSORBOARD_DIR, absolute / STUDY_DB
    return [{"name": "TensorBoard", "command": f"tensorboard --logdir {shlex.quote(str(logdir))}",
             "available": logdir.is_dir(), "url": "http://localhost:6006/"},
            {"name": "optuna-dashboard", "command": f"optuna-dashboard {shlex.quote('sqlite:///' + str(study))}",
             "available": study.is_file(), "url": "http://localhost:8080/"}]


def audit_view(run_dir: Path) -> dict[str, Any]:
    """The audit records in order and the verification of their hash chain."""
    check = verify_run_audit(run_dir)
    try:
        records = read_records(Path(run_dir) / AUDIT_FILE)
    except AuditError:
        records = []
    return {"verification": {"ok": check.ok, "records": check.records, "problems": check.problems},
            "records": [{"seq": r.get("seq"), "time": r.get("time"), "event": r.get("event"),
                         "stage": r.get("stage"), "data": r.get("data"), "hash": r.get("hash"),
                         "decision": r.get("event") == "decision"} for r in records]}


def lineage_view(runs_dir: Path, run_dir: Path) -> dict[str, Any]:
    """Artifacts with sha256, size, producer, consumers and a download URL (when the file is there)."""
    stages = [{"name": n, "folder": stage_folder(n), "title": stage_titles()[n]} for n in STAGE_ORDER]
    if not (Path(runs_dir) / LINEAGE_FILE).is_file():
        return {"available": False, "stages": stages, "artifacts": [], "config_inputs": {}}
    graph = lineage(run_dir)
    for artifact in graph["artifacts"]:
        present = is_inside(Path(run_dir) / artifact["path"], runs_dir)
        artifact["url"] = file_url(Path(run_dir).name, artifact["path"]) if present else None
    return {"available": True, "stages": stages, "artifacts": graph["artifacts"],
            "config_inputs": graph["config_inputs"]}
