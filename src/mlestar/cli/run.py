"""``mlestar run [CONFIG]``: execute the workflow.

Without CONFIG: ``./mle_star_config.yaml`` when there is one, else the embedded digits default.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, Sequence

import typer

from mlestar.cli.common import (DEFAULT_CONFIG_NAME, ProgressBars, RunsDir, SetOption, console, guarded,
                                resolve_runs_dir, say)
from mlestar.errors import ConfigError

if TYPE_CHECKING:  # for annotations only: the config (pydantic) is imported when a command runs
    from mlestar.config import LoadedConfig, Override


def _stage(value: str | None) -> str | None:
    """The canonical stage name of ``--from`` / ``--only`` (aliases allowed), or ``None``."""
    from mlestar.config.catalog import stage_option

    return stage_option(value)


def resolve(config: Path | None, resume: str | None, runs_dir: Path | None,
            overrides: Sequence[Override] = ()) -> tuple[LoadedConfig, str | None]:
    """The config to use and the run id to resume.

    ``--resume`` takes the run's own saved config; without CONFIG, ``./mle_star_config.yaml``
    is used when it exists (and said so), else the embedded digits default.

    Raises:
        ConfigError: ``--resume`` together with overrides (a resumed run keeps its config).
    """
    from mlestar.config import default_config, load_config

    if resume is not None:
        if overrides:
            raise ConfigError(f"--resume continues run {resume} with the config it was started with; "
                              f"-S {overrides[0]} would change it halfway",
                              hint="drop -S to resume, or start a new run with the override: "
                                   "mlestar run CONFIG -S KEY=VALUE")
        from mlestar.workflow.inspect import find_run
        from mlestar.workflow.runner import load_run_config

        run_dir = find_run(resolve_runs_dir(runs_dir), resume)
        return load_run_config(run_dir), run_dir.name
    if config is None:
        local = Path(DEFAULT_CONFIG_NAME)
        if local.is_file():
            say(f"using ./{DEFAULT_CONFIG_NAME}; name another CONFIG to run that instead")
            return load_config(local, overrides), None
        say("no config given: running the embedded default (scikit-learn digits, all seven stages)")
        return default_config(overrides), None
    return load_config(config, overrides), None


def register(app: typer.Typer) -> None:
    @app.command("run")
    @guarded
    def run_command(
        config: Annotated[Optional[Path], typer.Argument(
            help=f"config file; default: ./{DEFAULT_CONFIG_NAME} if it exists, else the digits default")] = None,
        from_stage: Annotated[Optional[str], typer.Option("--from", help="re-execute from this stage on")] = None,
        only: Annotated[Optional[str], typer.Option("--only", help="execute just this stage")] = None,
        resume: Annotated[Optional[str], typer.Option("--resume", help="continue an interrupted run")] = None,
        runs_dir: RunsDir = None,  # type: ignore[assignment]
        no_cache: Annotated[bool, typer.Option("--no-cache", help="execute every stage")] = False,
        overrides: SetOption = None,
    ) -> None:
        """Run the seven MLE-Star stages. Exit 0 when all pass, 1 when a gate runs out of attempts."""
        from mlestar.config import parse_overrides
        from mlestar.workflow.runner import RunOptions, run_workflow

        loaded, resume_id = resolve(config, resume, runs_dir, parse_overrides(overrides))
        for warning in loaded.warnings:
            console.print(f"warning: {warning}", style="yellow", markup=False)
        for override in loaded.overrides:
            say(f"override: {override}")
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
