"""The tiny digits workflow that runner, CLI and tracking tests share."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mlestar.config import LoadedConfig, build_config
from mlestar.workflow.runner import RunOptions, run_workflow

TINY: dict[str, Any] = {
    "project": {"name": "tiny"},
    "data": {"source": "digits", "max_per_class": 40},
    "training": {"epochs": 2, "batch_size": 32, "num_threads": 1},
    # label smoothing starts above the plan's 0.0, so no trial is the plan itself (the search's first
    # trial takes the plan's in-range values) and stage 6 always runs its before/after comparison
    # no budget share: a share of a sub-second stage 4 would make the trial count depend on machine speed
    "refinement": {"n_trials": 2, "epochs_per_trial": 1, "budget_share": None, "search_space": {
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
        "weight_decay": {"type": "float", "low": 1e-5, "high": 5e-3, "log": True},
        "label_smoothing": {"type": "float", "low": 0.05, "high": 0.2}}},
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def tiny_config(runs_dir: Path, **sections: Any) -> LoadedConfig:
    """The tiny digits config with ``sections`` merged in, writing runs under ``runs_dir``."""
    raw = merge(TINY, {"project": {"runs_dir": str(runs_dir)}})
    return LoadedConfig(config=build_config(merge(raw, sections)))


def run_tiny(runs_dir: Path, progress: Any = None, **sections: Any) -> Any:
    """Run the tiny workflow; returns the final RunState. ``progress`` gets ``(label, done, total)`` calls."""
    loaded = tiny_config(runs_dir, **sections)
    return run_workflow(loaded, _options(runs_dir, progress))


TINY_TABLE: dict[str, Any] = {
    "project": {"name": "tiny-table"},
    "data": {"source": "table", "dataset": "breast_cancer"},
    "tables": {"cv_folds": 2, "n_jobs": 1, "params": {"n_estimators": 200}},
    "refinement": {"n_trials": 4, "seeds": 2},
}


def tiny_table_config(runs_dir: Path, **sections: Any) -> LoadedConfig:
    """The tiny breast-cancer table config with ``sections`` merged in, writing runs under ``runs_dir``."""
    raw = merge(TINY_TABLE, {"project": {"runs_dir": str(runs_dir)}})
    return LoadedConfig(config=build_config(merge(raw, sections)))


def run_tiny_table(runs_dir: Path, progress: Any = None, **sections: Any) -> Any:
    """Run the tiny table workflow; returns the final RunState. ``progress`` gets ``(label, done, total)`` calls."""
    return run_workflow(tiny_table_config(runs_dir, **sections), _options(runs_dir, progress))


def _options(runs_dir: Path, progress: Any) -> RunOptions:
    """Run options writing under ``runs_dir``; the runner's own no-op progress unless one is given."""
    return RunOptions(runs_dir=runs_dir) if progress is None else RunOptions(runs_dir=runs_dir, progress=progress)
