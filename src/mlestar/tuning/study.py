"""Studies: create or continue one, join one as a worker, run trials until the study is done.

A study is done when it holds ``target_trials`` finished trials (complete or
pruned). Any number of processes, on any machines that reach the storage, run
:func:`run_trials` on the same study: each starts a trial only while finished
plus running trials are short of the target, and otherwise waits, because a
running trial may still die. A trial whose worker died is marked FAIL rather
than lost, by Optuna's heartbeat (database storages, any machine) or, for
workers on this machine, by checking that the process recorded in the trial
still exists; the survivors then run a replacement, so the study still
reaches its count. Concurrent workers may overshoot it by at most one trial each.

The study stores its job (``mlestar_job``) and a signature of what makes its
trials comparable (``mlestar_signature``). Opening an existing study with a
different signature is refused before anything is written.
"""

from __future__ import annotations

import datetime
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import psutil

from mlestar.errors import TuningError
from mlestar.tuning.job import TuneJob
from mlestar.tuning.space import draw_order, is_active, space_from_json
from mlestar.tuning.storage import GRACE_INTERVALS, creation_lock, is_journal, open_storage, redact

JOB_ATTR = "mlestar_job"
SIGNATURE_ATTR = "mlestar_signature"
CLOSED_ATTR = "mlestar_closed"
NO_WORKER_GRACE = 60.0  # seconds a RUNNING trial may lack its worker attribute (set at trial start)


def make_sampler(name: str, seed: int) -> Any:
    """The Optuna sampler for a config name (the schema allows tpe, random, cmaes)."""
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str, *, max_epochs: int, target_trials: int, min_resource: int = 1) -> Any:
    """The pruner for a config name, sized to the trial length and count.

    Median: no pruning until a few trials have finished (a fifth of the budget,
    2 to 5), nor on a trial's first epoch when it has three or more (the first
    epoch of a warming-up schedule says little); then stop a trial whose val
    accuracy is below the median of earlier trials at the same epoch.
    ``auto`` is the median pruner where nothing resolved it (``mlestar tune``);
    stage 6 resolves it to ``halving`` or ``none`` from stage 4's curve.
    Halving: successive halving whose first rung is ``min_resource`` epochs
    (stage 6 chooses it: :mod:`mlestar.tuning.rungs`), keeping the best third at each rung.
    Hyperband: brackets from ``min_resource`` epochs to the trial's length.
    """
    import optuna

    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, min_resource), reduction_factor=3)

    if name in ("median", "auto"):
        # steps are epochs counted from 1: a warm-up of 2 steps first allows pruning after epoch 2
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(2, target_trials // 5)),
                                           n_warmup_steps=2 if max_epochs >= 3 else 1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, min_resource), max_resource=max(1, max_epochs),
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


@dataclass
class OpenStudy:
    """A study with the storage it lives in and its id there (for state changes by trial number)."""

    study: Any
    storage: Any
    study_id: int
    job: TuneJob


def _study_id(storage: Any, name: str) -> int | None:
    try:
        return int(storage.get_study_id_from_name(name))
    except KeyError:
        return None


def open_study(job: TuneJob, *, create: bool = True, worker: bool = False) -> OpenStudy:
    """The job's study: created (with the job stored in it) when new, else continued.

    ``worker`` offsets the sampler's seed by the process id: seeded alike,
    workers starting together would draw the same parameters. Processes
    opening a new study at the same moment create it once, under
    :func:`~mlestar.tuning.storage.creation_lock`; the others continue it.

    Raises:
        TuningError: the storage is unreachable; the study exists but was made
            for another search (nothing is changed then); or it does not exist
            and ``create`` is False.
    """
    with creation_lock(job.storage):  # one process creates the study and stores its job; others then find it whole
        return _open_study(job, open_storage(job.storage, heartbeat=job.heartbeat), create=create, worker=worker)


