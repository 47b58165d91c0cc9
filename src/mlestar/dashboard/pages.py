"""HTML pages and file downloads.

Every page is the same static shell (``static/index.html``); the browser script
reads the path and draws the page from the JSON API, building the DOM with
``textContent`` so nothing read from a run is ever parsed as markup. Files of a
run are served inline with a sandboxing Content-Security-Policy.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from mlestar.dashboard.api import Board
from mlestar.dashboard.files import artifact_path
from mlestar.dashboard.security import ARTIFACT_POLICY

STATIC_DIR = Path(__file__).parent / "static"
SHELL = STATIC_DIR / "index.html"
_TEXT_SUFFIXES = {".md", ".csv", ".txt", ".log", ".yaml", ".yml", ".jsonl", ".py"}

router = APIRouter(include_in_schema=False)


@router.get("/")
def runs_page() -> FileResponse:
    """The runs list."""
    return FileResponse(SHELL, media_type="text/html")


@router.get("/compare")
def compare_page() -> FileResponse:
    """Runs side by side (``?run=A&run=B``)."""
    return FileResponse(SHELL, media_type="text/html")


@router.get("/runs/{run_id}")
def run_page(board: Board, run_id: str) -> FileResponse:
    """One run; 404 when the run does not exist."""
    board.run_dir(run_id)
    return FileResponse(SHELL, media_type="text/html")


@router.api_route("/runs/{run_id}/files/{path:path}", methods=["GET", "HEAD"])
def run_file(board: Board, run_id: str, path: str) -> FileResponse:
    """A file of a run, inline, sandboxed; 404 for anything outside the runs folder."""
    target = artifact_path(board.runs_dir, board.run_dir(run_id), path)
    return FileResponse(target, media_type=media_type(target),
                        headers={"Content-Security-Policy": ARTIFACT_POLICY})


def media_type(path: Path) -> str:
    """The content type to serve a run file with; text formats as UTF-8 plain text, unknown as bytes."""
    if path.suffix.lower() in _TEXT_SUFFIXES:
        return "text/plain; charset=utf-8"
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"
