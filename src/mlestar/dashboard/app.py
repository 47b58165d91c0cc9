"""The dashboard application: routes, static assets, error handling, security, and the server.

:func:`create_app` builds the FastAPI app over one runs folder; :func:`serve`
checks the bind settings and runs it with uvicorn. The app never writes: its
routes are all GET, and :class:`~mlestar.dashboard.security.Guard` refuses
any other method before routing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from mlestar.dashboard import api, pages
from mlestar.dashboard.security import LOOPBACK_NAMES, Guard, check_bind, is_loopback
from mlestar.errors import MlestarError, RunNotFoundError


def create_app(runs_dir: Path, *, token: str | None = None, allowed_hosts: Iterable[str] | None = None) -> FastAPI:
    """The dashboard over ``runs_dir``.

    Args:
        runs_dir: folder of run folders (and ``lineage.db``); need not exist yet.
        token: when set, required on every request (see :mod:`mlestar.dashboard.security`).
        allowed_hosts: ``Host`` names accepted; ``None`` accepts any.
    """
    app = FastAPI(title="mlestar dashboard", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json")
    app.state.dashboard = api.Dashboard(Path(runs_dir))
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    app.add_exception_handler(MlestarError, _error_response)  # type: ignore[arg-type]
    app.add_middleware(Guard, token=token, allowed_hosts=allowed_hosts)
    return app


async def _error_response(request: Request, exc: MlestarError) -> JSONResponse:
    """404 for what does not exist (or may not be reached), 400 for the rest."""
    status = 404 if isinstance(exc, RunNotFoundError) else 400
    return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status)


def serve(runs_dir: Path, *, host: str = "127.0.0.1", port: int = 8050, token: str | None = None,
          announce: Callable[[str], None] = lambda url: None) -> None:
    """Serve the dashboard until interrupted; ``announce(url)`` is called once the settings are checked.

    On loopback only ``localhost``/loopback ``Host`` headers are answered (no DNS
    rebinding); elsewhere the token guards every request.

    Raises:
        MlestarError: a non-loopback host without a token, an empty token, or a
            ``runs_dir`` that is not a folder.
    """
    import uvicorn

    check_bind(host, token)
    if not Path(runs_dir).is_dir():
        raise MlestarError(f"runs folder {runs_dir} does not exist",
                           hint="pass the folder that holds your runs, e.g. `mlestar dashboard runs`")
    allowed = LOOPBACK_NAMES if is_loopback(host) else None
    shown = f"[{host}]" if ":" in host else host
    announce(f"http://{shown}:{port}/" + ("?token=<your token>" if token else ""))
    uvicorn.run(create_app(Path(runs_dir), token=token, allowed_hosts=allowed), host=host, port=port,
                log_level="warning")
