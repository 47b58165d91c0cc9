"""Studies on every storage: create, continue, refuse another search, dead workers' trials failed, not lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from mlestar.errors import TuningError
from mlestar.tuning import study as study_module
from mlestar.tuning.job import TuneJob
from mlestar.tuning.objective import worker_identity
from mlestar.tuning.storage import open_storage, redact, resolve_storage
from mlestar.tuning.study import (
    close_study, count_trials, join_study, mark_failed, open_study, reap_stale_trials, run_trials,
)
from plan_helpers import sample_plan
from tune_helpers import SPACE, fake_job, unique_study

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")

def quick(trial: Any) -> float:
    """A trial without training: records its worker like the real objective, scores the drawn rate."""
    trial.set_user_attr("worker", worker_identity())
    return trial.suggest_float("learning_rate", 0.01, 0.3, log=True)


def test_new_study_runs_to_its_target_and_continues_later(storage_url: str) -> None:
    name = unique_study()
    opened = open_study(fake_job(storage_url, name, target=3))
    assert run_trials(opened, quick).complete == 3
    again = open_study(fake_job(storage_url, name, target=5))
    values = [t.value for t in again.study.trials]
    counts = run_trials(again, quick)
    assert counts.complete == 5 and [t.value for t in again.study.trials][:3] == values
    assert join_study(storage_url, name).study == name  # the job stored in the study is what workers read


def test_a_new_study_measures_the_plan_itself_first(storage_url: str) -> None:
    space = {**SPACE, "optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]},
             "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": ["sgd"]}},
             "label_smoothing": {"type": "float", "low": 0.05, "high": 0.3}}
    job = TuneJob(**{**fake_job(storage_url, unique_study(), target=2, space=space).__dict__,
                     "plan": sample_plan(epochs=1, learning_rate=0.05, optimizer="sgd", momentum=0.9,
                                         label_smoothing=0.0)})
    opened = open_study(job)
    run_trials(opened, quick)
    first = opened.study.trials[0]
    # in range: the plan's values, a conditional one too when the plan meets its condition (momentum with
    # sgd); out of range (label smoothing 0.0 < 0.05): left to the sampler
    assert first.params == {"learning_rate": 0.05} and first.user_attrs["baseline"] is True
    assert first.system_attrs.get("fixed_params") == {"learning_rate": 0.05, "optimizer": "sgd", "momentum": 0.9}
    assert "baseline" not in opened.study.trials[1].user_attrs
    assert len(open_study(job).study.trials) == 2  # continuing a study does not enqueue it again


def test_a_conditional_parameter_is_left_out_when_the_plan_misses_its_condition(storage_url: str) -> None:
    space = {"optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]},
             "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": ["sgd"]}}}
    job = TuneJob(**{**fake_job(storage_url, unique_study(), target=1, space=space).__dict__,
                     "plan": sample_plan(epochs=1, optimizer="adamw", momentum=0.9)})
    assert study_module.baseline_params(job) == {"optimizer": "adamw"}


def test_existing_study_with_another_space_is_refused_and_left_untouched(storage_url: str) -> None:
    name = unique_study()
    opened = open_study(fake_job(storage_url, name, target=2))
    run_trials(opened, quick)
    before = (len(opened.study.trials), dict(opened.study.user_attrs))
    other = {"learning_rate": {"type": "float", "low": 0.001, "high": 0.3, "log": True}}
    with pytest.raises(TuningError, match="exists with a different search space") as info:
        open_study(fake_job(storage_url, name, space=other))
    assert "left untouched" in info.value.message and "study_name" in (info.value.hint or "")
    with pytest.raises(TuningError, match="different plan"):
        open_study(TuneJob(**{**fake_job(storage_url, name).__dict__, "plan": sample_plan(epochs=2)}))
    reloaded = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    assert (len(reloaded.trials), dict(reloaded.user_attrs)) == before


def test_trial_of_a_dead_worker_is_failed_and_replaced(storage_url: str) -> None:
    name = unique_study()
    opened = open_study(fake_job(storage_url, name, target=3))
    run_trials(opened, quick)
    orphan = opened.study.ask()  # a trial a killed process left RUNNING
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan.set_user_attr("worker", {**worker_identity(), "pid": int(dead.stdout)})
    opened.study.set_user_attr("mlestar_job", fake_job(storage_url, name, target=4).to_dict())
    counts = run_trials(open_study(fake_job(storage_url, name, target=4)), quick, poll=0.1)
    assert counts.complete == 4 and counts.failed == 1
    failed = opened.study.get_trials(states=(TrialState.FAIL,))
    assert [t.number for t in failed] == [orphan.number]
    assert "is gone" in failed[0].user_attrs["failed_because"]


def test_deadline_and_closing_stop_new_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]  # the study's clock: each trial takes 10 s of it, whatever this machine's speed
    monkeypatch.setattr(study_module, "time", SimpleNamespace(time=lambda: clock[0], sleep=time.sleep))

    def ten_seconds(trial: Any) -> float:
        clock[0] += 10.0
        return quick(trial)

    opened = open_study(fake_job(f"sqlite:///{tmp_path / 'd.db'}", "timed", target=50))
    counts = run_trials(opened, ten_seconds, deadline=1025.0)
    assert counts.complete == 3  # started at 1000, 1010 and 1020; the third ran past the deadline and finished
    close_study(opened)
    assert run_trials(opened, ten_seconds, deadline=2000.0) == counts  # closed by its owner: nothing more runs


def test_live_workers_trials_are_left_running(tmp_path: Path) -> None:
    opened = open_study(fake_job(f"sqlite:///{tmp_path / 's.db'}", "alive", target=1))
    trial = opened.study.ask()
    trial.set_user_attr("worker", worker_identity())
    assert reap_stale_trials(opened) == []
    assert count_trials(opened.study).running == 1
    assert mark_failed(opened, trial.number, "test") and not mark_failed(opened, trial.number, "again")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_heartbeat_fails_a_silent_trial_from_another_machine(kind: str, tmp_path: Path,
                                                             request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    opened = open_study(fake_job(url, unique_study("hb"), target=1, heartbeat=1.0))
    trial = opened.study.ask()
    trial.set_user_attr("worker", {"host": "another-machine", "pid": 1, "started": 0.0})
    beat = time.monotonic()
    opened.storage.record_heartbeat(trial._trial_id)  # as its worker's heartbeat thread did, then died
    early = reap_stale_trials(opened)
    # within the grace period (3 heartbeats; SQLite's whole seconds may take up to one off) it stays running
    assert early == [] or time.monotonic() - beat >= 2.0
    time.sleep(4.2)  # SQLite keeps whole seconds: 4.2 s is surely more than 3 there too
    reap_stale_trials(opened)
    assert opened.study.get_trials()[trial.number].state == TrialState.FAIL


def test_storage_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TuningError, match="cannot open the study storage postgresql\\+psycopg2://u:\\*\\*\\*@"):
        open_storage("postgresql+psycopg2://u:secret@127.0.0.1:1/db")
    with pytest.raises(TuningError, match="folder .* does not exist"):
        open_storage(str(tmp_path / "missing" / "study.journal"))
    with pytest.raises(TuningError, match="no study named 'nope'"):
        open_study(fake_job(f"sqlite:///{tmp_path / 'x.db'}", "nope"), create=False)
    assert redact("postgresql://me:pw@host/db") == "postgresql://me:***@host/db"
    assert resolve_storage("journal", tmp_path).endswith("study.journal")
    assert resolve_storage("sqlite", tmp_path).startswith("sqlite:////")
