"""``mlestar schema [-o FILE]``: the config's JSON Schema, for editor completion and checking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from mlestar.cli.common import console, guarded
from mlestar.utils.io import atomic_write_text

# mlestar.config.json_schema.SCHEMA_FILE_NAME, spelled here for the help text: importing it would build
# the config's pydantic models for every --help (tests/cli/test_cli_light.py keeps the two equal).
SCHEMA_FILE_NAME = "mle_star_config.schema.json"


def schema_text() -> str:
    """The schema as indented JSON with a final newline (stable across calls: keys keep model order)."""
    from mlestar.config.json_schema import config_json_schema

    return json.dumps(config_json_schema(), indent=2) + "\n"


def register(app: typer.Typer) -> None:
    @app.command("schema")
    @guarded
    def schema_command(
        output: Annotated[Optional[Path], typer.Option(
            "--output", "-o", help=f"write to this file (e.g. {SCHEMA_FILE_NAME}) instead of printing")] = None,
    ) -> None:
        """Print the JSON Schema of mle_star_config.yaml, for YAML editors' completion and checks."""
        text = schema_text()
        if output is None:
            typer.echo(text, nl=False)  # plain stdout: `mlestar schema > file.json` must be pure JSON
            return
        atomic_write_text(output, text)
        console.print(f"wrote {output}; to use it, start your config with:\n"
                      f"  # yaml-language-server: $schema={output}", markup=False)
