"""Shared fixtures: one finished tiny run reused by read-only tests, and private copies of it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

from mlestar.data.cache import CACHE_ENV
from mlestar.tracking.wheel import WHEEL_CACHE_ENV
from tiny_workflow import run_tiny, run_tiny_table


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Session fixtures (``finished_run`` ...) run before each test's ``private_cache``: give them a private one too.

    Without it they would write to ~/.cache/mlestar (the probe cache, the code index), and a later
    session would reuse a probe measured by an earlier one.
    """
    folder = tmp_path_factory.mktemp("session-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tests never touch ~/.cache: each gets its own decoded-image cache (``$MLESTAR_CACHE_DIR``)."""
    folder = tmp_path / "env-cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


@pytest.fixture(scope="session", autouse=True)
def shared_wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One mlestar wheel cache (``$MLESTAR_WHEEL_CACHE``) for the whole session, across xdist workers.

    Stage 7 ships mlestar as a wheel (about 3 s to build); each test's private cache would rebuild it
    for every stage-7 execution. The wheel is keyed by the source digest and built under a file lock,
    so sharing it is safe. Under xdist the workers' temp folders share one parent: one build per run.
    """
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "wheel-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(WHEEL_CACHE_ENV, str(folder))
        yield folder


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
