"""``mlestar serve BUNDLE``: serve an inference bundle over HTTP (FastAPI + uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlestar.cli.common import guarded


def register(app: typer.Typer) -> None:
    @app.command("serve")
    @guarded
    def serve_command(
        bundle: Annotated[Path, typer.Argument(help="bundle folder (runs/<run>/07_deployment/bundle)")],
        runtime: Annotated[str, typer.Option(help="torchscript or onnx")] = "torchscript",
        host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port to bind")] = 8000,
    ) -> None:
        """Serve POST /predict and GET /health for BUNDLE; the bundle's checksums are verified first."""
        from mlestar.deploy.serve import serve

        serve(bundle, host=host, port=port, runtime=runtime)
