"""What ``mlestar tune`` does: search a finished run's plan outside the workflow, or work on a study.

``tune_run`` takes a config and a run folder: the plan is the run's
``03_action_planning/plan.json``, the data record its
``01_situation_analysis/dataset.json`` (the config's data must load the same
images: split hashes are compared), the search settings are the config's
``refinement`` section. It creates the study, or continues it when it exists
(after a crash: trials left running by a dead process are marked FAIL and
replaced), writes ``tune_job.json`` beside it, and runs trials until the study
holds ``n_trials`` finished ones. Results go to ``RUN/tuning/`` unless told
otherwise; adopting a configuration stays the workflow's job (stage 6).

``work`` is one more worker: it reads the job stored in the study (or a job
file, or a config whose data paths suit this machine) and runs trials until
the study is done or closed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from mlestar.config.catalog import stage_folder
from mlestar.config.schema import MlestarConfig
from mlestar.errors import TuningError
from mlestar.training.plan import PlanDocument
from mlestar.tuning.job import TuneJob, build_job, read_job, trial_data, write_job
from mlestar.tuning.objective import Objective
from mlestar.tuning.report import best_row, param_importances, trial_rows, write_results
from mlestar.tuning.search import run_phase, worker_command
from mlestar.tuning.space import space_to_json
from mlestar.tuning.storage import dashboard_command, redact, resolve_storage
from mlestar.tuning.study import Counts, join_study, open_study, run_trials
from mlestar.training.runtime import configure_torch
from mlestar.utils.io import read_json

Report = Callable[[str], None]


def run_job(config: MlestarConfig, run_dir: Path, *, study: str | None, storage: str | None,
            out_dir: Path) -> TuneJob:
    """The main-search job for a finished run's plan and data, with the config's search settings.

    Raises:
        TuningError: the run folder lacks the plan or the data record.
    """
    paths = {name: Path(run_dir) / stage_folder(stage) / name
             for name, stage in (("plan.json", "action_planning"), ("dataset.json", "situation_analysis"))}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise TuningError(f"run folder {run_dir} has no {', '.join(missing)}",
                          hint="tune a run whose stages 1-3 have passed (mlestar show RUN)")
    setting = storage or config.refinement.storage
    return build_job(config, PlanDocument.load(paths["plan.json"]).training, read_json(paths["dataset.json"]),
                     study=study or config.refinement.study_name or f"{Path(run_dir).name}-tune",
                     storage=resolve_storage(setting, out_dir), target_trials=config.refinement.n_trials)


def tune_run(config: MlestarConfig, run_dir: Path, *, out_dir: Path | None = None, study: str | None = None,
             storage: str | None = None, prepare: bool = False, report: Report = lambda line: None,
             progress: Callable[[str, int, int], None] = lambda label, done, total: None) -> dict[str, Any]:
    """Create or continue the run's study and search until it is done; ``prepare``: create only.

    Returns a summary: study, storage (redacted), counts, best trial, output folder.
    """
    out_dir = Path(out_dir or Path(run_dir) / "tuning")
    out_dir.mkdir(parents=True, exist_ok=True)
    job = run_job(config, run_dir, study=study, storage=storage, out_dir=out_dir)
    configure_torch(job.plan.num_threads, job.deterministic)
    data = trial_data(job)  # also proves this machine loads the run's images
    opened = open_study(job)
    write_job(job, out_dir)
    report(f"study {job.study} in {redact(job.storage)}\n  add workers: {worker_command(job)}\n"
           f"  watch: {dashboard_command(job.storage)}")
    if not prepare:
        deadline = time.time() + config.refinement.timeout if config.refinement.timeout else None
        run_phase(opened, data, config.refinement, log_dir=out_dir / "workers", deadline=deadline, report=report,
                  progress=lambda done, total: progress("tuning trials", done, total))
    rows = trial_rows(opened.study, "main")
    write_results(rows, out_dir, param_importances(opened.study, list(job.space)))
    best = best_row(rows)
    return {"study": job.study, "storage": redact(job.storage), "out_dir": str(out_dir), "best": best,
            "finished": sum(r["state"] in ("COMPLETE", "PRUNED") for r in rows), "target": job.target_trials}


def worker_job(storage: str | None, study: str | None, source: Path | None,
               load_config: Callable[[Path], MlestarConfig]) -> TuneJob:
    """The job a worker runs: from a job file, or stored in the study (a config may supply data paths).

    Raises:
        TuningError: neither a job file nor ``--study`` and ``--storage``; or
            the config's search space is not the study's.
    """
    if source is not None and source.suffix == ".json":
        job = read_job(source)
        return TuneJob.from_dict({**job.to_dict(), "study": study or job.study, "storage": storage or job.storage})
    if not (storage and study):
        raise TuningError("a worker needs --study and --storage (or a tune_job.json)",
                          hint="the stage prints its worker command when it starts searching")
    job = join_study(storage, study)
    if source is None:
        return job
    config = load_config(source)
    if not job.fixed and space_to_json(config.refinement.search_space) != job.space:
        raise TuningError(f"the search space in {source} differs from study {study!r}'s",
                          hint="use the config the study was started with, or leave CONFIG out")
    return job.with_data(config.data)


def work(job: TuneJob, *, threads: int | None = None, report: Report = lambda line: None) -> Counts:
    """Run trials of the job's existing study until it is done, closed, or the job's timeout passes."""
    configure_torch(threads or job.plan.num_threads, job.deterministic)
    data = trial_data(job)
    opened = open_study(job, create=False, worker=True)
    report(f"worker joined study {job.study} in {redact(job.storage)} (target {job.target_trials} trials)")
    deadline = time.time() + job.timeout if job.timeout else None
    counts = run_trials(opened, Objective(job, data, report), deadline=deadline, report=report)
    report(f"worker done: study has {counts.finished} finished trial(s) of {job.target_trials}")
    return counts
