"""Runs side by side: every metric and every config value, with the differences marked."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from mlestar.config.catalog import METRICS
from mlestar.dashboard.files import resolve_run
from mlestar.dashboard.runs import format_metric, read_config, summarize
from mlestar.errors import MlestarError
from mlestar.workflow.state import RunState

MAX_COMPARED = 8


def compare_runs(runs_dir: Path, run_ids: list[str]) -> dict[str, Any]:
    """Compare 2 to :data:`MAX_COMPARED` runs of one runs folder.

    Returns ``runs`` (list summaries, in the order asked), ``metrics`` and ``config``:
    rows with one value per run, ``differs`` when not all equal, and for metrics
    ``best`` (indices of the best values, by the metric's direction).

    Raises:
        MlestarError: for fewer than two or more than :data:`MAX_COMPARED` runs.
        RunNotFoundError: for an id that names no run.
    """
    ids = list(dict.fromkeys(run_ids))
    if not 2 <= len(ids) <= MAX_COMPARED:
        raise MlestarError(f"compare takes 2 to {MAX_COMPARED} different runs, got {len(ids)}",
                           hint="tick two or more runs in the list, then press Compare")
    folders = [resolve_run(runs_dir, run_id) for run_id in ids]
    states = [RunState.load(folder).data for folder in folders]
    now = time.time()
    return {"runs": [summarize(f, s, now).model_dump() for f, s in zip(folders, states)],
            "metrics": metric_differences([s.get("metrics") or {} for s in states]),
            "config": config_differences([flatten(read_config(f)) for f in folders])}


def metric_differences(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per metric any run has, in catalog order, unknown names last."""
    present = set().union(*metrics)
    names = [m for m in METRICS if m in present] + sorted(present - set(METRICS))
    return [_metric_row(name, [_number(m.get(name)) for m in metrics]) for name in names]


def _metric_row(name: str, values: list[float | None]) -> dict[str, Any]:
    spec = METRICS.get(name)
    unit = spec.unit if spec else "number"
    known = [v for v in values if v is not None]
    best: list[int] = []
    if spec and known and len(set(known)) > 1:
        target = max(known) if spec.higher_is_better else min(known)
        best = [i for i, v in enumerate(values) if v == target]
    return {"metric": name, "values": values, "texts": [format_metric(v, unit) for v in values],
            "differs": len({_rounded(v) for v in values}) > 1, "best": best,
            "higher_is_better": spec.higher_is_better if spec else None}


def config_differences(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per dotted config key; values as JSON text (``None`` where a run lacks the key)."""
    keys = sorted(set().union(*configs))
    rows = []
    for key in keys:
        texts = [json.dumps(c[key], sort_keys=True) if key in c else None for c in configs]
        rows.append({"key": key, "values": texts, "differs": len(set(texts)) > 1})
    return rows


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and scalars are leaves."""
    if not isinstance(tree, dict) or (prefix and not tree):
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _rounded(value: float | None) -> float | None:
    """Equal up to float noise (12 significant digits)."""
    return None if value is None else float(f"{value:.12g}")
