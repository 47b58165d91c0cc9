"""Where a study lives, as one string every worker can be given.

- ``sqlite:///ABS/study.db``: the default, one process at a time, in the stage folder.
- ``/ABS/study.journal`` (any path without ``://``): Optuna's JournalStorage on a
  file, for several processes on one machine (appends under a file lock).
- any SQLAlchemy URL (``postgresql+psycopg2://user:pass@host/db``): several machines.

Database storages get Optuna's heartbeat: a running trial whose worker stops
beating for three intervals is marked FAIL by the next worker that looks.
Journal files have no heartbeat; :mod:`mlestar.tuning.study` checks the
worker's process instead (one machine, so it can).

Workers started together on a fresh storage: Optuna creates a database's tables
(and stamps ``alembic_version``) on first open, and two processes doing so at
once collide. :func:`creation_lock` lets one process at a time create the
tables or a study: an inter-process file lock named after a SQLite or journal
file, kept in the system's temp folder (a lock is not a result: it must not
land among a stage's artifacts), a PostgreSQL advisory lock on a server. Schema creation
is also retried a few times on the errors such a collision raises, which covers
other databases and processes that are not mlestar (``optuna-dashboard``).
"""

from __future__ import annotations

import hashlib
import random
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from mlestar.errors import TuningError

GRACE_INTERVALS = 3  # heartbeats a trial may miss before it counts as dead


def resolve_storage(setting: str, folder: Path) -> str:
    """The storage string for a config value: ``sqlite``/``journal`` become files in ``folder``."""
    if setting == "sqlite":
        return f"sqlite:///{(Path(folder) / 'study.db').resolve()}"
    if setting == "journal":
        return str((Path(folder) / "study.journal").resolve())
    return setting


def is_journal(storage: str) -> bool:
    """True for a journal file path, False for a database URL."""
    return "://" not in storage


def redact(storage: str) -> str:
    """The storage string with any password replaced by ``***`` (for reports and errors)."""
    if is_journal(storage):
        return storage
    try:
        from sqlalchemy.engine import make_url

        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: show only its scheme, it may hold a secret
        return storage.split("://", 1)[0] + "://..."


def dashboard_command(storage: str) -> str:
    """The ``optuna-dashboard`` command that shows the study live (journal files work too)."""
    return f"optuna-dashboard {redact(storage)}"


LOCK_TIMEOUT = 60.0  # seconds to wait for another process creating tables or a study (takes milliseconds)
SCHEMA_ATTEMPTS = 5  # opens of a database whose tables another process is creating at the same moment
PG_LOCK_KEY = 0x6D6C6573746172  # "mlestar": the advisory lock key every mlestar process uses
_THREAD = threading.local()  # .held: the storages whose server lock this thread holds
# what a collision with another process creating the same tables raises (SQLite, PostgreSQL, MySQL)
RACE_MARKS = ("already exists", "duplicate key", "unique constraint", "database is locked", "deadlock detected",
              "concurrently updated", "duplicate entry")


def open_storage(storage: str, *, heartbeat: float | None = None) -> Any:
    """The Optuna storage behind ``storage``, connected, its tables created when new.

    ``heartbeat`` (seconds) turns on the heartbeat of database storages; it
    is rounded up to whole seconds, as Optuna counts them. Safe to call from
    many processes at once on a storage no one has opened yet.

    Raises:
        TuningError: the file's folder is missing; the database driver is not
            installed; the server cannot be reached (the only case that points
            at host, port and password); another process holds the creation
            lock past :data:`LOCK_TIMEOUT`; the tables cannot be created or
            were made by another Optuna version. Nothing is written then.
    """
    if is_journal(storage):
        return _journal(Path(storage))
    with creation_lock(storage):  # one process creates the tables; the others then find them
        return _database(storage, heartbeat)


@contextmanager
def creation_lock(storage: str) -> Iterator[None]:
    """Hold the lock under which mlestar processes create a storage's tables or a study in it.

    A file lock beside a SQLite or journal file, a PostgreSQL advisory lock held
    by a connection of its own, and no lock for other databases. Reentrant in a
    thread, so a holder may open the storage again. A process that dies holding
    it releases it (the kernel closes its file; the server ends its session).

    Raises:
        TuningError: the file's folder is missing or not writable, the server
            cannot be reached, or the lock is held past :data:`LOCK_TIMEOUT`.
    """
    path = lock_path(storage)
    if path is not None:
        with _file_lock(path, storage):
            yield
    elif storage.startswith("sqlite"):  # an in-memory database: one process only
        yield
    elif storage in _held_server_locks():
        yield  # this thread holds it already: a second session would wait for the first
    else:
        with _server_lock(storage):
            _held_server_locks().add(storage)
            try:
                yield
            finally:
                _held_server_locks().discard(storage)


