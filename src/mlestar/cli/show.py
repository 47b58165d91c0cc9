"""``mlestar show RUN``: one run's stages in workflow order, gates, remedies and failure."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlestar.cli.common import RunsDir, console, guarded, resolve_runs_dir
from mlestar.cli.output import JsonFlag, print_json, print_rows

KEY_METRICS = 4  # a stage recorded without a summary shows this many of its metrics instead


def register(app: typer.Typer) -> None:
    @app.command("show")
    @guarded
    def show_command(run: Annotated[str, typer.Argument(help="run id, unique prefix, or 'latest'")],
                     runs_dir: RunsDir = None, as_json: JsonFlag = False) -> None:
        """Show a run: each stage's state, attempts, duration and summary; gates; remedies."""
        from mlestar.workflow.inspect import find_run
        from mlestar.workflow.reports import show_report

        report = show_report(find_run(resolve_runs_dir(runs_dir), run))
        if as_json:
            print_json(report)
            return
        console.print(f"run {report['run_id']}: {report['status']}", markup=False)
        print_rows(("stage", "status", "attempts", "seconds", "summary"),
                   [[s["name"], s["status"], str(s["attempts"]), f"{s['duration_s'] or 0:.1f}", _summary(s)]
                    for s in report["stages"]])
        for gate in report["gates"]:
            console.print(f"gate (attempt {gate['attempt']}): {gate['message']}", markup=False)
        for adj in report["adjustments"]:
            console.print(f"remedy: {adj['remedy']} for {adj['gate']} ({adj['diagnosis']}: {adj['evidence']}), "
                          f"back to {adj['return_to']}", markup=False)
        if report["failure"]:
            console.print(f"failure: {report['failure']['message']}", style="red", markup=False)


def _summary(stage: dict[str, Any]) -> str:
    """What the stage found; for a cached stage that of the execution reused, with the reason as a note."""
    text = stage["summary"] or stage["error"] or _metrics_text(stage["metrics"])
    if stage["status"] == "skipped" and stage["reason"]:
        text = f"{text}\n(cached: {stage['reason']})" if text else f"(cached: {stage['reason']})"
    return text


def _metrics_text(metrics: dict[str, float | None]) -> str:
    """The first :data:`KEY_METRICS` metrics in catalog order, units applied."""
    from mlestar.config.catalog import METRICS
    from mlestar.workflow.compare import format_metric

    names = [m for m in METRICS if m in metrics][:KEY_METRICS]
    return ", ".join(f"{m} {format_metric(metrics[m], METRICS[m].unit)}" for m in names)
