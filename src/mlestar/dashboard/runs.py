"""The runs list: one summary per run folder, cached, filtered, sorted and paged.

A summary is built from ``run.json`` and ``config.json`` and kept until
``run.json`` changes (its mtime or size), so listing a folder of hundreds of
runs reads only the files that changed since the last request. Folders whose
``run.json`` cannot be parsed are listed with status ``unreadable`` rather
than hiding them.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mlestar.config.catalog import METRICS
from mlestar.utils.io import read_json
from mlestar.workflow.compare import format_metric  # one formatter for the dashboard and the CLI
from mlestar.workflow.compare import saved_config as read_config
from mlestar.workflow.state import DONE, RUN_FILE, with_liveness

SORT_KEYS = ("created", "run_id", "project", "status", "duration", "primary_value", "gates_failed")


class PrimaryMetric(BaseModel):
    """The metric a run is judged by, its value and the target it should reach."""

    metric: str
    value: float | None = None
    value_text: str = Field("-", description="the value for people (units applied)")
    target: float | None = Field(None, description="from task.targets, else from a gate on the metric")
    target_text: str | None = None
    higher_is_better: bool = True
    met: bool | None = Field(None, description="value reaches target; None without both")


class RunSummary(BaseModel):
    """One row of the runs list."""

    run_id: str
    project: str
    status: str
    created: float | None = Field(None, description="start time, seconds since the epoch")
    ended: float | None = None
    duration: float | None = Field(None, description="seconds; up to now for a running run")
    primary: PrimaryMetric | None = None
    gates_passed: int = 0
    gates_failed: int = 0
    loopbacks: int = 0
    stages_done: int = 0
    stages_total: int = 0
    current_stage: str | None = Field(None, description="the stage running now, if any")
    error: str | None = Field(None, description="why run.json could not be read")


class RunList(BaseModel):
    """A page of the runs list."""

    total: int = Field(description="runs matching the filter")
    offset: int
    limit: int
    statuses: dict[str, int] = Field(description="runs per status in the whole folder")
    runs: list[RunSummary]


@dataclass(frozen=True)
class RunQuery:
    """Filter, order and page of a runs-list request.

    Attributes:
        text: case-insensitive substring of the run id or project name.
        status: exact status, or empty for all.
        sort: one of :data:`SORT_KEYS`.
        descending: largest (newest) first.
        offset, limit: the page.
    """

    text: str = ""
    status: str = ""
    sort: str = "created"
    descending: bool = True
    offset: int = 0
    limit: int = 50


def summarize(run_dir: Path, data: dict[str, Any], now: float) -> RunSummary:
    """The list row for one run from its ``run.json`` data; the id is the folder name (what URLs use).

    A 'running' run whose process is gone shows as 'interrupted' (see :func:`with_liveness`).
    """
    data = with_liveness(run_dir, data)
    stages = data.get("stages") or {}
    gates = data.get("gates") or []
    created, ended = data.get("created"), data.get("ended")
    running = data.get("status") == "running"
    end = ended if ended is not None else (now if running else None)
    return RunSummary(
        run_id=run_dir.name, project=str(data.get("project") or ""),
        status=str(data.get("status") or "unknown"), created=created, ended=ended,
        duration=(end - created) if created is not None and end is not None else None,
        primary=primary_metric(run_dir, data), gates_passed=sum(bool(g.get("passed")) for g in gates),
        gates_failed=sum(not g.get("passed") for g in gates), loopbacks=len(data.get("loopbacks") or []),
        stages_done=sum(s.get("status") in DONE for s in stages.values()), stages_total=len(stages),
        current_stage=next((n for n, s in stages.items() if s.get("status") == "running"), None))


def primary_metric(run_dir: Path, data: dict[str, Any]) -> PrimaryMetric:
    """Primary metric of a run (from its ``config.json``), its value and target."""
    config = read_config(run_dir)
    task = config.get("task") or {}
    metric = str(task.get("primary_metric") or "test_accuracy")
    spec = METRICS.get(metric)
    unit = spec.unit if spec else "number"
    higher = spec.higher_is_better if spec else True
    value = _number((data.get("metrics") or {}).get(metric))
    target = _number((task.get("targets") or {}).get(metric))
    if target is None:
        target = next((_number(g.get("threshold")) for g in config.get("gates") or []
                       if g.get("metric") == metric), None)
    met = None if value is None or target is None else (value >= target if higher else value <= target)
    return PrimaryMetric(metric=metric, value=value, value_text=format_metric(value, unit),
                         target=target, target_text=None if target is None else format_metric(target, unit),
                         higher_is_better=higher, met=met)


def _number(value: Any) -> float | None:
    """A finite float, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class RunIndex:
    """Summaries of every run folder under ``runs_dir``, rebuilt only when a ``run.json`` changes.

    Safe to call from several request threads at once.
    """

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = Path(runs_dir)
        self._cache: dict[str, tuple[tuple[int, int], RunSummary]] = {}
        self._lock = threading.Lock()

    def summaries(self, now: float | None = None) -> list[RunSummary]:
        """One summary per run folder, in no particular order; running runs' durations run up to ``now``."""
        now = time.time() if now is None else now
        found: dict[str, tuple[tuple[int, int], RunSummary]] = {}
        if self.runs_dir.is_dir():
            for entry in os.scandir(self.runs_dir):
                visible = entry.is_dir() and not entry.name.startswith(".")  # .creating-ID: not a run yet
                loaded = self._load(Path(entry.path), now) if visible else None
                if loaded is not None:
                    found[entry.name] = loaded
        with self._lock:
            self._cache = found
        return [_aged(row, now) for _, row in found.values()]

    def _load(self, folder: Path, now: float) -> tuple[tuple[int, int], RunSummary] | None:
        """``(stat key, summary)`` of one folder, from the cache when ``run.json`` is unchanged."""
        try:
            stat = (folder / RUN_FILE).stat()
        except OSError:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(folder.name)
        # a running run is checked each time: it can die without touching run.json
        if cached is not None and cached[0] == key and cached[1].status != "running":
            return cached
        try:
            data = read_json(folder / RUN_FILE)
        except (OSError, ValueError) as exc:
            data = f"run.json is unreadable: {exc}"
        if not isinstance(data, dict):
            error = data if isinstance(data, str) else "run.json does not hold an object"
            return key, RunSummary(run_id=folder.name, project="", status="unreadable", error=error)
        return key, summarize(folder, data, now)

    def query(self, query: RunQuery) -> RunList:
        """Filter, sort and page the summaries."""
        rows = self.summaries()
        statuses: dict[str, int] = {}
        for row in rows:
            statuses[row.status] = statuses.get(row.status, 0) + 1
        matching = [row for row in rows if _matches(row, query)]
        ordered = sort_rows(matching, query.sort, query.descending)
        page = ordered[query.offset:query.offset + query.limit]
        return RunList(total=len(matching), offset=query.offset, limit=query.limit, statuses=statuses, runs=page)


def _aged(row: RunSummary, now: float) -> RunSummary:
    """A running run's summary with its duration counted up to ``now``."""
    if row.status != "running" or row.created is None:
        return row
    return row.model_copy(update={"duration": now - row.created})


def _matches(row: RunSummary, query: RunQuery) -> bool:
    text = query.text.strip().lower()
    if query.status and row.status != query.status:
        return False
    return not text or text in row.run_id.lower() or text in row.project.lower()


def sort_rows(rows: list[RunSummary], key: str, descending: bool) -> list[RunSummary]:
    """Sort by ``key`` (see :data:`SORT_KEYS`); rows without a value go last either way, ties by run id."""
    def value(row: RunSummary) -> Any:
        if key == "primary_value":
            return row.primary.value if row.primary else None
        return getattr(row, key)

    present = sorted((r for r in rows if value(r) is not None), key=lambda r: (value(r), r.run_id),
                     reverse=descending)
    return present + sorted((r for r in rows if value(r) is None), key=lambda r: r.run_id)