def _held_server_locks() -> set[str]:
    if not hasattr(_THREAD, "held"):
        _THREAD.held = set()
    return _THREAD.held


def lock_path(storage: str) -> Path | None:
    """The creation lock of a journal or SQLite file; None for servers and in-memory SQLite.

    In the temp folder, named by a hash of the file's absolute path, so every
    process on this machine that opens the same file takes the same lock.
    """
    if is_journal(storage):
        database = storage
    elif storage.startswith("sqlite"):
        database = _url(storage).database or ""
        if not database or database == ":memory:":
            return None
    else:
        return None
    key = hashlib.sha256(str(Path(database).resolve()).encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"mlestar-study-{key}.lock"


@contextmanager
def _file_lock(path: Path, storage: str) -> Iterator[None]:
    from filelock import FileLock, Timeout

    folder = Path(_url(storage).database or "").parent if storage.startswith("sqlite") else Path(storage).parent
    if not folder.is_dir():
        raise TuningError(f"the folder {folder} of the study storage {redact(storage)} does not exist",
                          hint="create the folder, or give --storage a file in an existing folder")
    # singleton: one lock object per file in this process, so taking it again nests instead of waiting on itself;
    # a waiter looks every 10 ms (the holder needs a few hundred at most, so handovers stay quick)
    lock = FileLock(str(path), is_singleton=True, mode=0o666)  # 0o666: other users' workers share it
    try:
        lock.acquire(timeout=LOCK_TIMEOUT, poll_interval=0.01)
    except Timeout:
        raise _lock_timeout(storage, f"the lock file {path}") from None
    except OSError as exc:
        raise TuningError(f"cannot create the lock file {path} for the study storage {redact(storage)}: "
                          f"{exc.strerror}", hint=f"let this user write to {path.parent}") from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _server_lock(storage: str) -> Iterator[None]:
    """Connect (the one place a connection failure is reported as such); on PostgreSQL, take the advisory lock."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    engine = _engine(storage, poolclass=NullPool)  # NullPool: closing the connection ends the session and its lock
    try:
        try:
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            raise _unreachable(storage, exc) from None
        with connection:
            if engine.dialect.name == "postgresql":
                _advisory_lock(connection, storage)
            yield
    finally:
        engine.dispose()


def _advisory_lock(connection: Any, storage: str) -> None:
    """Wait for PostgreSQL's session advisory lock; closing ``connection`` releases it."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        connection.exec_driver_sql(f"SET lock_timeout = '{int(LOCK_TIMEOUT * 1000)}ms'")  # bounds the wait below
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PG_LOCK_KEY})
    except SQLAlchemyError as exc:
        if "lock timeout" in _reason(exc):
            raise _lock_timeout(storage, f"PostgreSQL advisory lock {PG_LOCK_KEY}") from None
        raise _unreachable(storage, exc) from None  # the server dropped the connection just made


def _database(storage: str, heartbeat: float | None) -> Any:
    """Optuna's RDBStorage, retried while another process is creating the same tables.

    A collision fails at once, so it is retried (at most SCHEMA_ATTEMPTS opens
    in all); a lock that SQLite waited on for its whole busy timeout is not.
    """
    started = time.monotonic()
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            return _rdb(storage, heartbeat)
        except Exception as exc:
            error = _open_error(storage, exc)
            if error is None:  # not a storage problem: a bug, keep its traceback
                raise
            if attempt == SCHEMA_ATTEMPTS or not is_creation_race(exc) or time.monotonic() - started > LOCK_TIMEOUT:
                raise error from None
            time.sleep(random.uniform(0.05, 0.2) * attempt)  # spread the colliding processes apart
    raise AssertionError("unreachable: the last attempt returns or raises")


