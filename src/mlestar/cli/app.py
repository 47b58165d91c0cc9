"""The ``mlestar`` command: registers each command module on one Typer app."""

from __future__ import annotations

import typer

from mlestar.cli import (audit, compare, dashboard, export, init, lineage, models, reproduce, run, schema, serve,
                         show, status, tune, validate)

app = typer.Typer(name="mlestar", help="MLE-Star: raw data to a served model in seven gated, tracked stages.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

for module in (init, validate, run, status, show, lineage, audit, compare, reproduce, serve, dashboard, tune, models,
               schema, export):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
