"""Fixtures for the dashboard tests: one runs folder with a plain run and a gated run that loops back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlestar.dashboard import create_app
from tiny_workflow import run_tiny

GATE = {"metric": "epochs_completed", "op": ">=", "threshold": 4, "on_fail": {"max_attempts": 3}}


@pytest.fixture(scope="session")
def dash_runs(finished_run: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """(runs_dir, plain run id, gated run id). The gated run fails its gate once (2 epochs), loops back, passes.

    Read-only for tests: copy it before changing anything.
    """
    source, plain = finished_run
    runs_dir = tmp_path_factory.mktemp("dashboard") / "runs"
    shutil.copytree(source, runs_dir)
    # batch 16, not the plain run's 32: otherwise the first plan equals the plain run's and stage 4's first
    # attempt is a cache hit (correctly), and the tests want two executions
    state = run_tiny(runs_dir, gates=[GATE], training={"epochs": 2, "batch_size": 16}, refinement={"enabled": False})
    assert [g["passed"] for g in state.data["gates"]] == [False, True]
    return runs_dir, plain, state.run_id


@pytest.fixture(scope="session")
def client(dash_runs: tuple[Path, str, str]) -> TestClient:
    """A TestClient over the shared runs folder (no token, any host)."""
    return TestClient(create_app(dash_runs[0]))
