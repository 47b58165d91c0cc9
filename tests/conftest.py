"""Shared fixtures: one finished tiny run reused by read-only tests, and private copies of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlestar.data.cache import CACHE_ENV
from tiny_workflow import run_tiny, run_tiny_table


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tests never touch ~/.cache: each gets its own decoded-image cache (``$MLESTAR_CACHE_DIR``)."""
    folder = tmp_path / "env-cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


ProgressCall = tuple[str, int, int]
PROGRESS_FILE = "progress.json"  # beside the shared runs folder: the (label, done, total) calls of its run


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(runs_dir, run_id) of one complete tiny run. Treat as read-only; copy it to change it."""
    runs_dir = tmp_path_factory.mktemp("shared") / "runs"
    calls: list[ProgressCall] = []
    state = run_tiny(runs_dir, progress=lambda *call: calls.append(call))
    assert state.status == "passed"
    (runs_dir.parent / PROGRESS_FILE).write_text(json.dumps(calls))
    return runs_dir, state.run_id


@pytest.fixture(scope="session")
def finished_table_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(runs_dir, run_id) of one complete tiny table run (breast cancer). Read-only, like ``finished_run``."""
    runs_dir = tmp_path_factory.mktemp("shared-table") / "runs"
    calls: list[ProgressCall] = []
    state = run_tiny_table(runs_dir, progress=lambda *call: calls.append(call))
    assert state.status == "passed"
    (runs_dir.parent / PROGRESS_FILE).write_text(json.dumps(calls))
    return runs_dir, state.run_id


def _progress(run: tuple[Path, str]) -> list[ProgressCall]:
    return [(label, done, total) for label, done, total in json.loads((run[0].parent / PROGRESS_FILE).read_text())]


@pytest.fixture
def finished_run_progress(finished_run: tuple[Path, str]) -> list[ProgressCall]:
    """Every progress call the shared tiny run made, in order."""
    return _progress(finished_run)


@pytest.fixture
def finished_table_run_progress(finished_table_run: tuple[Path, str]) -> list[ProgressCall]:
    """Every progress call the shared tiny table run made, in order."""
    return _progress(finished_table_run)


@pytest.fixture
def run_copy(finished_run: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    """A private copy of the finished run (with its lineage database) that a test may change."""
    runs_dir, run_id = finished_run
    target = tmp_path / "runs"
    shutil.copytree(runs_dir, target)
    return target, run_id