def _open_study(job: TuneJob, storage: Any, *, create: bool, worker: bool) -> OpenStudy:
    import optuna

    study_id = _study_id(storage, job.study)
    if study_id is not None:
        check_signature(storage, study_id, job)
    elif not create:
        raise TuningError(f"no study named {job.study!r} in {redact(job.storage)}",
                          hint="start it first: mlestar run (stage 6) or mlestar tune CONFIG --run RUN --prepare")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    max_epochs = job.epochs or job.plan.epochs
    study = optuna.create_study(study_name=job.study, storage=storage, direction="maximize", load_if_exists=True,
                                sampler=make_sampler(job.sampler, job.seed + (os.getpid() if worker else 0)),
                                pruner=make_pruner(job.pruner, max_epochs=max_epochs,
                                                   target_trials=job.target_trials,
                                                   min_resource=job.min_resource))
    if study_id is None:
        study.set_user_attr(SIGNATURE_ATTR, job.signature())
        study.set_user_attr(JOB_ATTR, job.to_dict())
        baseline = baseline_params(job)
        if baseline and not job.fixed:  # a focused study starts from the best trial, already measured
            study.enqueue_trial(baseline, user_attrs={"baseline": True})
    return OpenStudy(study, storage, int(storage.get_study_id_from_name(job.study)), job)


def baseline_params(job: TuneJob) -> dict[str, Any]:
    """The plan's own values of the space's parameters that lie inside their ranges.

    A new study runs them as its first trial, so what the search finds is ranked
    against the baseline measured the same short way (as Optuna users do with
    ``enqueue_trial``). Parameters outside the space's range are left to the sampler;
    a conditional one is included when the plan's values meet its ``when`` (walked in
    draw order, so its conditions are decided first).
    """
    space = space_from_json(job.space)
    out: dict[str, Any] = {}
    for name in draw_order(space):
        spec, value = space[name], job.plan.setting(name)
        if value is None or isinstance(value, bool) or not is_active(spec, out):
            continue
        if spec.type == "categorical":
            if value in (spec.choices or []):
                out[name] = value
        elif spec.low is not None and spec.high is not None and spec.low <= value <= spec.high:
            out[name] = int(value) if spec.type == "int" else float(value)
    return out


def check_signature(storage: Any, study_id: int, job: TuneJob) -> None:
    """Refuse to add trials to a study made for another space, plan, data or trial setting.

    Raises:
        TuningError: naming what differs; the study is left as it is.
    """
    stored = storage.get_study_user_attrs(study_id).get(SIGNATURE_ATTR)
    if stored is None:
        raise TuningError(f"study {job.study!r} in {redact(job.storage)} was not made by mlestar",
                          hint="choose another refinement.study_name (or --study)")
    fresh = job.signature()
    differs = sorted(key for key in set(stored) | set(fresh) if stored.get(key) != fresh.get(key))
    if differs:
        what = "search space" if differs == ["space"] else ", ".join(differs)
        raise TuningError(f"study {job.study!r} in {redact(job.storage)} exists with a different {what}; "
                          "its trials would not be comparable, so it is left untouched",
                          hint="choose another refinement.study_name (or --study), or delete the old study: "
                               f"optuna delete-study --study-name {job.study} --storage URL")


def join_study(storage_url: str, name: str) -> TuneJob:
    """The job stored in an existing study, for a worker that was given only its name and storage.

    Raises:
        TuningError: no such study, or not one mlestar made.
    """
    study_id = _study_id(open_storage(storage_url), name) if storage_exists(storage_url) else None
    if study_id is None:
        raise TuningError(f"no study named {name!r} in {redact(storage_url)}",
                          hint="check --study and --storage; the stage prints both when it starts searching")
    storage = open_storage(storage_url)
    for _ in range(50):  # the creator stores the job right after creating the study: wait out that moment
        raw = storage.get_study_user_attrs(study_id).get(JOB_ATTR)
        if raw is not None:
            return TuneJob.from_dict({**raw, "study": name, "storage": storage_url})
        time.sleep(0.1)
    raise TuningError(f"study {name!r} in {redact(storage_url)} holds no mlestar job",
                      hint="join studies that mlestar run or mlestar tune created")


def storage_exists(storage: str) -> bool:
    """False for a SQLite or journal file that is not there (opening it would create it)."""
    if storage.startswith("sqlite:///"):
        return Path(storage[len("sqlite:///"):]).exists()
    return not is_journal(storage) or Path(storage).exists()


