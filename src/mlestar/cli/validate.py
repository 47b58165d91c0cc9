"""``mlestar validate CONFIG``: check a config without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlestar.cli.common import console, guarded
from mlestar.cli.run import SetOption
from mlestar.config import load_config, parse_overrides
from mlestar.workflow.stage import list_stages


def register(app: typer.Typer) -> None:
    @app.command("validate")
    @guarded
    def validate_command(config: Annotated[Path, typer.Argument(help="path to mle_star_config.yaml")],
                         overrides: SetOption = None) -> None:
        """Validate a config file; exit 2 with the key path of every problem."""
        loaded = load_config(config, parse_overrides(overrides))
        cfg = loaded.config
        console.print(f"{config}: valid (config hash {loaded.hash[:12]})", markup=False)
        console.print(f"  data: {cfg.data.source}; stages: {', '.join(list_stages(cfg.domain))}", markup=False)
        for gate in cfg.gates:
            console.print(f"  gate after {gate.stage}: {gate.name}", markup=False)
        for warning in loaded.warnings:
            console.print(f"  warning: {warning}", style="yellow", markup=False)
