"""``mlestar tune``: search a run's plan outside the workflow, or add a worker to a running study.

    mlestar tune CONFIG --run RUN            create or continue RUN's study, search until done
    mlestar tune CONFIG --run RUN --prepare  create the study and tune_job.json only
    mlestar tune --worker --study NAME --storage URL [CONFIG | tune_job.json]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlestar.cli.common import ProgressBars, RunsDir, console, guarded, resolve_runs_dir, say
from mlestar.errors import TuningError


def register(app: typer.Typer) -> None:
    @app.command("tune")
    @guarded
    def tune_command(
        source: Annotated[Optional[Path], typer.Argument(
            help="mle_star_config.yaml (with --run), or for --worker a config or tune_job.json (optional)")] = None,
        run: Annotated[Optional[str], typer.Option("--run", help="run whose plan and data to tune")] = None,
        worker: Annotated[bool, typer.Option("--worker", help="join an existing study and run trials "
                                                              "until it is done")] = False,
        study: Annotated[Optional[str], typer.Option("--study", help="study name")] = None,
        storage: Annotated[Optional[str], typer.Option(
            "--storage", help="sqlite:///path.db, a .journal file path, or a database URL")] = None,
        out: Annotated[Optional[Path], typer.Option("--out", help="results folder (default RUN/tuning)")] = None,
        prepare: Annotated[bool, typer.Option("--prepare", help="create the study, run no trial")] = False,
        threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="torch threads of a worker")]
        = None,
        runs_dir: RunsDir = None,
    ) -> None:
        """Tune a run's training plan with Optuna; continue a crashed study; or add a worker to one."""
        from mlestar.config import load_config
        from mlestar.tuning import standalone

        if worker:
            job = standalone.worker_job(storage, study, source, lambda path: load_config(path).config)
            standalone.work(job, threads=threads, report=say)
            return
        if source is None or run is None:
            raise TuningError("mlestar tune needs CONFIG and --run RUN (or --worker)",
                              hint="mlestar tune mle_star_config.yaml --run latest")
        from mlestar.workflow.inspect import find_run

        bars = ProgressBars()
        try:
            run_dir = find_run(resolve_runs_dir(runs_dir), run)
            summary = standalone.tune_run(load_config(source).config, run_dir, out_dir=out,
                                          study=study, storage=storage, prepare=prepare, report=say,
                                          progress=bars)
        finally:
            bars.close()
        best = summary["best"]
        console.print(f"{summary['finished']}/{summary['target']} trials finished; results in {summary['out_dir']}"
                      + (f"; best val {best['value']:.4f}: {best['params']}" if best else ""), markup=False)
