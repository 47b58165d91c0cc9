"""``mlestar audit RUN [--verify]``: the decision trail, and a check that nobody edited it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from mlestar.cli.common import RunsDir, console, err_console, guarded
from mlestar.tracking.audit import read_records
from mlestar.workflow.inspect import find_run, verify_run_audit
from mlestar.workflow.runner import AUDIT_FILE


def register(app: typer.Typer) -> None:
    @app.command("audit")
    @guarded
    def audit_command(run: Annotated[str, typer.Argument(help="run id, unique prefix, or 'latest'")],
                      verify: Annotated[bool, typer.Option("--verify", help="check the hash chain; exit 1 if broken")]
                      = False,
                      runs_dir: RunsDir = Path("runs")) -> None:
        """Print the audit trail, or verify it with --verify."""
        run_dir = find_run(runs_dir, run)
        if verify:
            result = verify_run_audit(run_dir)
            for note in result.notes:
                console.print(f"note: {note}", markup=False)
            if result.ok:
                console.print(f"audit trail intact: {result.records} records, chain verified", markup=False)
                return
            for problem in result.problems:
                err_console.print(f"audit: {problem}", markup=False)
            raise typer.Exit(1)
        for record in read_records(run_dir / AUDIT_FILE):
            when = time.strftime("%H:%M:%S", time.localtime(record["time"]))
            data = record["data"]
            detail = data.get("reason") or data.get("message") or data.get("summary") or ""
            choice = f" {data['what']}={data['choice']}" if "what" in data else ""
            console.print(f"{record['seq']:>4} {when} {record['event']:<16} {record['stage'] or '':<20}"
                          f"{choice} {detail}", markup=False)