@dataclass(frozen=True)
class Counts:
    """Trials of a study by state."""

    complete: int
    pruned: int
    failed: int
    running: int

    @property
    def finished(self) -> int:
        """Trials that count towards the target."""
        return self.complete + self.pruned


def count_trials(study: Any) -> Counts:
    """Current trial counts of ``study`` (read from the storage)."""
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return Counts(states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED),
                  states.count(TrialState.FAIL), states.count(TrialState.RUNNING))


def is_closed(opened: OpenStudy) -> bool:
    """True once the study's owner stopped the search (its time budget ran out)."""
    return bool(opened.storage.get_study_user_attrs(opened.study_id).get(CLOSED_ATTR))


def close_study(opened: OpenStudy, closed: bool = True) -> None:
    """Tell every worker to start no more trials of this study (``closed=False``: open it again)."""
    opened.study.set_user_attr(CLOSED_ATTR, closed)


def run_trials(opened: OpenStudy, objective: Callable[[Any], float], *, deadline: float | None = None,
               report: Callable[[str], None] = lambda line: None,
               progress: Callable[[int, int], None] = lambda done, total: None, poll: float = 1.0) -> Counts:
    """Run trials of the study until it has its target, ``deadline`` (epoch seconds) passes, or it is closed.

    Returns the counts at the end. A trial raising anything but a pruning
    signal fails the trial and propagates (a bug, not a poor setting).
    """
    target = opened.job.target_trials
    while True:
        reap_stale_trials(opened)
        counts = count_trials(opened.study)
        progress(min(counts.finished, target), target)
        if counts.finished >= target or (deadline is not None and time.time() >= deadline) or is_closed(opened):
            return counts
        if counts.finished + counts.running >= target:
            time.sleep(poll)  # the last trials are running elsewhere; one of them may still die
            continue
        opened.study.optimize(objective, n_trials=1, callbacks=[_reporter(report)])


def _reporter(report: Callable[[str], None]) -> Callable[[Any, Any], None]:
    def after_trial(study: Any, trial: Any) -> None:
        value = "" if trial.value is None else f" val {trial.value:.4f}"
        flag = "" if trial.user_attrs.get("feasible", True) else " (infeasible)"
        report(f"  trial {trial.number}: {trial.state.name.lower()}{value}{flag} {trial.params}")

    return after_trial


def reap_stale_trials(opened: OpenStudy) -> list[int]:
    """Mark FAIL the running trials whose worker is gone; returns their numbers.

    Optuna's heartbeat covers database storages on any machine; a trial whose
    recorded worker process on this host no longer exists is failed at once
    (journal storages have no heartbeat, and no one need wait a grace period).
    """
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(opened.study)
    failed = []
    for trial in opened.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        why = _dead_because(trial, opened.job.heartbeat)
        if why and mark_failed(opened, trial.number, why):
            failed.append(trial.number)
    return failed


def _dead_because(trial: Any, heartbeat: float) -> str | None:
    """Why a running trial's worker must be dead, or None when it may be alive."""
    import socket

    worker = trial.user_attrs.get("worker")
    if worker is None:
        started = trial.datetime_start or datetime.datetime.now()
        silent = (datetime.datetime.now() - started).total_seconds()
        grace = max(NO_WORKER_GRACE, GRACE_INTERVALS * heartbeat)
        return f"no worker recorded after {silent:.0f}s" if silent > grace else None
    if worker.get("host") != socket.gethostname():
        return None  # another machine: its heartbeat decides
    if not psutil.pid_exists(int(worker["pid"])):
        return f"worker process {worker['pid']} on {worker['host']} is gone"
    try:
        started = round(psutil.Process(int(worker["pid"])).create_time(), 2)
    except psutil.Error:
        return f"worker process {worker['pid']} on {worker['host']} is gone"
    return None if started == worker.get("started") else f"worker process {worker['pid']} was replaced"


def mark_failed(opened: OpenStudy, number: int, why: str) -> bool:
    """Set trial ``number`` to FAIL with the reason; False when it finished meanwhile."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    trial_id = opened.storage.get_trial_id_from_study_id_trial_number(opened.study_id, number)
    try:
        opened.storage.set_trial_user_attr(trial_id, "failed_because", why)
        return bool(opened.storage.set_trial_state_values(trial_id, state=TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False
