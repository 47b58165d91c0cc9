"""Opening study storages: collisions are retried, locks nest and time out, and each failure names its real cause.

Only a failure to connect may send the user to the URL's host, port and
password; a race, a lock or a schema problem says what it is.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy.exc import IntegrityError

from mlestar.errors import TuningError
from mlestar.tuning import storage as storage_module
from mlestar.tuning.storage import SCHEMA_ATTEMPTS, creation_lock, is_creation_race, lock_path, open_storage

CONNECTION_HINT = "host, port"


def collision() -> IntegrityError:
    """What the loser of two processes stamping a new SQLite database raised before the lock."""
    return IntegrityError("INSERT INTO alembic_version", {}, Exception(
        "UNIQUE constraint failed: alembic_version.version_num"))


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_module.time, "sleep", lambda seconds: None)


def test_a_collision_is_retried_and_the_storage_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       no_backoff: None) -> None:
    real, calls = storage_module._rdb, []

    def collides_twice(storage: str, heartbeat: float | None) -> Any:
        calls.append(storage)
        if len(calls) <= 2:
            raise collision()
        return real(storage, heartbeat)

    monkeypatch.setattr(storage_module, "_rdb", collides_twice)
    opened = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert len(calls) == 3 and opened.get_all_studies() == []


def test_endless_collisions_end_in_a_race_message_without_the_connection_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_backoff: None) -> None:
    calls: list[str] = []

    def always(storage: str, heartbeat: float | None) -> Any:
        calls.append(storage)
        raise collision()

    monkeypatch.setattr(storage_module, "_rdb", always)
    with pytest.raises(TuningError, match="other processes kept creating them at the same moment") as info:
        open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert len(calls) == SCHEMA_ATTEMPTS
    assert "alembic_version.version_num" in info.value.message and CONNECTION_HINT not in (info.value.hint or "")


def test_a_sqlite_lock_is_reported_as_a_lock_and_retried_only_while_quick(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_backoff: None) -> None:
    from sqlalchemy.exc import OperationalError

    calls: list[str] = []

    def locked(storage: str, heartbeat: float | None) -> Any:
        calls.append(storage)
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(storage_module, "_rdb", locked)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(TuningError, match="stayed locked by another process") as info:
        open_storage(url)
    assert len(calls) == SCHEMA_ATTEMPTS and CONNECTION_HINT not in (info.value.hint or "")
    monkeypatch.setattr(storage_module, "LOCK_TIMEOUT", 0.0)  # as if SQLite had waited out its busy timeout
    with pytest.raises(TuningError, match="stayed locked"):
        open_storage(url)
    assert len(calls) == SCHEMA_ATTEMPTS + 1  # no retry after a long wait: it would only wait again


def test_only_collision_errors_count_as_races() -> None:
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import OperationalError, ProgrammingError

    wrapped = StorageInternalError("commit failed")
    wrapped.__cause__ = OperationalError("CREATE TABLE", {}, Exception("table studies already exists"))
    assert is_creation_race(collision()) and is_creation_race(wrapped)
    assert is_creation_race(ProgrammingError("CREATE TABLE", {}, Exception('relation "studies" already exists')))
    assert not is_creation_race(OperationalError("connect", {}, Exception("connection refused")))
    assert not is_creation_race(ProgrammingError("CREATE TABLE", {}, Exception("permission denied for schema")))


def test_a_storage_of_another_optuna_version_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_storage(url).get_all_studies()
    with sqlite3.connect(tmp_path / "old.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'v3.0.0.a'")  # as an older Optuna left it
    with pytest.raises(TuningError, match="made by another Optuna version.*optuna storage upgrade") as info:
        open_storage(url)
    assert CONNECTION_HINT not in (info.value.hint or "")


def test_a_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    (tmp_path / "study.db").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(TuningError, match="cannot open the SQLite file .*not a database") as info:
        open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    assert CONNECTION_HINT not in (info.value.hint or "")


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(TuningError, match="folder .*missing of the study storage .* does not exist"):
        open_storage(f"sqlite:///{tmp_path / 'missing' / 'study.db'}")


def test_a_database_that_refuses_tables_is_not_a_connection_problem(fresh_postgres: Any) -> None:
    url = fresh_postgres(0, default_transaction_read_only="on")  # as a read-only replica or a user without rights
    with pytest.raises(TuningError, match="cannot create or read the tables of the study storage .*read-only") as info:
        open_storage(url)
    assert "right to create" in (info.value.hint or "") and CONNECTION_HINT not in (info.value.hint or "")


@pytest.fixture
def short_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock held elsewhere fails in half a second, not a minute (the wait it bounds is the point here)."""
    monkeypatch.setattr(storage_module, "LOCK_TIMEOUT", 0.5)


@pytest.fixture
def file_lock_held_elsewhere(tmp_path: Path) -> Iterator[Path]:
    """A SQLite path whose lock file another process holds until the test ends."""
    db = tmp_path / "held.db"
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from filelock import FileLock; "
                               f"lock = FileLock({str(lock_path(f'sqlite:///{db}'))!r}); lock.acquire(); print('held', "
                               "flush=True); sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    yield db
    holder.communicate("", timeout=30)


def test_a_file_lock_held_too_long_is_reported_as_a_lock(file_lock_held_elsewhere: Path, short_lock: None) -> None:
    with pytest.raises(TuningError, match="another process has held the lock file .*mlestar-study-.*\\.lock") as info:
        open_storage(f"sqlite:///{file_lock_held_elsewhere}")
    assert CONNECTION_HINT not in (info.value.hint or "")


def test_an_advisory_lock_held_too_long_is_reported_as_a_lock(postgres_url: str, short_lock: None) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as other:
        other.exec_driver_sql(f"SELECT pg_advisory_lock({storage_module.PG_LOCK_KEY})")
        with pytest.raises(TuningError, match="another process has held PostgreSQL advisory lock") as info:
            open_storage(postgres_url)
    engine.dispose()
    assert CONNECTION_HINT not in (info.value.hint or "")
    open_storage(postgres_url)  # released with the other session


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgres"])
def test_the_creation_lock_nests_in_one_thread(kind: str, tmp_path: Path, request: pytest.FixtureRequest,
                                               short_lock: None) -> None:
    url = {"sqlite": f"sqlite:///{tmp_path / 'n.db'}", "journal": str(tmp_path / "n.journal")}.get(kind)
    url = url or request.getfixturevalue("postgres_url")
    with creation_lock(url), creation_lock(url):  # a second session would wait for the first: a timeout
        open_storage(url).get_all_studies()
