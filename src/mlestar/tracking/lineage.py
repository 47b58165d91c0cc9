"""The lineage database: runs, stage executions, artifacts and what consumed them.

One SQLite file (``<runs_dir>/lineage.db``) serves every run in that folder,
so the cache can find an earlier execution of a stage with the same
fingerprint, and ``mlestar lineage`` can answer "where did this file come
from and what used it". WAL mode lets a dashboard read while a run writes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mlestar.errors import ResourceError, TrackingError, from_os_error
from mlestar.utils import faults

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, project TEXT, config_hash TEXT, status TEXT,
    started_at REAL, ended_at REAL, config_path TEXT
);
CREATE TABLE IF NOT EXISTS stage_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, stage TEXT, attempt INTEGER,
    status TEXT, fingerprint TEXT, started_at REAL, ended_at REAL,
    cached_from TEXT, reason TEXT, metrics TEXT
);
CREATE INDEX IF NOT EXISTS stage_runs_fp ON stage_runs(fingerprint, status);
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, stage_run_id INTEGER, run_id TEXT, stage TEXT,
    path TEXT, sha256 TEXT, size INTEGER, created_at REAL, mtime_ns INTEGER
);
CREATE INDEX IF NOT EXISTS artifacts_run ON artifacts(run_id, path);
CREATE TABLE IF NOT EXISTS consumed (
    stage_run_id INTEGER, kind TEXT, ref TEXT, sha256 TEXT
);
"""


@dataclass(frozen=True)
class ArtifactRecord:
    """One stored file: ``path`` is relative to the run folder."""

    run_id: str
    stage: str
    path: str
    sha256: str
    size: int
    mtime_ns: int | None = None  # when hashed; size + mtime unchanged means the hash still holds


@dataclass(frozen=True)
class StageRunRecord:
    """One execution (or cache hit) of a stage in a run."""

    id: int
    run_id: str
    stage: str
    attempt: int
    status: str
    fingerprint: str
    started_at: float
    ended_at: float | None
    cached_from: str | None
    reason: str | None
    metrics: dict[str, Any]


