"""``mlestar validate CONFIG``: check a config without running anything, and say what it sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mlestar.cli.common import SetOption, console, guarded
from mlestar.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("validate")
    @guarded
    def validate_command(
        config: Annotated[Path, typer.Argument(help="path to mle_star_config.yaml")],
        overrides: SetOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="print one JSON record (mlestar.validate/1), "
                                                             "quantities in base units")] = False,
    ) -> None:
        """Validate a config file and print its limits and gates in words; exit 2 with the key path of every
        problem."""
        from mlestar.config import load_config, parse_overrides
        from mlestar.config.summary import summary_lines
        from mlestar.workflow.stage import list_stages

        if as_json:
            _print_json(config, overrides)
            return
        loaded = load_config(config, parse_overrides(overrides))
        cfg = loaded.config
        console.print(f"{config}: valid (config hash {loaded.hash[:12]})", markup=False)
        console.print(f"  data: {cfg.data.source}; stages: {', '.join(list_stages(cfg.domain))}", markup=False)
        for line in summary_lines(cfg):
            console.print(f"  {line}", markup=False)
        for warning in loaded.warnings:
            console.print(f"  warning: {warning}", style="yellow", markup=False)


def _print_json(config: Path, overrides: list[str] | None) -> None:
    """The record on stdout; an invalid config prints ``"valid": false`` with the error and exits 2."""
    from mlestar.config import load_config, parse_overrides
    from mlestar.config.summary import invalid_record, validate_record
    from mlestar.workflow.stage import list_stages

    try:
        loaded = load_config(config, parse_overrides(overrides))
    except ConfigError as exc:
        typer.echo(json.dumps(invalid_record(exc.message, exc.hint), indent=2))
        raise typer.Exit(exc.exit_code) from None
    typer.echo(json.dumps(validate_record(loaded, list_stages(loaded.config.domain)), indent=2))
