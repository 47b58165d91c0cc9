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

from mlestar.errors import TrackingError

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
    path TEXT, sha256 TEXT, size INTEGER, created_at REAL
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
    """Thin, typed access to the lineage database. Every write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as conn:
                conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise TrackingError(f"lineage database {self.path} is unreadable: {exc}",
                                hint="move it aside; runs keep their files, only the cache index is lost") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.row_factory = sqlite3.Row
            with conn:
                yield conn
        finally:
            conn.close()

    # runs -----------------------------------------------------------------
    def upsert_run(self, run_id: str, *, project: str, config_hash: str, status: str,
                   started_at: float, config_path: str | None, ended_at: float | None = None) -> None:
        """Insert a run or update its status and end time."""
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET "
                "status=excluded.status, ended_at=excluded.ended_at",
                (run_id, project, config_hash, status, started_at, ended_at, config_path),
            )

    # stage runs -----------------------------------------------------------
    def start_stage(self, run_id: str, stage: str, attempt: int, fingerprint: str) -> int:
        """Record a stage starting; returns its id for the calls below."""
        with self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO stage_runs (run_id, stage, attempt, status, fingerprint, started_at) "
                "VALUES (?,?,?,?,?,?)", (run_id, stage, attempt, "running", fingerprint, time.time()))
            return int(cur.lastrowid)

    def finish_stage(self, stage_run_id: int, *, status: str, metrics: dict[str, Any],
                     reason: str | None = None, cached_from: str | None = None) -> None:
        """Close a stage execution with its outcome and metrics."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE stage_runs SET status=?, ended_at=?, metrics=?, reason=?, cached_from=? WHERE id=?",
                (status, time.time(), json.dumps(metrics, default=float), reason, cached_from, stage_run_id))

    def find_cached(self, fingerprint: str, exclude_run: str | None = None) -> list[StageRunRecord]:
        """Passed executions with this fingerprint, newest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM stage_runs WHERE fingerprint=? AND status IN ('passed','cached') "
                "AND run_id IS NOT ? ORDER BY id DESC", (fingerprint, exclude_run)).fetchall()
        return [_stage_record(row) for row in rows]

    def stage_runs(self, run_id: str) -> list[StageRunRecord]:
        """Every execution recorded for a run, in order."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM stage_runs WHERE run_id=? ORDER BY id", (run_id,)).fetchall()
        return [_stage_record(row) for row in rows]

    # artifacts ------------------------------------------------------------
    def add_artifacts(self, stage_run_id: int, records: list[ArtifactRecord]) -> None:
        """Register the files a stage execution produced."""
        now = time.time()
        with self._connect() as conn:
            conn.executemany(
                "INSERT INTO artifacts (stage_run_id, run_id, stage, path, sha256, size, created_at) "
                "VALUES (?,?,?,?,?,?,?)",
                [(stage_run_id, r.run_id, r.stage, r.path, r.sha256, r.size, now) for r in records])

    def add_consumed(self, stage_run_id: int, items: list[tuple[str, str, str]]) -> None:
        """Record what an execution read: ``(kind, ref, sha256)`` with kind 'artifact' or 'config'."""
        with self._connect() as conn:
            conn.executemany("INSERT INTO consumed VALUES (?,?,?,?)",
                             [(stage_run_id, kind, ref, sha) for kind, ref, sha in items])

    def artifacts(self, run_id: str) -> list[ArtifactRecord]:
        """The latest record of each artifact path in a run."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT run_id, stage, path, sha256, size FROM artifacts WHERE id IN "
                "(SELECT MAX(id) FROM artifacts WHERE run_id=? GROUP BY path) ORDER BY path", (run_id,)).fetchall()
        return [ArtifactRecord(**dict(row)) for row in rows]

    def consumed_by(self, run_id: str) -> dict[str, list[tuple[str, str, str]]]:
        """For each stage of the run's latest executions: what it read."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT s.stage, c.kind, c.ref, c.sha256 FROM consumed c JOIN stage_runs s ON s.id=c.stage_run_id "
                "WHERE s.run_id=? AND s.id IN (SELECT MAX(id) FROM stage_runs WHERE run_id=? GROUP BY stage)",
                (run_id, run_id)).fetchall()
        out: dict[str, list[tuple[str, str, str]]] = {}
        for row in rows:
            out.setdefault(row["stage"], []).append((row["kind"], row["ref"], row["sha256"]))
        return out


def _stage_record(row: sqlite3.Row) -> StageRunRecord:
    data = dict(row)
    data["metrics"] = json.loads(data["metrics"]) if data["metrics"] else {}
    return StageRunRecord(**data)