class LineageDB:
    """Thin, typed access to the lineage database. Every write is one transaction.

    Errors from SQLite become :class:`TrackingError` (a corrupt file: move it
    aside) or :class:`ResourceError` (disk full, read-only, locked by another
    process), each naming the file and the real cause.
    """

    lock_timeout_s: float = 30.0  # how long a writer waits for another process's transaction

    def __init__(self, path: Path, *, writer: bool = True) -> None:
        """Open (creating if needed) the database at ``path``.

        ``writer=False`` is for readers (``mlestar lineage``, the dashboard): the
        file is left exactly as it is unless an older mlestar wrote it and a
        column must be added first.
        """
        self.path = Path(path)
        if not writer and self.path.exists() and not self._needs_migration():
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise from_os_error(exc, "cannot create the runs folder") from None
        with self._connect("open") as conn:
            conn.executescript(_SCHEMA)
            _migrate(conn)
            if writer:
                # write once now (the same value back): a read-only or locked database fails
                # here, before any run folder exists, not halfway through a run
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                conn.execute(f"PRAGMA user_version = {int(version)}")

    def _needs_migration(self) -> bool:
        with self._read() as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(artifacts)")}
        return "mtime_ns" not in columns

    @contextmanager
    def _connect(self, op: str, stage: str | None = None) -> Iterator[sqlite3.Connection]:
        """One transaction, committed on exit; fault points on both sides of the commit."""
        label = f"lineage:{op}:{stage or '-'}"
        faults.point(f"{label}:before", self.path)
        try:
            conn = sqlite3.connect(self.path, timeout=self.lock_timeout_s)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.row_factory = sqlite3.Row
                with conn:
                    yield conn
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, self.path) from None
        faults.point(f"{label}:after", self.path)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read-only use of the database (no fault points: nothing changes)."""
        try:
            conn = sqlite3.connect(self.path, timeout=self.lock_timeout_s)
            try:
                conn.row_factory = sqlite3.Row
                yield conn
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, self.path) from None

    # runs -----------------------------------------------------------------
    def upsert_run(self, run_id: str, *, project: str, config_hash: str, status: str,
                   started_at: float, config_path: str | None, ended_at: float | None = None) -> None:
        """Insert a run or update its status and end time."""
        with self._connect("upsert_run") as conn:
            conn.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET "
                "status=excluded.status, ended_at=excluded.ended_at",
                (run_id, project, config_hash, status, started_at, ended_at, config_path),
            )

    # stage runs -----------------------------------------------------------
    def start_stage(self, run_id: str, stage: str, attempt: int, fingerprint: str) -> int:
        """Record a stage starting; returns its id for :meth:`complete_stage`."""
        with self._connect("start_stage", stage) as conn:
            cur = conn.execute(
                "INSERT INTO stage_runs (run_id, stage, attempt, status, fingerprint, started_at) "
                "VALUES (?,?,?,?,?,?)", (run_id, stage, attempt, "running", fingerprint, time.time()))
            return int(cur.lastrowid or 0)

    def complete_stage(self, stage_run_id: int, *, stage: str, status: str, metrics: dict[str, Any],
                       artifacts: list[ArtifactRecord] = (),  # type: ignore[assignment]
                       consumed: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
                       reason: str | None = None, cached_from: str | None = None) -> None:
        """Close a stage execution with its outcome, files and inputs, in one transaction.

        One transaction means a crash leaves either a running execution with no
        files recorded or a finished one with all of them: never a mix.
        """
        now = time.time()
        with self._connect("complete_stage", stage) as conn:
            conn.executemany(
                "INSERT INTO artifacts (stage_run_id, run_id, stage, path, sha256, size, created_at, mtime_ns) "
                "VALUES (?,?,?,?,?,?,?,?)",
                [(stage_run_id, r.run_id, r.stage, r.path, r.sha256, r.size, now, r.mtime_ns) for r in artifacts])
            conn.executemany("INSERT INTO consumed VALUES (?,?,?,?)",
                             [(stage_run_id, kind, ref, sha) for kind, ref, sha in consumed])
            conn.execute(
                "UPDATE stage_runs SET status=?, ended_at=?, metrics=?, reason=?, cached_from=? WHERE id=?",
                (status, now, json.dumps(metrics, default=float), reason, cached_from, stage_run_id))

    def unconfirmed_stages(self, run_id: str, unfinished: dict[str, int]) -> list[StageRunRecord]:
        """Executions of a run that its own state never saw end.

        Those still 'running', and those that finished (passed or cached) for a
        stage that ``run.json`` still counts as unfinished in the same attempt
        (``unfinished``: stage -> current attempt): the process stopped between
        the two writes.
        """
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM stage_runs WHERE run_id=? AND status IN ('running','passed','cached') "
                                "ORDER BY id", (run_id,)).fetchall()
        records = [_stage_record(row) for row in rows]
        return [r for r in records if r.status == "running"
                or (r.stage in unfinished and r.attempt == unfinished[r.stage])]

    def close_interrupted(self, run_id: str, unfinished: dict[str, int],
                          files: dict[int, list[ArtifactRecord]]) -> int:
        """Mark :meth:`unconfirmed_stages` 'interrupted'; record the files a 'running' one left behind.

        Called when a run resumes: the process that ran them is gone. Returns
        how many executions were closed.
        """
        records = self.unconfirmed_stages(run_id, unfinished)
        now = time.time()
        with self._connect("close_interrupted") as conn:
            for record in records:
                left = files.get(record.id, []) if record.status == "running" else []
                conn.executemany(
                    "INSERT INTO artifacts (stage_run_id, run_id, stage, path, sha256, size, created_at, mtime_ns) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    [(record.id, r.run_id, r.stage, r.path, r.sha256, r.size, now, r.mtime_ns) for r in left])
                conn.execute("UPDATE stage_runs SET status='interrupted', ended_at=?, reason=? WHERE id=?",
                             (now, "the process running it stopped before the run recorded its end", record.id))
        return len(records)

    def close_running(self, run_id: str, status: str, reason: str) -> None:
        """End the run's executions still 'running' with ``status`` (the run stopped on an error or Ctrl-C)."""
        with self._connect("close_running") as conn:
            conn.execute("UPDATE stage_runs SET status=?, ended_at=?, reason=? WHERE run_id=? AND status='running'",
                         (status, time.time(), reason, run_id))

    def find_cached(self, fingerprint: str, exclude_run: str | None = None) -> list[StageRunRecord]:
        """Passed executions with this fingerprint, newest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM stage_runs WHERE fingerprint=? AND status IN ('passed','cached') "
                "AND run_id IS NOT ? ORDER BY id DESC", (fingerprint, exclude_run)).fetchall()
        return [_stage_record(row) for row in rows]

    def stage_runs(self, run_id: str) -> list[StageRunRecord]:
        """Every execution recorded for a run, in order."""
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM stage_runs WHERE run_id=? ORDER BY id", (run_id,)).fetchall()
        return [_stage_record(row) for row in rows]

    # artifacts ------------------------------------------------------------
    def stage_artifacts(self, stage_run_id: int) -> list[ArtifactRecord]:
        """The files one execution recorded, by path."""
        with self._read() as conn:
            rows = conn.execute("SELECT run_id, stage, path, sha256, size, mtime_ns FROM artifacts "
                                "WHERE stage_run_id=? ORDER BY path", (stage_run_id,)).fetchall()
        return [ArtifactRecord(**dict(row)) for row in rows]

    def artifacts(self, run_id: str) -> list[ArtifactRecord]:
        """The latest record of each artifact path in a run, from executions that finished."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT run_id, stage, path, sha256, size, mtime_ns FROM artifacts WHERE id IN "
                "(SELECT MAX(a.id) FROM artifacts a JOIN stage_runs s ON s.id=a.stage_run_id "
                " WHERE a.run_id=? AND s.status IN ('passed','cached') GROUP BY a.path) ORDER BY path",
                (run_id,)).fetchall()
        return [ArtifactRecord(**dict(row)) for row in rows]

    def consumed_of(self, stage_run_id: int) -> list[tuple[str, str, str]]:
        """What one execution read: ``(kind, ref, sha256)``."""
        with self._read() as conn:
            rows = conn.execute("SELECT kind, ref, sha256 FROM consumed WHERE stage_run_id=?",
                                (stage_run_id,)).fetchall()
        return [(row["kind"], row["ref"], row["sha256"]) for row in rows]

    def consumed_by(self, run_id: str) -> dict[str, list[tuple[str, str, str]]]:
        """For each stage of the run's latest executions: what it read."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT s.stage, c.kind, c.ref, c.sha256 FROM consumed c JOIN stage_runs s ON s.id=c.stage_run_id "
                "WHERE s.run_id=? AND s.id IN (SELECT MAX(id) FROM stage_runs WHERE run_id=? GROUP BY stage)",
                (run_id, run_id)).fetchall()
        out: dict[str, list[tuple[str, str, str]]] = {}
        for row in rows:
            out.setdefault(row["stage"], []).append((row["kind"], row["ref"], row["sha256"]))
        return out

    def integrity_problems(self, run_id: str) -> list[str]:
        """Rows of a run that point nowhere or contradict each other (none after a clean or resumed run).

        - an execution still 'running' while no process runs it is for the caller
          to judge (it knows whether the run is live); listed here as such;
        - files recorded for an execution that does not exist;
        - inputs recorded for an execution that does not exist;
        - files recorded for an execution that never finished.
        """
        queries = {
            "execution still marked running": "SELECT id FROM stage_runs WHERE run_id=? AND status='running'",
            "file rows of a missing execution": "SELECT a.id FROM artifacts a LEFT JOIN stage_runs s "
                                                "ON s.id=a.stage_run_id WHERE a.run_id=? AND s.id IS NULL",
            "input rows of a missing execution": "SELECT c.rowid FROM consumed c LEFT JOIN stage_runs s "
                                                 "ON s.id=c.stage_run_id WHERE s.id IS NULL AND ?=?",
            "files of an unfinished execution": "SELECT a.id FROM artifacts a JOIN stage_runs s ON s.id=a.stage_run_id "
                                                "WHERE a.run_id=? AND s.status='running'",
        }
        problems = []
        with self._read() as conn:
            for what, sql in queries.items():
                count = len(conn.execute(sql, (run_id,) * sql.count("?")).fetchall())
                if count:
                    problems.append(f"{count} {what}")
        return problems


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a database written by an older mlestar up to this schema (add missing columns)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(artifacts)")}
    if "mtime_ns" not in columns:
        conn.execute("ALTER TABLE artifacts ADD COLUMN mtime_ns INTEGER")


# SQLite primary result codes (sqlite3.h) -> (cause, fix)
_SQLITE_CAUSES: dict[str, tuple[str, str]] = {
    "SQLITE_FULL": ("the disk is full", "free space on the file system holding it, then resume the run"),
    "SQLITE_READONLY": ("it is read-only for this user", "make it and its folder writable (ls -l), "
                                                         "or use another --runs-dir"),
    "SQLITE_BUSY": ("another process holds it locked", "wait for the other mlestar process, or stop it"),
    "SQLITE_LOCKED": ("another process holds it locked", "wait for the other mlestar process, or stop it"),
    "SQLITE_CANTOPEN": ("it cannot be opened (missing folder or no permission)",
                        "check that its folder exists and is writable (ls -ld)"),
    "SQLITE_IOERR": ("the device reported an I/O error (a full disk shows up this way too)",
                     "check free space (df -h) and the disk, then resume the run"),
    "SQLITE_PERM": ("permission denied", "make it writable for this user"),
}
_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def _sqlite_error(exc: sqlite3.Error, path: Path) -> Exception:
    """The mlestar error for a SQLite failure on ``path``: corrupt vs an environment problem."""
    name = getattr(exc, "sqlite_errorname", "") or _name_from_message(str(exc))
    primary = "_".join(name.split("_")[:2])
    if primary in _CORRUPT:
        return TrackingError(f"lineage database {path} is corrupted ({exc})",
                             hint="move it aside; runs keep their files, only the cache index and lineage are lost")
    cause, hint = _SQLITE_CAUSES.get(primary, (str(exc), "fix the cause, then resume the run"))
    return ResourceError(f"lineage database {path}: {cause} ({exc})", hint=hint)


def _name_from_message(message: str) -> str:
    """SQLite error name from the message, for Pythons without ``sqlite_errorname`` (3.10)."""
    table = {"readonly": "SQLITE_READONLY", "locked": "SQLITE_BUSY", "disk is full": "SQLITE_FULL",
             "disk i/o": "SQLITE_IOERR", "unable to open": "SQLITE_CANTOPEN", "malformed": "SQLITE_CORRUPT",
             "not a database": "SQLITE_NOTADB"}
    lowered = message.lower()
    return next((name for key, name in table.items() if key in lowered), "")


def _stage_record(row: sqlite3.Row) -> StageRunRecord:
    data = dict(row)
    data["metrics"] = json.loads(data["metrics"]) if data["metrics"] else {}
    return StageRunRecord(**data)
