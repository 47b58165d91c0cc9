"""``mlestar show RUN``: one run's stages, gates, remedies and failure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlestar.cli.common import RunsDir, console, guarded
from mlestar.workflow.inspect import find_run
from mlestar.workflow.state import RunState


def register(app: typer.Typer) -> None:
    @app.command("show")
    @guarded
    def show_command(run: Annotated[str, typer.Argument(help="run id, unique prefix, or 'latest'")],
                     runs_dir: RunsDir = Path("runs")) -> None:
        """Show a run: each stage's state, attempts, duration and summary; gates; remedies."""
        state = RunState.load(find_run(runs_dir, run))
        console.print(f"run {state.run_id}: {state.status}", markup=False)
        table = Table("stage", "status", "attempts", "seconds", "summary")
        for name, entry in state.data["stages"].items():
            table.add_row(name, entry["status"], str(entry.get("attempts", 0)),
                          f"{entry.get('duration') or 0:.1f}", entry.get("summary") or entry.get("reason") or "")
        console.print(table)
        for gate in state.data["gates"]:
            console.print(f"gate (attempt {gate['attempt']}): {gate['message']}", markup=False)
        for adj in state.data["adjustments"]:
            console.print(f"remedy: {adj['remedy']} for {adj['gate']} ({adj['diagnosis']}: {adj['evidence']}), "
                          f"back to {adj['return_to']}", markup=False)
        if state.data.get("failure"):
            console.print(f"failure: {state.data['failure']['message']}", style="red", markup=False)
