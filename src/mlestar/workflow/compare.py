"""Runs side by side: config differences (flattened dotted keys) and metric differences.

The one implementation behind ``mlestar compare`` and the dashboard's compare
view. Config rows are like ``dvc params diff`` (one row per dotted key, the
value in each run); metric rows like ``dvc metrics diff`` (the value in each
run and its change against the first run).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mlestar.config.catalog import METRICS
from mlestar.config.units import format_quantity
from mlestar.errors import MlestarError
from mlestar.utils.io import read_json
from mlestar.workflow.layout import CONFIG_FILE
from mlestar.workflow.state import RunState

SCHEMA = "mlestar.compare/1"


def compare_runs(run_dirs: list[Path], *, all_rows: bool = False) -> dict[str, Any]:
    """The ``mlestar.compare/1`` document for two or more run folders, in the order given.

    Args:
        run_dirs: folders holding ``run.json`` (the first is the base of every delta).
        all_rows: keep config keys and metrics that are equal in every run, too.

    Raises:
        MlestarError: for fewer than two different runs.
        RunNotFoundError: for a folder without ``run.json``.
    """
    folders = list(dict.fromkeys(Path(d) for d in run_dirs))
    if len(folders) < 2:
        raise MlestarError(f"compare needs at least two different runs, got {len(folders)}",
                           hint="name two or more runs: mlestar compare RUN_A RUN_B")
    states = [RunState.load(folder) for folder in folders]
    metrics = metric_differences([s.data.get("metrics") or {} for s in states])
    config = config_differences([flatten(saved_config(folder)) for folder in folders])
    return {"schema": SCHEMA, "all": all_rows,
            "runs": [{"run_id": s.run_id, "project": str(s.data.get("project") or ""), "status": s.status}
                     for s in states],
            "config": [row for row in config if all_rows or row["differs"]],
            "metrics": [row for row in metrics if all_rows or row["differs"]],
            "config_keys": len(config), "metric_names": len(metrics)}


def saved_config(run_dir: Path) -> dict[str, Any]:
    """A run's ``config.json`` as the runner saved it; ``{}`` when missing or unreadable."""
    try:
        config = read_json(Path(run_dir) / CONFIG_FILE)
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def metric_differences(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per metric any run has, in catalog order, unknown names last.

    Each row: ``metric``, ``unit``, ``values`` (a finite number or ``None`` per
    run), ``texts`` (for people), ``deltas`` (value minus the first run's value;
    ``None`` for the first run or where either is missing), ``differs``,
    ``best`` (indices of the best values by the metric's direction; empty when
    all are equal or the direction is unknown) and ``higher_is_better``.
    """
    present = set().union(*metrics)
    names = [m for m in METRICS if m in present] + sorted(present - set(METRICS))
    return [_metric_row(name, [number(m.get(name)) for m in metrics]) for name in names]


def _metric_row(name: str, values: list[float | None]) -> dict[str, Any]:
    spec = METRICS.get(name)
    unit = spec.unit if spec else "number"
    known = [v for v in values if v is not None]
    best: list[int] = []
    if spec and known and len(set(known)) > 1:
        target = max(known) if spec.higher_is_better else min(known)
        best = [i for i, v in enumerate(values) if v == target]
    base = values[0]
    deltas = [None if i == 0 or v is None or base is None else v - base for i, v in enumerate(values)]
    return {"metric": name, "unit": unit, "values": values, "texts": [format_metric(v, unit) for v in values],
            "deltas": deltas, "differs": len({_rounded(v) for v in values}) > 1, "best": best,
            "higher_is_better": spec.higher_is_better if spec else None}


def config_differences(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per dotted config key, sorted: ``key``, ``values`` and ``differs``.

    A value is the run's value as JSON text (``json.loads`` gives it back), or
    ``None`` where that run's config lacks the key, so "absent" and ``null``
    stay distinguishable.
    """
    keys = sorted(set().union(*configs))
    rows = []
    for key in keys:
        texts = [json.dumps(c[key], sort_keys=True) if key in c else None for c in configs]
        rows.append({"key": key, "values": texts, "differs": len(set(texts)) > 1})
    return rows


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; a list of mappings is indexed (``gates.0.threshold``,
    the path ``-S`` takes), so one changed gate is one changed key; other lists, scalars and
    empty mappings are leaves."""
    if _is_record_list(tree) and prefix:
        tree = {str(index): item for index, item in enumerate(tree)}
    if not isinstance(tree, dict) or (prefix and not tree):
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _is_record_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def format_metric(value: float | None, unit: str) -> str:
    """A value for people, ``-`` when absent or not a number."""
    if value is None or math.isnan(value):
        return "-"
    return format_quantity(value, unit)


def format_delta(value: float | None, unit: str) -> str:
    """A signed change for people (``+1.25%`` for fractions: percentage points), ``-`` when absent."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    sign = "+" if value > 0 else "-"
    return sign + format_metric(abs(value), unit)


def number(value: Any) -> float | None:
    """A finite float, or ``None`` (booleans, text, NaN and infinities are not metric values)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _rounded(value: float | None) -> float | None:
    """Equal up to float noise (12 significant digits)."""
    return None if value is None else float(f"{value:.12g}")
