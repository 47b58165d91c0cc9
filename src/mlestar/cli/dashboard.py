"""``mlestar dashboard [RUNS_DIR]``: a read-only web UI over a runs folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlestar.cli.common import console, guarded


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    @guarded
    def dashboard_command(
        runs_dir: Annotated[Path, typer.Argument(help="folder holding run folders and lineage.db")] = Path("runs"),
        host: Annotated[str, typer.Option(help="address to bind; anything but loopback needs --token")]
        = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port to bind")] = 8050,
        token: Annotated[Optional[str], typer.Option(
            help="require this token on every request (Bearer header or ?token=)",
            envvar="MLESTAR_DASHBOARD_TOKEN", show_envvar=True)] = None,
    ) -> None:
        """Serve runs, stages, live training curves, lineage, audit and compare views (read-only)."""
        from mlestar.dashboard import serve

        serve(runs_dir, host=host, port=port, token=token,
              announce=lambda url: console.print(f"dashboard for {runs_dir} at {url}  (Ctrl+C stops it)",
                                                 markup=False))
