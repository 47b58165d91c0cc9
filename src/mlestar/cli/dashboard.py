"""``mlestar dashboard [RUNS_DIR]``: a read-only web UI over a runs folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlestar.cli.common import RunsDir, console, guarded, resolve_runs_dir
from mlestar.errors import ConfigError


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    @guarded
    def dashboard_command(
        folder: Annotated[Optional[Path], typer.Argument(
            help="folder holding run folders and lineage.db (same as --runs-dir)", show_default=False)] = None,
        runs_dir: RunsDir = None,
        host: Annotated[str, typer.Option(help="address to bind; anything but loopback needs --token")]
        = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port to bind")] = 8050,
        token: Annotated[Optional[str], typer.Option(
            help="require this token on every request (Bearer header or ?token=)",
            envvar="MLESTAR_DASHBOARD_TOKEN", show_envvar=True)] = None,
    ) -> None:
        """Serve runs, stages, live training curves, lineage, audit and compare views (read-only)."""
        from mlestar.dashboard import serve

        if folder is not None and runs_dir is not None and folder != runs_dir:
            raise ConfigError(f"two runs folders given: {folder} and --runs-dir {runs_dir}", hint="give one")
        chosen = resolve_runs_dir(folder if folder is not None else runs_dir)
        serve(chosen, host=host, port=port, token=token,
              announce=lambda url: console.print(f"dashboard for {chosen} at {url}  (Ctrl+C stops it)",
                                                 markup=False))
