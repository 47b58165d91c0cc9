"""Worker processes killed mid-trial (SIGKILL): their trial is marked FAIL, never lost, and the study finishes.

Real ``python -m mlestar tune`` processes on the shared tiny run. A kill lands
inside a trial by construction, not by making trials long or polling fast: the
doomed worker runs with a fault point armed (``MLESTAR_FAULTS=stop@trial:running...``)
and stops itself (SIGSTOP) inside its N-th trial, right after the trial is
recorded RUNNING with its worker; the test waits for the stop, confirms the
trial in the storage, and kills the process. Correct at any machine speed.
What needs no separate process (preparing, continuing) runs in this one: each
process pays for importing torch.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.tuning.storage import creation_lock
from mlestar.utils import faults
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


def stop_inside(trial: int) -> dict[str, str]:
    """Environment that makes a worker stop itself inside its ``trial``-th trial (1 = its first)."""
    return {faults.ENV: f"stop@trial:running:-:before#{trial}"}


def kill_inside_a_trial(proc: subprocess.Popen[bytes], reader: StudyReader, log: Path) -> int:
    """Wait until ``proc`` stopped itself inside a trial; SIGKILL it; returns the trial's number."""
    end = time.time() + DEADLINE
    while not _stopped(proc.pid):
        assert proc.poll() is None, f"process {proc.pid} exited before it stopped in a trial:\n{log.read_text()}"
        assert time.time() < end, f"process {proc.pid} never stopped in a trial in {DEADLINE:.0f} s:\n" \
                                  f"{log.read_text()}"
        time.sleep(0.02)
    trials = reader.trials()
    assert trials is not None
    number = running_trial(trials, proc.pid)
    assert number is not None, "the stopped worker has no RUNNING trial"
    kill(proc)
    return number


def _stopped(pid: int) -> bool:
    """Whether the process is stopped (state T in /proc), as a fault point leaves it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)  # a stopped process dies too
    proc.wait(timeout=30)


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
    first = spawn(*args, log=tmp_path / "first.log", env=stop_inside(trial=2))  # after one trial completed
    try:
        killed = kill_inside_a_trial(first, reader, tmp_path / "first.log")
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
    # the survivor starts once the doomed worker holds a trial: started together, the survivor could
    # finish the whole study before the other one joined (it did once)
    doomed = spawn(*worker, log=tmp_path / "doomed.log", env=stop_inside(trial=1))
    procs = [doomed]
    try:
        killed = kill_inside_a_trial(doomed, reader, tmp_path / "doomed.log")
        before = reader.snapshot()
        survivor = spawn(*worker, log=tmp_path / "survivor.log")
        procs.append(survivor)
        assert survivor.wait(timeout=DEADLINE) == 0, (tmp_path / "survivor.log").read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                kill(proc)
    assert_nothing_lost(before, reader.snapshot(), killed, target=4)
    log = (tmp_path / "survivor.log").read_text()
    assert "worker done: study has" in log
