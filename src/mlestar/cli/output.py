"""How inspection commands print: one JSON document, or rows for people.

Rows go to a Rich table on a terminal and to tab-separated lines otherwise
(a pipe, a file, CliRunner), so piped output is never truncated or wrapped
and ``cut``/``awk``/``grep`` see one record per line.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Sequence

import typer

from mlestar.cli.common import console

JsonFlag = Annotated[bool, typer.Option("--json", help="print one JSON document instead (fields: docs/cli.md)")]


def print_json(document: dict[str, Any]) -> None:
    """Write ``document`` to stdout as strict JSON (NaN and infinities as ``null``), nothing else."""
    from mlestar.workflow.reports import json_safe

    typer.echo(json.dumps(json_safe(document), indent=2, allow_nan=False))


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None) -> None:
    """A table on a terminal; off one, a header line and one tab-separated line per row, cells whole.

    Tabs and newlines inside a cell become spaces, so a row stays one line.
    """
    if console.is_terminal:
        from rich.table import Table
        from rich.text import Text

        table = Table(*columns, title=title)
        # ids and keys are what a reader copies: folded over lines when narrow, never cut with an ellipsis
        for column in table.columns:
            column.overflow = "fold"
        for row in rows:
            table.add_row(*(Text(str(cell)) for cell in row))  # Text: a "[...]" in a cell is not markup
        console.print(table)
        return
    if title:
        typer.echo(title)
    for row in [list(columns), *rows]:
        typer.echo("\t".join(_cell(c) for c in row))


def _cell(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").splitlines())
