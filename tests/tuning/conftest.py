"""Fixtures for the tuning tests: storages of every kind, a PostgreSQL server, a finished tiny run."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

import postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """CI's server (MLESTAR_TEST_POSTGRES_URL), else one started here; skipped, saying why, when neither."""
    url = os.environ.get("MLESTAR_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL tests need psycopg2 (pip install psycopg2-binary)")
    folder = Path(tempfile.mkdtemp(prefix="mlestar-pg-", dir="/tmp"))
    folder.chmod(0o755)  # the postgres user must reach it
    server = postgres_server.start(folder)
    if isinstance(server, str):
        pytest.skip(f"MLESTAR_TEST_POSTGRES_URL is unset and no PostgreSQL server could be started: {server}")
    yield server.url
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[Callable[..., str]]:
    """``fresh(n, **settings)``: the URL of a new, empty schema of the test database (dropped afterwards), with
    PostgreSQL ``settings`` for its sessions. Optuna has made no tables there."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    schemas: list[str] = []

    def fresh(n: int, **settings: str) -> str:
        schemas.append(f"fresh_{n}_{uuid.uuid4().hex[:12]}")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {schemas[-1]}")
        options = " ".join(f"-c{key}={value}" for key, value in {"search_path": schemas[-1], **settings}.items())
        return make_url(postgres_url).update_query_dict({"options": options}).render_as_string(hide_password=False)

    yield fresh
    with admin.connect() as connection:
        for schema in schemas:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture(params=["sqlite", "journal", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One storage string of each kind (the PostgreSQL one skips when no server is available)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if request.param == "journal":
        return str(tmp_path / "study.journal")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def tiny_run(finished_run: tuple[Path, str]) -> Path:
    """The shared finished tiny run's folder (read-only: tune writes to its own --out folder)."""
    runs_dir, run_id = finished_run
    return runs_dir / run_id
