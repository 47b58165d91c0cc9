"""``mlestar reproduce RUN``: re-run without the cache and compare metrics with the original."""

from __future__ import annotations

from typing import Annotated

import typer

from mlestar.cli.common import RunsDir, console, guarded, resolve_runs_dir, say
from mlestar.cli.output import print_rows


def register(app: typer.Typer) -> None:
    @app.command("reproduce")
    @guarded
    def reproduce_command(run: Annotated[str, typer.Argument(help="run id, unique prefix, or 'latest'")],
                          tolerance: Annotated[float, typer.Option(help="allowed absolute difference of "
                                                                        "accuracy-type metrics")] = 0.01,
                          runs_dir: RunsDir = None) -> None:
        """Re-execute every stage of RUN's config; exit 1 if a metric moved beyond the tolerance."""
        from mlestar.workflow.inspect import compare_metrics, find_run
        from mlestar.workflow.runner import RunOptions, load_run_config, run_workflow
        from mlestar.workflow.state import RunState

        run_dir = find_run(resolve_runs_dir(runs_dir), run)
        original = RunState.load(run_dir)
        state = run_workflow(load_run_config(run_dir), RunOptions(runs_dir=run_dir.parent, use_cache=False,
                                                                  report=say))
        rows = compare_metrics(original.data["metrics"], state.data["metrics"], tolerance)
        print_rows(("metric", "original", "reproduced", "tolerance", "ok"),
                   [(row.metric, f"{row.original}", f"{row.reproduced}", f"{row.tolerance}",
                     "yes" if row.within else "NO") for row in rows])
        if not all(row.within for row in rows):
            raise typer.Exit(1)
        console.print(f"reproduced {original.run_id} as {state.run_id} within tolerance", markup=False)