def _rdb(storage: str, heartbeat: float | None) -> Any:
    import optuna

    beat = {} if heartbeat is None else {"heartbeat_interval": max(1, round(heartbeat)),
                                         "grace_period": GRACE_INTERVALS * max(1, round(heartbeat))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat is "experimental"
        return optuna.storages.RDBStorage(storage, engine_kwargs=_engine_kwargs(storage), **beat)


def is_creation_race(exc: BaseException) -> bool:
    """True for the errors two processes creating the same tables at once raise (worth one more try)."""
    from sqlalchemy.exc import IntegrityError

    cause = _cause(exc)
    return isinstance(cause, IntegrityError) or any(mark in _reason(cause).lower() for mark in RACE_MARKS)


def _open_error(storage: str, exc: BaseException) -> TuningError | None:
    """The user-facing error for a failure to open a database storage; None for a bug."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    name, reason = redact(storage), _reason(exc)
    if isinstance(exc, (ImportError, ArgumentError)):
        return _bad_url(storage, exc)
    if isinstance(exc, RuntimeError) and "compatible" in reason:  # Optuna's check of the schema version
        return TuningError(f"the study storage {name} was made by another Optuna version: {reason}",
                           hint="back the database up and follow Optuna's advice above, or give --storage a "
                                "new database")
    if not isinstance(exc, (SQLAlchemyError, StorageInternalError)):
        return None
    if getattr(_cause(exc), "connection_invalidated", False):  # SQLAlchemy's dialect saw the connection drop
        return _unreachable(storage, exc)
    if "database is locked" in reason:
        return TuningError(f"the SQLite file of the study storage {name} stayed locked by another process",
                           hint="SQLite lets one process write at a time and a stuck one may hold it (fuser FILE "
                                "shows which); for many workers use a journal file or PostgreSQL")
    if is_creation_race(exc):
        return TuningError(f"the tables of the study storage {name} could not be created: other processes kept "
                           f"creating them at the same moment ({reason})",
                           hint="start the workers again; or create the storage with one process first "
                                "(mlestar tune CONFIG --run RUN --prepare), then start the workers")
    if storage.startswith("sqlite"):
        return TuningError(f"cannot open the SQLite file of the study storage {name}: {reason}",
                           hint="give --storage a SQLite file (or a new name) in a folder this user may write")
    return TuningError(f"cannot create or read the tables of the study storage {name}: {reason}",
                       hint="the database user needs the right to create and write tables there (GRANT CREATE "
                            "ON SCHEMA), or give --storage a database mlestar may write")


def _bad_url(storage: str, exc: BaseException) -> TuningError:
    if isinstance(exc, ImportError):
        return TuningError(f"the database driver for {redact(storage)} is not installed ({exc.name})",
                           hint="pip install psycopg2-binary (PostgreSQL) or the driver the URL names")
    return TuningError(f"the study storage {redact(storage)} is not a database URL: {_reason(exc)}",
                       hint="write it as dialect+driver://user:password@host:port/database, or give a journal "
                            "file path")


def _unreachable(storage: str, exc: BaseException) -> TuningError:
    """A failure to connect: the one error whose fix is in the URL's host, port, user or password."""
    return TuningError(f"cannot open the study storage {redact(storage)}: {_reason(exc)}",
                       hint="check the URL's host, port, user, password and database, and that the server "
                            "accepts connections from this machine")


def _lock_timeout(storage: str, lock: str) -> TuningError:
    return TuningError(f"another process has held {lock} of the study storage {redact(storage)} for "
                       f"{LOCK_TIMEOUT:.0f} s while creating its tables or a study",
                       hint="a stuck mlestar process may hold it: stop it (ps -ef | grep mlestar), then start "
                            "this one again")


def _cause(exc: BaseException) -> BaseException:
    """The SQLAlchemy error behind Optuna's StorageInternalError (which wraps the one that matters)."""
    from optuna.exceptions import StorageInternalError

    return exc.__cause__ if isinstance(exc, StorageInternalError) and exc.__cause__ is not None else exc


def _reason(exc: BaseException) -> str:
    """The first line of the driver's own message, without SQLAlchemy's decoration."""
    cause = _cause(exc)
    text = str(getattr(cause, "orig", None) or cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def _url(storage: str) -> Any:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(storage)
    except ArgumentError as exc:
        raise _bad_url(storage, exc) from None


def _engine(storage: str, **options: Any) -> Any:
    """A SQLAlchemy engine for ``storage`` with mlestar's connection settings; URL and driver errors explained."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError

    try:
        return sqlalchemy.create_engine(storage, **_engine_kwargs(storage), **options)
    except (ImportError, ArgumentError) as exc:
        raise _bad_url(storage, exc) from None


def _journal(path: Path) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if not path.parent.is_dir():
        raise TuningError(f"the journal file's folder {path.parent} does not exist",
                          hint="give --storage a path in an existing folder, or a database URL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return JournalStorage(JournalFileBackend(str(path)))


def _engine_kwargs(storage: str) -> dict[str, Any]:
    """Fail fast on an unreachable server; let SQLite writers wait for each other instead of erroring."""
    if storage.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    if storage.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    return {"pool_pre_ping": True}
