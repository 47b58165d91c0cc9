"""``mlestar run [CONFIG]``: execute the workflow (the embedded digits default without CONFIG)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlestar.cli.common import ProgressBars, RunsDir, console, guarded, resolve_runs_dir, say
from mlestar.config import LoadedConfig, default_config, load_config
from mlestar.config.catalog import normalize_stage
from mlestar.errors import ConfigError
from mlestar.workflow.inspect import find_run
from mlestar.workflow.runner import RunOptions, load_run_config, run_workflow


def _stage(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_stage(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def resolve(config: Path | None, resume: str | None, runs_dir: Path | None) -> tuple[LoadedConfig, str | None]:
    """The config to use and the run id to resume (for --resume the run's own saved config)."""
    if resume is not None:
        run_dir = find_run(resolve_runs_dir(runs_dir), resume)
        return load_run_config(run_dir), run_dir.name
    if config is None:
        say("no config given: running the embedded default (scikit-learn digits, all seven stages)")
        return default_config(), None
    return load_config(config), None


def register(app: typer.Typer) -> None:
    @app.command("run")
    @guarded
    def run_command(
        config: Annotated[Optional[Path], typer.Argument(help="mle_star_config.yaml; omit for the digits default")]
        = None,
        from_stage: Annotated[Optional[str], typer.Option("--from", help="re-execute from this stage on")] = None,
        only: Annotated[Optional[str], typer.Option("--only", help="execute just this stage")] = None,
        resume: Annotated[Optional[str], typer.Option("--resume", help="continue an interrupted run")] = None,
        runs_dir: RunsDir = None,  # type: ignore[assignment]
        no_cache: Annotated[bool, typer.Option("--no-cache", help="execute every stage")] = False,
    ) -> None:
        """Run the seven MLE-Star stages. Exit 0 when all pass, 1 when a gate runs out of attempts."""
        loaded, resume_id = resolve(config, resume, runs_dir)
        for warning in loaded.warnings:
            console.print(f"warning: {warning}", style="yellow", markup=False)
        bars = ProgressBars()
        options = RunOptions(runs_dir=runs_dir if resume_id is None else resolve_runs_dir(runs_dir),
                             resume=resume_id, from_stage=_stage(from_stage), only_stage=_stage(only),
                             use_cache=not no_cache, report=say, progress=bars)
        try:
            state = run_workflow(loaded, options)
        finally:
            bars.close()
        if state.status == "failed":
            raise typer.Exit(1)
