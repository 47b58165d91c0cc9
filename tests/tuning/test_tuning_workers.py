"""Worker processes killed mid-trial (SIGKILL): their trial is marked FAIL, never lost, and the study finishes.

Real ``python -m mlestar tune`` processes on the shared tiny run. A kill lands
inside a trial by construction, not by making trials long: the test stops the
process (SIGSTOP) once it sees a trial of it running, confirms in the storage
that the trial is still running, and only then kills it; a trial that finished
meanwhile lets the process continue to its next one. Correct at any machine
speed; trials stay short. What needs no separate process (preparing,
continuing) runs in this one: each process pays for importing torch.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.tuning.storage import creation_lock
from tune_helpers import spawn, unique_study, write_config

LR = {"learning_rate": {"type": "float", "low": 0.01, "high": 0.2, "log": True}}
SHORT_TRIAL = {"epochs_per_trial": 2, "pruner": "none", "search_space": LR}
DEADLINE = 240.0  # seconds: only bounds a failure (a process that never runs a trial); no step waits for it


class StudyReader:
    """Reads a study's trials as a bystander: while a worker is stopped, a SQLite read gives up within a second.

    A process stopped in the middle of a SQLite commit holds the file's lock: reading then would wait for it.
    """

    def __init__(self, storage: str, study: str) -> None:
        self.url, self.study, self._storage = storage, study, None

    def trials(self) -> list[FrozenTrial] | None:
        """The study's trials; None while the study does not exist yet or the storage is locked."""
        from optuna.exceptions import StorageInternalError
        from sqlalchemy.exc import SQLAlchemyError

        try:
            storage = self._open()
            return storage.get_all_trials(storage.get_study_id_from_name(self.study), deepcopy=False)
        except (KeyError, SQLAlchemyError, StorageInternalError):
            return None

    def snapshot(self) -> dict[int, tuple[TrialState, float | None]]:
        """State and value of each trial by number (read when no worker is stopped)."""
        trials = self.trials()
        assert trials is not None, f"cannot read study {self.study}"
        return {t.number: (t.state, t.value) for t in trials}

    def _open(self) -> Any:
        if self._storage is None:
            quick = {"connect_args": {"timeout": 1}} if self.url.startswith("sqlite") else {}
            with creation_lock(self.url):  # the worker may be creating the tables this moment
                self._storage = optuna.storages.RDBStorage(self.url, engine_kwargs=quick)
        return self._storage


def running_trial(trials: list[FrozenTrial], pid: int) -> int | None:
    """Number of a RUNNING trial that process ``pid`` recorded as its own, else None."""
    mine = [t.number for t in trials if t.state == TrialState.RUNNING and (t.user_attrs.get("worker") or {}).get(
        "pid") == pid]
    return mine[0] if mine else None


def kill_inside_a_trial(proc: subprocess.Popen[bytes], reader: StudyReader, log: Path,
                        ready: Callable[[list[FrozenTrial]], bool] = lambda trials: True) -> int:
    """SIGKILL ``proc`` while a trial of it is RUNNING (once ``ready(trials)``); returns the trial's number."""
    end = time.time() + DEADLINE
    while time.time() < end:
        assert proc.poll() is None, f"process {proc.pid} exited before a trial of it was caught:\n{log.read_text()}"
        trials = reader.trials()
        number = running_trial(trials, proc.pid) if trials and ready(trials) else None
        if number is None:
            time.sleep(0.02)
            continue
        proc.send_signal(signal.SIGSTOP)  # frozen: the trial cannot finish between this look and the kill
        frozen = reader.trials()
        if frozen is not None and frozen[number].state == TrialState.RUNNING:
            kill(proc)
            return number
        proc.send_signal(signal.SIGCONT)  # it finished (or the file was locked): catch the next one
    raise AssertionError(f"no trial of process {proc.pid} caught running in {DEADLINE:.0f} s:\n{log.read_text()}")


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)  # a stopped process dies too
    proc.wait(timeout=30)


def any_complete(trials: list[FrozenTrial]) -> bool:
    return any(t.state == TrialState.COMPLETE for t in trials)


def assert_nothing_lost(before: dict[int, Any], after: dict[int, Any], killed: int, target: int) -> None:
    """Every trial finished before the kill is there unchanged; the killed one FAILED; the target was reached."""
    assert all(after[n] == state for n, state in before.items() if state[0] != TrialState.RUNNING)
    assert before[killed][0] == TrialState.RUNNING and after[killed][0] == TrialState.FAIL
    finished = [n for n, (state, _) in after.items() if state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) >= target
    assert not [n for n, (state, _) in after.items() if state == TrialState.RUNNING]


def test_tune_continues_a_killed_study_with_nothing_lost(tiny_run: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny_run.parent, n_trials=4, **SHORT_TRIAL)  # 3 chances after a complete one
    out, study = tmp_path / "out", unique_study("crash")
    out.mkdir()
    reader = StudyReader(f"sqlite:///{out / 'study.db'}", study)
    args = ("tune", str(config), "--run", str(tiny_run), "--out", str(out), "--study", study)
    first = spawn(*args, log=tmp_path / "first.log")
    try:
        killed = kill_inside_a_trial(first, reader, tmp_path / "first.log", ready=any_complete)
    finally:
        if first.poll() is None:
            kill(first)
    before = reader.snapshot()
    again = CliRunner().invoke(app, list(args))  # in this process: one torch import fewer
    assert again.exit_code == 0, again.output
    assert_nothing_lost(before, reader.snapshot(), killed, target=4)
    assert "4/4 trials finished" in again.output


def test_two_workers_on_postgres_finish_a_study_when_one_is_killed(tiny_run: Path, tmp_path: Path,
                                                                   postgres_url: str) -> None:
    config = write_config(tmp_path, tiny_run.parent, n_trials=4, **SHORT_TRIAL)
    study = unique_study("pg")
    prepared = CliRunner().invoke(app, ["tune", str(config), "--run", str(tiny_run), "--out", str(tmp_path / "out"),
                                        "--storage", postgres_url, "--study", study, "--prepare"])
    assert prepared.exit_code == 0, prepared.output
    reader = StudyReader(postgres_url, study)
    worker = ("tune", "--worker", "--study", study, "--storage", postgres_url, "--threads", "1")
    doomed = spawn(*worker, log=tmp_path / "doomed.log")
    survivor = spawn(*worker, log=tmp_path / "survivor.log")
    try:
        killed = kill_inside_a_trial(doomed, reader, tmp_path / "doomed.log")
        before = reader.snapshot()
        assert survivor.wait(timeout=DEADLINE) == 0, (tmp_path / "survivor.log").read_text()
    finally:
        for proc in (doomed, survivor):
            if proc.poll() is None:
                kill(proc)
    assert_nothing_lost(before, reader.snapshot(), killed, target=4)
    log = (tmp_path / "survivor.log").read_text()
    assert "worker done: study has" in log
