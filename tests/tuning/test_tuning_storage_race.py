"""Workers that open a fresh study storage at the same moment all start, and make one study between them.

Four real processes per round (forked after this one imported and warmed up
Optuna, SQLAlchemy and Alembic, so a child costs a fork, not an import),
released together by a barrier, each doing what ``mlestar tune`` does first:
open the storage and create or continue the study. Twenty rounds per file backend
(and on PostgreSQL with ``-m slow``; five in the fast suite),
each on a storage no one has opened before: a SQLite file, a journal file, a
new PostgreSQL schema. Before the creation lock, every SQLite round failed
(``table studies already exists``, ``UNIQUE constraint failed:
alembic_version.version_num``), PostgreSQL failed from its first round
(``duplicate key ... pg_type_typname_nsp_index``), and about one journal round
in five (a second process saw the new study before its creator stored the job
in it): twenty rounds catch that. Each round costs
about 0.5 s of CPU, nearly all Optuna's own work on opening a storage (it
reloads Alembic's migration scripts every time).
"""

from __future__ import annotations

import multiprocessing
import queue
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest
from optuna.trial import TrialState

from mlestar.tuning.storage import open_storage
from mlestar.tuning.study import JOB_ATTR, SIGNATURE_ATTR, open_study
from tune_helpers import fake_job, unique_study

ROUNDS, WORKERS = 20, 4
# PostgreSQL failed from its first round before the lock, and a round there costs 1 s: 5 in the
# fast suite, the full 20 with -m slow
SERVER_ROUNDS = 5
FORK = multiprocessing.get_context("fork")  # a forked child starts with the parent's imports


def _open_when_all_are_ready(barrier: Any, storage: str, study: str, results: Any) -> None:
    """In a child: wait at the barrier with the others, then open the study; report its id or the error."""
    try:
        barrier.wait(timeout=60)
        results.put(("ok", open_study(fake_job(storage, study)).study_id))
    except BaseException as exc:  # anything at all: the parent reports it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def open_at_once(storage: str, study: str) -> list[tuple[str, Any]]:
    """What each of WORKERS processes got when they opened ``study`` in ``storage`` at the same moment."""
    barrier, results = FORK.Barrier(WORKERS), FORK.Queue()
    procs = [FORK.Process(target=_open_when_all_are_ready, args=(barrier, storage, study, results))
             for _ in range(WORKERS)]
    for proc in procs:
        proc.start()
    try:
        return [results.get(timeout=120) for _ in procs]  # a failure bound: a round takes 1-3 s here
    except queue.Empty:
        return [("error", "a process reported nothing within 120 s (hung?)")]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


def fresh_sqlite(tmp_path: Path) -> Callable[[int], str]:
    return lambda n: f"sqlite:///{tmp_path / f'race{n}.db'}"


def fresh_journal(tmp_path: Path) -> Callable[[int], str]:
    return lambda n: str(tmp_path / f"race{n}.journal")


def reader(storage: str) -> Any:
    """The storage, opened without Optuna's schema-version check (it reloads Alembic's scripts: 0.1 s a time)."""
    if "://" not in storage:
        return open_storage(storage)
    return optuna.storages.RDBStorage(storage, skip_compatibility_check=True, skip_table_creation=True)


@pytest.mark.parametrize("kind,rounds", [("sqlite", ROUNDS), ("journal", ROUNDS), ("postgres", SERVER_ROUNDS),
                                         pytest.param("postgres", ROUNDS, marks=pytest.mark.slow)])
def test_workers_opening_a_fresh_storage_at_once_all_start_and_share_one_study(
        kind: str, rounds: int, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    fresh = {"sqlite": fresh_sqlite, "journal": fresh_journal}.get(kind)
    storages = fresh(tmp_path) if fresh else request.getfixturevalue("fresh_postgres")
    open_study(fake_job(f"sqlite:///{tmp_path / 'warm.db'}", "warm"))  # imports everything before the forks
    for n in range(rounds):
        storage, study = storages(n), unique_study("race")
        outcomes = open_at_once(storage, study)
        assert [status for status, _ in outcomes] == ["ok"] * WORKERS, f"round {n}: {outcomes}"
        assert len({study_id for _, study_id in outcomes}) == 1
        made = optuna.load_study(study_name=study, storage=reader(storage))
        # created once: one baseline trial enqueued, the job and signature stored by the one creator
        assert [t.state for t in made.get_trials(deepcopy=False)] == [TrialState.WAITING], f"round {n}"
        assert made.user_attrs[SIGNATURE_ATTR] == fake_job(storage, study).signature()
        assert made.user_attrs[JOB_ATTR]["study"] == study
