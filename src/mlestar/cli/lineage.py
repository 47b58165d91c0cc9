"""``mlestar lineage RUN [ARTIFACT]``: where each artifact came from and what used it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from mlestar.cli.common import RunsDir, console, guarded
from mlestar.workflow.inspect import find_run, lineage


def register(app: typer.Typer) -> None:
    @app.command("lineage")
    @guarded
    def lineage_command(run: Annotated[str, typer.Argument(help="run id, unique prefix, or 'latest'")],
                        artifact: Annotated[Optional[str], typer.Argument(help="part of an artifact path")] = None,
                        runs_dir: RunsDir = Path("runs")) -> None:
        """Print artifacts with sha256, size, producing stage and consuming stages."""
        report = lineage(find_run(runs_dir, run), artifact)
        table = Table("artifact", "sha256", "bytes", "producer", "consumers")
        for row in report["artifacts"]:
            table.add_row(row["path"], row["sha256"][:12], str(row["size"]), row["producer"],
                          ", ".join(row["consumers"]) or "-")
        console.print(table)
        for stage, refs in report["config_inputs"].items():
            console.print(f"{stage} read config: {', '.join(refs)}", markup=False)
