"""``mlestar export mlflow RUN``: hand a run to MLflow (parent run, one nested run per stage, the model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlestar.cli.common import RunsDir, console, guarded

export_app = typer.Typer(help="Export a run to another tool.", no_args_is_help=True)


@export_app.command("mlflow")
@guarded
def mlflow_command(
    run: Annotated[str, typer.Argument(help="run id, unique prefix, or 'latest'")],
    tracking_uri: Annotated[str, typer.Option(
        "--tracking-uri", help="MLflow tracking store (MLflow 3 refuses ./mlruns file stores)")]
        = "sqlite:///mlflow.db",
    experiment: Annotated[Optional[str], typer.Option(help="MLflow experiment; default: the run's project")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="delete an earlier export of this run from the experiment instead of refusing")] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Write RUN to MLflow: a parent run, each stage as a nested run (params, metrics, curves, files), the model."""
    from mlestar.interop.mlflow_export import export_run
    from mlestar.workflow.inspect import find_run

    done = export_run(find_run(runs_dir, run), tracking_uri=tracking_uri, experiment=experiment, replace=replace)
    if done.replaced:
        console.print(f"replaced the earlier export (MLflow run {', '.join(done.replaced)})", markup=False)
    console.print(f"exported to {done.tracking_uri}, experiment {done.experiment_id}: parent run "
                  f"{done.parent_run_id} with {len(done.stage_runs)} stage runs", markup=False)
    console.print(f"model: {done.model_uri or 'none (the run has no model yet)'}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
