"""The ``mlestar`` command: registers each command module on one Typer app."""

from __future__ import annotations

from typing import Annotated

import typer

from mlestar import __version__
from mlestar.cli import (audit, compare, dashboard, export, init, lineage, models, reproduce, run, schema, serve,
                         show, status, tune, validate)
from mlestar.cli.common import set_verbosity

# add_completion: Typer's own --install-completion / --show-completion (bash, zsh, fish, PowerShell)
app = typer.Typer(name="mlestar", help="MLE-Star: raw data to a served model in seven gated, tracked stages.",
                  no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False)

for module in (init, validate, run, status, show, lineage, audit, compare, reproduce, serve, dashboard, tune, models,
               schema, export):
    module.register(app)


def _print_version(value: bool) -> None:
    """Eager ``--version``: print and exit before any command runs."""
    if value:
        typer.echo(f"mlestar {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print the version and exit")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="only errors, warnings and the final result; "
                                                              "no progress lines or bars")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="more detail: each stage's cache decision "
                                                                  "and timing; debug logging")] = False,
) -> None:
    """MLE-Star: raw data to a served model in seven gated, tracked stages."""
    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose contradict each other; pick one", param_hint="--quiet")
    set_verbosity("quiet" if quiet else "verbose" if verbose else "normal")


def main() -> None:
    """Console-script entry point."""
    app()
