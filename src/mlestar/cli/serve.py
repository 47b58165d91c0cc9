"""``mlestar serve BUNDLE``: serve an inference bundle over HTTP (FastAPI + uvicorn, micro-batched)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlestar.cli.common import guarded

_DEFAULT = "default: the bundle's (deployment.serve in the run's config)"


def register(app: typer.Typer) -> None:
    @app.command("serve")
    @guarded
    def serve_command(
        bundle: Annotated[Path, typer.Argument(help="bundle folder (runs/<run>/07_deployment/bundle)")],
        runtime: Annotated[Optional[str], typer.Option(
            help=f"torchscript or onnx (tables: onnx or sklearn); {_DEFAULT}")] = None,
        host: Annotated[Optional[str], typer.Option(help=f"address to bind; {_DEFAULT}, else 127.0.0.1")] = None,
        port: Annotated[Optional[int], typer.Option(help=f"port to bind; {_DEFAULT}, else 8000")] = None,
        max_batch_size: Annotated[Optional[int], typer.Option(
            min=1, help=f"images per model call, 1 turns micro-batching off; {_DEFAULT}, else 32")] = None,
        max_wait_ms: Annotated[Optional[float], typer.Option(
            min=0.0, help=f"longest a request waits to share a model call; {_DEFAULT}, else 5")] = None,
        allow_unknown_categories: Annotated[bool, typer.Option(
            help="tables: pass categories never seen in training on as unknown instead of refusing them (422)")]
            = False,
    ) -> None:
        """Serve BUNDLE: POST /predict, /predict/batch; GET /health, /ready, /metrics, /docs.

        A table bundle (its schema.json says "domain": "tables") gets the table app: POST /predict of
        JSON rows, GET /schema. The bundle's checksums are verified first; a tampered bundle is refused.
        """
        from mlestar.domains.tables.bundle import is_table_bundle

        if is_table_bundle(bundle):
            from mlestar.domains.tables.serve import serve_table

            serve_table(bundle, host=host, port=port, runtime=runtime,
                        allow_unknown_categories=allow_unknown_categories)
            return
        from mlestar.deploy.serve import serve

        serve(bundle, host=host, port=port, runtime=runtime, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms)
