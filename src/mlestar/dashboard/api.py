"""The JSON API under ``/api``: every route only reads.

Errors are JSON ``{"error": "..."}``: 404 for a run, stage or file that does
not exist (or may not be reached), 400 for a request that cannot be answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from mlestar.dashboard.compare import compare_runs
from mlestar.dashboard.files import list_files, resolve_run
from mlestar.dashboard.panels import stage_panel, training_history
from mlestar.dashboard.runs import RunIndex, RunList, RunQuery
from mlestar.dashboard.views import audit_view, catalog, lineage_view, run_detail

SortKey = Literal["created", "run_id", "project", "status", "duration", "primary_value", "gates_failed"]


@dataclass
class Dashboard:
    """What the routes share: the runs folder and its cached index."""

    runs_dir: Path
    index: RunIndex = field(init=False)

    def __post_init__(self) -> None:
        self.index = RunIndex(self.runs_dir)

    def run_dir(self, run_id: str) -> Path:
        """The folder of ``run_id``; :class:`RunNotFoundError` (404) when there is none."""
        return resolve_run(self.runs_dir, run_id)


def get_dashboard(request: Request) -> Dashboard:
    """The :class:`Dashboard` the app was created with."""
    return request.app.state.dashboard


Board = Annotated[Dashboard, Depends(get_dashboard)]
router = APIRouter(prefix="/api", tags=["api"])


@router.get("/catalog")
def get_catalog() -> dict[str, Any]:
    """The seven stages (name, number, folder, title) and every metric's unit and direction."""
    return catalog()


@router.get("/runs", response_model=RunList)
def get_runs(board: Board,
             q: Annotated[str, Query(max_length=200, description="substring of run id or project")] = "",
             status: Annotated[str, Query(max_length=40, description="only runs with this status")] = "",
             sort: Annotated[SortKey, Query(description="column to sort by")] = "created",
             order: Annotated[Literal["asc", "desc"], Query(description="direction")] = "desc",
             offset: Annotated[int, Query(ge=0)] = 0,
             limit: Annotated[int, Query(ge=1, le=500)] = 50) -> RunList:
    """One page of the runs list, filtered and sorted; ``statuses`` counts the whole folder."""
    return board.index.query(RunQuery(text=q, status=status, sort=sort, descending=order == "desc",
                                      offset=offset, limit=limit))


@router.get("/runs/{run_id}")
def get_run(board: Board, run_id: str) -> dict[str, Any]:
    """Overview of one run: stages, gates with remedies, loop-backs, metrics, tool commands, ``version``."""
    return run_detail(board.run_dir(run_id))


@router.get("/runs/{run_id}/stages/{stage}")
def get_stage(board: Board, run_id: str, stage: str) -> dict[str, Any]:
    """One stage's files, JSON reports, texts, tables, images and earlier attempts."""
    return stage_panel(board.runs_dir, board.run_dir(run_id), stage)


@router.get("/runs/{run_id}/history")
def get_history(board: Board, run_id: str) -> dict[str, Any]:
    """Training curves (per-epoch rows), live while stage 4 runs."""
    return training_history(board.run_dir(run_id))


@router.get("/runs/{run_id}/lineage")
def get_lineage(board: Board, run_id: str) -> dict[str, Any]:
    """Artifacts with sha256, size, producer, consumers and download URL; config read by each stage."""
    return lineage_view(board.runs_dir, board.run_dir(run_id))


@router.get("/runs/{run_id}/audit")
def get_audit(board: Board, run_id: str) -> dict[str, Any]:
    """The audit trail in order, with the verification of its hash chain."""
    return audit_view(board.run_dir(run_id))


@router.get("/runs/{run_id}/files")
def get_files(board: Board, run_id: str) -> dict[str, Any]:
    """Every file of the run folder (attempts and logs included) with its size and download URL."""
    run_dir = board.run_dir(run_id)
    return {"run_id": run_id, "files": list_files(board.runs_dir, run_dir)}


@router.get("/compare")
def get_compare(board: Board,
                run: Annotated[list[str] | None, Query(description="run ids, two or more")] = None
                ) -> dict[str, Any]:
    """Runs side by side: summaries, metric and config rows with ``differs`` (and ``best``) marked."""
    return compare_runs(board.runs_dir, run or [])
