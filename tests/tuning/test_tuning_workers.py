"""Worker processes killed mid-trial (SIGKILL): their trial is marked FAIL, never lost, and the study finishes.

Real ``python -m mlestar tune`` processes on the shared tiny run; trials are
made long (many epochs of tiny data) so a kill lands inside one. What needs no
separate process (preparing, continuing) runs in this one: each process pays
for importing torch, several seconds on a busy 2-core machine.
"""

from __future__ import annotations

import datetime
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.tuning.storage import open_storage
from tune_helpers import spawn, unique_study, write_config

LR = {"learning_rate": {"type": "float", "low": 0.01, "high": 0.2, "log": True}}
LONG_TRIAL = {"epochs_per_trial": 60, "pruner": "none", "search_space": LR}  # 5-7 s per trial: the tests must
# catch a trial running, polling the study while the suite loads the machine (2 s trials were missed)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    end = time.time() + timeout
    while time.time() < end:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def running_trial_of(storage: str, study: str, pid: int) -> Callable[[], int | None]:
    """A check: number of a trial of process ``pid`` running for half a second at least, else None."""
    def check() -> int | None:
        try:
            trials = optuna.load_study(study_name=study, storage=open_storage(storage)).get_trials(deepcopy=False)
        except KeyError:  # not created yet
            return None
        now = datetime.datetime.now()
        for t in trials:
            worker = t.user_attrs.get("worker") or {}
            if t.state == TrialState.RUNNING and worker.get("pid") == pid and t.datetime_start \
                    and (now - t.datetime_start).total_seconds() > 0.5:
                return t.number
        return None

    return check


def snapshot(storage: str, study: str) -> dict[int, tuple[TrialState, float | None]]:
    """State and value of each trial by number ({} before the study exists)."""
    try:
        trials = optuna.load_study(study_name=study, storage=open_storage(storage)).get_trials(deepcopy=False)
    except KeyError:
        return {}
    return {t.number: (t.state, t.value) for t in trials}


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def assert_nothing_lost(before: dict[int, Any], after: dict[int, Any], killed: int, target: int) -> None:
    """Every trial finished before the kill is there unchanged; the killed one FAILED; the target was reached."""
    assert all(after[n] == state for n, state in before.items() if state[0] != TrialState.RUNNING)
    assert after[killed][0] == TrialState.FAIL
    finished = [n for n, (state, _) in after.items() if state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) >= target
    assert not [n for n, (state, _) in after.items() if state == TrialState.RUNNING]


def test_tune_continues_a_killed_study_with_nothing_lost(tiny_run: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny_run.parent, n_trials=2, **LONG_TRIAL)
    out, study = tmp_path / "out", unique_study("crash")
    storage = f"sqlite:///{out / 'study.db'}"
    args = ("tune", str(config), "--run", str(tiny_run), "--out", str(out), "--study", study)
    first = spawn(*args, log=tmp_path / "first.log")
    try:
        wait_for(lambda: (out / "study.db").exists() and any(
            s == TrialState.COMPLETE for s, _ in snapshot(storage, study).values()), "a completed trial")
        killed = wait_for(running_trial_of(storage, study, first.pid), "a running trial")
    finally:
        kill(first)
    before = snapshot(storage, study)
    again = CliRunner().invoke(app, list(args))  # in this process: one torch import fewer
    assert again.exit_code == 0, again.output
    assert_nothing_lost(before, snapshot(storage, study), killed, target=2)
    assert "2/2 trials finished" in again.output


def test_two_workers_on_postgres_finish_a_study_when_one_is_killed(tiny_run: Path, tmp_path: Path,
                                                                   postgres_url: str) -> None:
    config = write_config(tmp_path, tiny_run.parent, n_trials=3, **LONG_TRIAL)
    study = unique_study("pg")
    prepared = CliRunner().invoke(app, ["tune", str(config), "--run", str(tiny_run), "--out", str(tmp_path / "out"),
                                        "--storage", postgres_url, "--study", study, "--prepare"])
    assert prepared.exit_code == 0, prepared.output
    worker = ("tune", "--worker", "--study", study, "--storage", postgres_url, "--threads", "1")
    doomed = spawn(*worker, log=tmp_path / "doomed.log")
    survivor = spawn(*worker, log=tmp_path / "survivor.log")
    try:
        killed = wait_for(running_trial_of(postgres_url, study, doomed.pid), "a running trial of the first worker")
        kill(doomed)
        before = snapshot(postgres_url, study)
        assert survivor.wait(timeout=240) == 0, (tmp_path / "survivor.log").read_text()
    finally:
        for proc in (doomed, survivor):
            if proc.poll() is None:
                kill(proc)
    after = snapshot(postgres_url, study)
    assert_nothing_lost(before, after, killed, target=3)
    log = (tmp_path / "survivor.log").read_text()
    assert "worker done: study has" in log
