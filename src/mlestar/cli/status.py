"""``mlestar status``: the runs in a runs folder, oldest first, newest last."""

from __future__ import annotations

import time
from typing import Any

import typer

from mlestar.cli.common import RunsDir, err_console, guarded, resolve_runs_dir
from mlestar.cli.output import JsonFlag, print_json, print_rows


def register(app: typer.Typer) -> None:
    @app.command("status")
    @guarded
    def status_command(runs_dir: RunsDir = None, as_json: JsonFlag = False) -> None:
        """List runs with status, stages done and the primary metric (full run ids when piped)."""
        from mlestar.workflow.reports import status_report

        report = status_report(resolve_runs_dir(runs_dir))
        if as_json:
            print_json(report)
        elif not report["runs"]:
            err_console.print(f"no runs in {report['runs_dir']}", markup=False)
        else:
            print_rows(("run", "status", "stages", "primary metric", "started"), [_row(r) for r in report["runs"]])


def _row(run: dict[str, Any]) -> list[str]:
    """One status line for people: the metric with its unit applied, the start as local time."""
    from mlestar.workflow.compare import format_metric

    value = format_metric(run["primary_value"], run["primary_unit"])
    started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run["created"])) if run["created"] else "-"
    return [run["run_id"], run["status"], f"{run['stages_done']}/{run['stages_total']}",
            f"{run['primary_metric']} {value}", started]
