"""``mlestar lineage RUN [ARTIFACT]``: where each artifact came from and what used it."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mlestar.cli.common import RunsDir, console, guarded, resolve_runs_dir
from mlestar.cli.output import JsonFlag, print_json


def register(app: typer.Typer) -> None:
    @app.command("lineage")
    @guarded
    def lineage_command(run: Annotated[str, typer.Argument(help="run id, unique prefix, or 'latest'")],
                        artifact: Annotated[Optional[str], typer.Argument(help="part of an artifact path")] = None,
                        runs_dir: RunsDir = None, as_json: JsonFlag = False) -> None:
        """Print artifacts with sha256, size, producing stage and consuming stages."""
        from mlestar.workflow.inspect import find_run
        from mlestar.workflow.reports import lineage_report

        report = lineage_report(find_run(resolve_runs_dir(runs_dir), run), artifact)
        if as_json:
            print_json(report)
            return
        # Plain lines, not a table: paths must never be wrapped or cut, and grep should work.
        width = max((len(row["path"]) for row in report["artifacts"]), default=0)
        for row in report["artifacts"]:
            console.print(f"{row['path']:<{width}}  sha256:{row['sha256'][:16]}  {row['size']:>10} B  "
                          f"from {row['producer']}  -> {', '.join(row['consumers']) or '-'}",
                          markup=False, soft_wrap=True)
        for stage, refs in report["config_inputs"].items():
            console.print(f"{stage} read config: {', '.join(refs)}", markup=False)
