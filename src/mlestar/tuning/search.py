"""The whole search: main study, ablations, focused study; this process plus local worker processes.

Budget: ``n_trials`` finished trials and ``timeout`` seconds in all. With
ablations on, ``focus_fraction`` of both is kept for the focused search; the
main study gets the rest. When no component earns a focused search, the kept
trials go back to the main study. Ablation runs are not trials: they spend
time, not the trial count.

Workers: with ``workers: N`` this process starts N-1 ``mlestar tune --worker``
processes per phase (each with 1/N of the cores) and searches itself too;
workers started by hand on other machines join the same way. When this process
stops a phase (target reached, or its deadline) it closes the study: workers
finish the trial they are in and start no more.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from mlestar.config.schema import RefinementConfig
from mlestar.tuning.ablation import focus_target, run_ablation
from mlestar.tuning.job import TrialData, TuneJob
from mlestar.tuning.objective import Objective
from mlestar.tuning.report import best_row, param_importances, trial_rows
from mlestar.tuning.space import apply_params, is_continuous, space_to_json
from mlestar.tuning.storage import redact
from mlestar.tuning.study import JOB_ATTR, OpenStudy, close_study, count_trials, open_study, run_trials

ABLATION_ATTR = "mlestar_ablation"
Report = Callable[[str], None]
Progress = Callable[[str, int, int], None]


@dataclass
class SearchResult:
    """What the search found. ``rows``: every trial of every study (see :func:`trial_rows`)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    ablation: list[dict[str, Any]] = field(default_factory=list)
    focus: dict[str, Any] | None = None
    importance: tuple[str, dict[str, float]] = ("", {})
    studies: list[str] = field(default_factory=list)
    seconds: float = 0.0


def worker_command(job: TuneJob) -> str:
    """The command that adds one more worker to the job's study (password hidden)."""
    return f"mlestar tune --worker --study {job.study} --storage '{redact(job.storage)}'"


def search(job: TuneJob, data: TrialData, settings: RefinementConfig, *, log_dir: Path,
           report: Report = lambda line: None, progress: Progress = lambda label, done, total: None,
           frozen: frozenset[str] = frozenset()) -> SearchResult:
    """Run main search, ablation and focused search within the job's trial target and the settings' timeout.

    ``frozen``: settings a tuned recipe fixed; neither ablated nor given a focused search.
    """
    started = time.time()
    focus_trials = int(job.target_trials * settings.focus_fraction) if settings.ablation else 0
    main_end, end = _deadlines(settings, started)
    main = open_study(replace(job, target_trials=job.target_trials - focus_trials))
    report(f"  study {job.study} in {redact(job.storage)}; more workers: {worker_command(job)}")
    run_phase(main, data, settings, log_dir=log_dir, deadline=main_end, report=report,
              progress=lambda done, total: progress("refinement trials", done, total))
    result = SearchResult(studies=[job.study])
    best = best_row(trial_rows(main.study, "main"))
    if settings.ablation and best is not None:
        result.ablation = cached_ablation(main, data, best, deadline=end, report=report, frozen=frozen,
                                          progress=lambda done, total: progress("ablations", done, total))
        result.focus = _focus(job, data, settings, best, result.ablation, focus_trials, log_dir, end, report,
                              progress, frozen)
    if focus_trials and result.focus is None:
        _extend(main, data, settings, log_dir, end, report, progress)
    result.rows = trial_rows(main.study, "main") + (result.focus or {}).pop("rows", [])
    if result.focus:
        result.studies.append(result.focus["study"])
    result.best = best_row(result.rows)
    result.importance = param_importances(main.study, list(job.space))
    result.seconds = time.time() - started
    return result


def _deadlines(settings: RefinementConfig, started: float) -> tuple[float | None, float | None]:
    """(end of the main search, end of the whole search) in epoch seconds, None without a timeout."""
    if settings.timeout is None:
        return None, None
    share = settings.focus_fraction if settings.ablation else 0.0
    return started + settings.timeout * (1 - share), started + settings.timeout


