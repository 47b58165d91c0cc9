"""``mlestar audit RUN [--verify]``: the decision trail, and a check that nobody edited it."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from mlestar.cli.common import RunsDir, console, err_console, guarded, resolve_runs_dir
from mlestar.cli.output import JsonFlag, print_json


def register(app: typer.Typer) -> None:
    @app.command("audit")
    @guarded
    def audit_command(run: Annotated[str, typer.Argument(help="run id, unique prefix, or 'latest'")],
                      verify: Annotated[bool, typer.Option("--verify", help="check the hash chain; exit 1 if broken")]
                      = False,
                      runs_dir: RunsDir = None, as_json: JsonFlag = False) -> None:
        """Print the audit trail, or verify it with --verify (exit 1 when the chain is broken)."""
        from mlestar.workflow.inspect import find_run
        from mlestar.workflow.reports import audit_report

        report = audit_report(find_run(resolve_runs_dir(runs_dir), run), verify=verify)
        if as_json:
            print_json(report)
        elif verify:
            _print_verification(report["verification"])
        else:
            for record in report["records"]:
                console.print(_line(record), markup=False)
        if verify and not report["verification"]["ok"]:
            raise typer.Exit(1)


def _print_verification(result: dict[str, Any]) -> None:
    for note in result["notes"]:
        console.print(f"note: {note}", markup=False)
    if result["ok"]:
        console.print(f"audit trail intact: {result['records']} records, chain verified", markup=False)
    for problem in result["problems"]:
        err_console.print(f"audit: {problem}", markup=False)


def _line(record: dict[str, Any]) -> str:
    """One record for people: sequence, local time, event, stage, the decision and its reason."""
    when = time.strftime("%H:%M:%S", time.localtime(record["time"]))
    data = record["data"]
    detail = data.get("reason") or data.get("message") or data.get("summary") or ""
    choice = f" {data['what']}={data['choice']}" if "what" in data else ""
    return f"{record['seq']:>4} {when} {record['event']:<16} {record['stage'] or '':<20}{choice} {detail}"
