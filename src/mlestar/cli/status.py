"""``mlestar status``: the runs in a runs folder, newest last."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from mlestar.cli.common import RunsDir, console, guarded
from mlestar.workflow.inspect import list_runs


def register(app: typer.Typer) -> None:
    @app.command("status")
    @guarded
    def status_command(runs_dir: RunsDir = Path("runs")) -> None:
        """List runs with status, stages done and the primary metric."""
        runs = list_runs(runs_dir)
        if not runs:
            console.print(f"no runs in {runs_dir}", markup=False)
            return
        table = Table("run", "status", "stages", "test acc", "started")
        for state in runs:
            stages = state.data["stages"].values()
            done = sum(s["status"] in ("passed", "skipped") for s in stages)
            acc = state.data["metrics"].get("test_accuracy")
            table.add_row(state.run_id, state.status, f"{done}/{len(stages)}",
                          f"{acc:.2%}" if acc is not None else "-",
                          time.strftime("%Y-%m-%d %H:%M", time.localtime(state.data["created"])))
        console.print(table)
