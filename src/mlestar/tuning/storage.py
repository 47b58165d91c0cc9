"""Where a study lives, as one string every worker can be given.

- ``sqlite:///ABS/study.db``: the default, one process at a time, in the stage folder.
- ``/ABS/study.journal`` (any path without ``://``): Optuna's JournalStorage on a
  file, for several processes on one machine (appends under a file lock).
- any SQLAlchemy URL (``postgresql+psycopg2://user:pass@host/db``): several machines.

Database storages get Optuna's heartbeat: a running trial whose worker stops
beating for three intervals is marked FAIL by the next worker that looks.
Journal files have no heartbeat; :mod:`mlestar.tuning.study` checks the
worker's process instead (one machine, so it can).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

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


def open_storage(storage: str, *, heartbeat: float | None = None) -> Any:
    """The Optuna storage behind ``storage``, connected.

    ``heartbeat`` (seconds) turns on the heartbeat of database storages; it
    is rounded up to whole seconds, as Optuna counts them.

    Raises:
        TuningError: the journal's folder is missing, the database driver is
            not installed, or the server cannot be reached; nothing is written.
    """
    if is_journal(storage):
        return _journal(Path(storage))
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    beat = {} if heartbeat is None else {"heartbeat_interval": max(1, round(heartbeat)),
                                         "grace_period": GRACE_INTERVALS * max(1, round(heartbeat))}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat is "experimental"
            return optuna.storages.RDBStorage(storage, engine_kwargs=_engine_kwargs(storage), **beat)
    except ImportError as exc:
        raise TuningError(f"the database driver for {redact(storage)} is not installed ({exc.name})",
                          hint="pip install psycopg2-binary (PostgreSQL) or the driver the URL names") from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise TuningError(f"cannot open the study storage {redact(storage)}: {reason}",
                          hint="check the URL's host, port, user, password and database, and that the server "
                               "accepts connections from this machine") from None


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
