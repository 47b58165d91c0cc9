"""``mlestar init [DIR]``: write a commented starter config."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from mlestar.cli.common import DEFAULT_CONFIG_NAME, console, guarded
from mlestar.errors import ConfigError
from mlestar.utils.io import atomic_write_text


def write_starter(directory: Path, *, force: bool = False) -> Path:
    """Write ``DIR/mle_star_config.yaml``; refuses to overwrite unless ``force``."""
    target = Path(directory) / DEFAULT_CONFIG_NAME
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists", hint="pass --force to overwrite it")
    text = resources.files("mlestar.config").joinpath("starter.yaml").read_text(encoding="utf-8")
    return atomic_write_text(target, text)


def register(app: typer.Typer) -> None:
    @app.command("init")
    @guarded
    def init_command(
        directory: Annotated[Path, typer.Argument(help="folder to write mle_star_config.yaml into")] = Path("."),
        force: Annotated[bool, typer.Option("--force", help="overwrite an existing config")] = False,
    ) -> None:
        """Write a commented starter mle_star_config.yaml."""
        path = write_starter(directory, force=force)
        console.print(f"wrote {path}; check it with: mlestar validate {path}", markup=False)
