"""Shared fixtures: a tiny digits config and one finished run reused by read-only tests."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlestar.config import LoadedConfig, build_config
from mlestar.workflow.runner import RunOptions, run_workflow

TINY: dict[str, Any] = {
    "project": {"name": "tiny"},
    "data": {"source": "digits", "max_per_class": 40},
    "training": {"epochs": 2, "batch_size": 32, "num_threads": 1},
    "refinement": {"n_trials": 2, "epochs_per_trial": 1},
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


def run_tiny(runs_dir: Path, **sections: Any) -> Any:
    """Run the tiny workflow; returns the final RunState."""
    loaded = tiny_config(runs_dir, **sections)
    return run_workflow(loaded, RunOptions(runs_dir=runs_dir))


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(runs_dir, run_id) of one complete tiny run. Treat as read-only; copy it to change it."""
    runs_dir = tmp_path_factory.mktemp("shared") / "runs"
    state = run_tiny(runs_dir)
    assert state.status == "passed"
    return runs_dir, state.run_id


@pytest.fixture
def run_copy(finished_run: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    """A private copy of the finished run (with its lineage database) that a test may change."""
    runs_dir, run_id = finished_run
    target = tmp_path / "runs"
    shutil.copytree(runs_dir, target)
    return target, run_id