def cached_ablation(main: OpenStudy, data: TrialData, best: dict[str, Any], *, deadline: float | None,
                    report: Report, progress: Callable[[int, int], None] = lambda done, total: None,
                    frozen: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Ablation rows for the best trial, kept in the study so a resumed search does not train them again."""
    stored = main.study.user_attrs.get(ABLATION_ATTR) or {}
    if stored.get("best") == [best["study"], best["number"]] and stored.get("rows"):
        report(f"  ablation of trial {best['number']} reused from the study")
        return list(stored["rows"])
    rows = run_ablation(main.job, data, best["params"], best["value"], deadline=deadline, report=report,
                        progress=progress, frozen=frozen)
    main.study.set_user_attr(ABLATION_ATTR, {"best": [best["study"], best["number"]], "rows": rows})
    return rows


def _focus(job: TuneJob, data: TrialData, settings: RefinementConfig, best: dict[str, Any],
           ablation: list[dict[str, Any]], trials: int, log_dir: Path, deadline: float | None, report: Report,
           progress: Progress, frozen: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """The focused study over the most important component's parameters, or None when there is none."""
    best_plan = apply_params(job.plan, best["params"], data.class_counts)
    target = focus_target(ablation, best_plan, settings.search_space, frozen) if trials else None
    if target is None:
        return None
    component, space = target
    sampler = job.sampler if job.sampler != "cmaes" or is_continuous(space) else "tpe"
    focus_job = replace(job, study=f"{job.study}-focus-{component}", space=space_to_json(space),
                        fixed=dict(best["params"]), target_trials=trials, sampler=sampler)
    report(f"  focused search on {component} ({', '.join(space)}), {trials} trial(s), sampler {sampler}")
    opened = open_study(focus_job)
    run_phase(opened, data, settings, log_dir=log_dir, deadline=deadline, report=report,
              progress=lambda done, total: progress("focused trials", done, total))
    return {"component": component, "study": focus_job.study, "space": space_to_json(space), "sampler": sampler,
            "trials": trials, "rows": trial_rows(opened.study, f"focus:{component}")}


def _extend(main: OpenStudy, data: TrialData, settings: RefinementConfig, log_dir: Path, deadline: float | None,
            report: Report, progress: Progress) -> None:
    """Give the trials kept for a focused search back to the main study."""
    job = replace(main.job, target_trials=settings.n_trials)
    main.study.set_user_attr(JOB_ATTR, job.to_dict())  # workers joining now read the new target
    report(f"  no component earned a focused search: main study continues to {job.target_trials} trials")
    run_phase(replace(main, job=job), data, settings, log_dir=log_dir, deadline=deadline, report=report,
              progress=lambda done, total: progress("refinement trials", done, total))


def run_phase(opened: OpenStudy, data: TrialData, settings: RefinementConfig, *, log_dir: Path,
              deadline: float | None, report: Report, progress: Callable[[int, int], None]) -> None:
    """Search one study with this process and ``settings.workers - 1`` local workers, then close it."""
    import torch

    threads = opened.job.plan.num_threads or max(1, (os.cpu_count() or 1) // settings.workers)
    before = torch.get_num_threads()
    close_study(opened, closed=False)  # open again: an earlier phase or a crashed run may have closed it
    procs = spawn_workers(opened.job, settings.workers - 1, log_dir, threads) if settings.workers > 1 else []
    try:
        if settings.workers > 1:
            torch.set_num_threads(int(threads))
        run_trials(opened, Objective(opened.job, data, report), deadline=deadline, report=report,
                   progress=progress)
        close_study(opened)
        for proc in procs:
            proc.wait()  # each finishes the trial it is in: its result counts
    finally:
        torch.set_num_threads(before)
        for proc in procs:
            if proc.poll() is None:  # interrupted: stop the workers rather than orphan them
                proc.kill()
                proc.wait()
    counts = count_trials(opened.study)
    report(f"  {opened.job.study}: {counts.complete} complete, {counts.pruned} pruned, {counts.failed} failed")


def spawn_workers(job: TuneJob, count: int, log_dir: Path, threads: int) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` local ``mlestar tune --worker`` processes on the job's study; output to log files."""
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for index in range(count):
        cmd = [sys.executable, "-m", "mlestar", "tune", "--worker", "--study", job.study, "--storage", job.storage,
               "--threads", str(threads)]
        with open(log_dir / f"{job.study}-worker{index + 1}.log", "wb") as log:
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    return procs
