"""Helpers the tuning tests share: unique study names, jobs without data, tune configs, ``python -m mlestar`` runs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from mlestar.tuning.job import TuneJob
from plan_helpers import sample_plan
from tiny_workflow import TINY, merge

REPO = Path(__file__).resolve().parents[2]
SPACE = {"learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True}}


def unique_study(prefix: str = "t") -> str:
    """A study name no other test uses (the PostgreSQL database is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def fake_job(storage: str, study: str, *, target: int = 3, space: dict[str, Any] | None = None,
             **extra: Any) -> TuneJob:
    """A job that trains nothing (no data): for tests of studies and storages. The plan's 0.05 is in SPACE."""
    return TuneJob(study=study, storage=storage, plan=sample_plan(epochs=1, learning_rate=0.05), space=space or SPACE,
                   target_trials=target, seed=0, data={}, preprocessing={}, split_hashes={"train": "a", "val": "b"},
                   **extra)


def write_config(folder: Path, runs_dir: Path, **refinement: Any) -> Path:
    """The tiny workflow's config (same data, so the same splits) with ``refinement`` merged in, as YAML."""
    raw = merge(TINY, {"project": {"runs_dir": str(runs_dir)}, "refinement": refinement})
    path = folder / "tune.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def mlestar(*args: str, env: dict[str, str] | None = None, timeout: float = 240,
            **popen: Any) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mlestar ARGS`` to completion (output captured)."""
    return subprocess.run([sys.executable, "-m", "mlestar", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=REPO, **popen)


def spawn(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m mlestar ARGS`` in the background, output to ``log``; ``env`` adds variables."""
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "mlestar", *args], stdout=out, stderr=subprocess.STDOUT,
                                cwd=REPO, env={**os.environ, **(env or {})})
