"""Stage panels: a stage folder's files, read into data the browser can show.

A panel lists every file with a download URL and reads the small ones: JSON
reports (parsed), Markdown and text (as text, never as markup), CSV tables
(rows of strings) and images (by URL). Earlier attempts kept in ``_attempts/``
are listed too. Every panel names the run's ``domain`` (``tables`` or ``images``)
so the browser picks the renderers that know that domain's files.

For an image run the implementation panel adds the training history, which is
also readable while training runs: before ``history.json`` exists the rows come
from the checkpoint written after every epoch (loaded with ``weights_only``,
so the file cannot run code in the dashboard). A table run has no epochs: its
boosting curve is already in the panel, inside ``04_implementation/training.json``
(``curve``), so its panel carries no ``history``.
"""

from __future__ import annotations

import csv
import io
import json
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from mlestar.config.catalog import STAGE_ORDER, stage_folder
from mlestar.dashboard.files import list_files
from mlestar.errors import MlestarError, RunNotFoundError
from mlestar.training.plan import PlanDocument
from mlestar.utils.io import read_json
from mlestar.workflow.state import RunState

JSON_LIMIT = 512 * 1024  # bytes; larger JSON files are listed, not inlined
TEXT_LIMIT = 256 * 1024
CSV_ROW_LIMIT = 2000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")
TEXT_SUFFIXES = (".md", ".txt", ".yaml", ".yml", ".log")
_NOT_INLINED = ("tensorboard", "checkpoints")  # binary logs and checkpoints: listed only
IMPLEMENTATION = stage_folder("implementation")


def stage_panel(runs_dir: Path, run_dir: Path, stage: str) -> dict[str, Any]:
    """The files of one stage of a run, with the small ones read.

    Returns a dict with ``stage``, ``folder``, ``status``, ``files`` (path, size, url),
    ``images`` (path, url), ``json`` / ``text`` / ``tables`` keyed by stage-relative
    path, ``reports`` (HTML reports, by URL, opened sandboxed) and ``attempts``
    (earlier attempts' files) and ``domain`` (:func:`run_domain`); the implementation
    stage of an image run adds ``history``.

    Raises:
        RunNotFoundError: when ``stage`` is not a stage name.
    """
    if stage not in STAGE_ORDER:
        raise RunNotFoundError(f"no stage {stage!r}; stages are {', '.join(STAGE_ORDER)}")
    folder = stage_folder(stage)
    entry = (RunState.load(run_dir).data.get("stages") or {}).get(stage) or {}
    files = list_files(runs_dir, run_dir, folder)
    domain = run_domain(run_dir)
    panel: dict[str, Any] = {"stage": stage, "folder": folder, "status": entry.get("status", "pending"),
                             "domain": domain, "files": files, "images": [], "json": {}, "text": {}, "tables": {},
                             "reports": [], "attempts": attempts(runs_dir, run_dir, folder)}
    for item in files:
        _read_into(panel, Path(run_dir), folder, item)
    if stage == "implementation" and domain == "images":
        panel["history"] = training_history(run_dir)
    return panel


def run_domain(run_dir: Path) -> str:
    """``tables`` when the run's ``config.json`` says ``data.source: table``, else ``images``.

    A missing, unreadable or oddly shaped config reads as ``images``, the domain the
    dashboard showed before tables existed: a panel never fails over its domain.
    """
    try:
        config = read_json(Path(run_dir) / "config.json")
    except (OSError, ValueError):
        return "images"
    data = config.get("data") if isinstance(config, dict) else None
    return "tables" if isinstance(data, dict) and data.get("source") == "table" else "images"


def _read_into(panel: dict[str, Any], run_dir: Path, folder: str, item: dict[str, Any]) -> None:
    """File ``item`` into the panel section its type belongs to."""
    rel = PurePosixPath(item["path"]).relative_to(folder)
    suffix = rel.suffix.lower()
    key = rel.as_posix()
    if rel.parts[0] in _NOT_INLINED:
        return
    if suffix in IMAGE_SUFFIXES:
        panel["images"].append({"path": key, "url": item["url"]})
    elif suffix in (".html", ".htm"):
        panel["reports"].append({"path": key, "url": item["url"]})
    elif suffix == ".json" and item["size"] <= JSON_LIMIT:
        panel["json"][key] = _json_or_none(run_dir / item["path"])
    elif suffix in TEXT_SUFFIXES and item["size"] <= TEXT_LIMIT:
        panel["text"][key] = (run_dir / item["path"]).read_text(encoding="utf-8", errors="replace")
    elif suffix == ".csv" and item["size"] <= TEXT_LIMIT:
        panel["tables"][key] = read_table(run_dir / item["path"])


def _json_or_none(path: Path) -> Any:
    """The parsed file, ``None`` when unreadable; ``NaN``/``Infinity`` read as ``None``.

    Python writes non-finite floats (a PSI over no rows is NaN) as bare ``NaN``, which
    strict JSON, and so the API's response, cannot carry.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=lambda _name: None)
    except (OSError, ValueError):
        return None


def read_table(path: Path) -> dict[str, Any]:
    """A CSV file as ``{"columns": [...], "rows": [[...]], "truncated": bool}`` (all strings)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    return {"columns": header, "rows": body[:CSV_ROW_LIMIT], "truncated": len(body) > CSV_ROW_LIMIT}


def attempts(runs_dir: Path, run_dir: Path, folder: str) -> list[dict[str, Any]]:
    """Earlier attempts of a stage (``_attempts/<folder>-attemptN``), each with its files."""
    root = Path(run_dir) / "_attempts"
    if not root.is_dir():
        return []
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith(f"{folder}-attempt"))
    return [{"name": name, "files": list_files(runs_dir, run_dir, f"_attempts/{name}")} for name in found]


def training_history(run_dir: Path) -> dict[str, Any]:
    """Training curves of stage 4, final or live.

    Returns ``rows`` (one dict per epoch: epoch, train_loss, train_accuracy,
    val_loss, val_accuracy, lr, time), ``source`` (the file they came from, or
    ``None``), ``live`` (stage 4 is running) and ``planned_epochs`` (from the plan).
    """
    run_dir = Path(run_dir)
    folder = run_dir / IMPLEMENTATION
    rows: list[dict[str, Any]] = []
    source = None
    if (folder / "history.json").is_file():
        loaded = _json_or_none(folder / "history.json")
        rows, source = (loaded if isinstance(loaded, list) else []), "history.json"
    elif (folder / "checkpoints" / "last.pt").is_file():
        rows, source = checkpoint_history(folder / "checkpoints" / "last.pt"), "checkpoints/last.pt"
    stage = ((RunState.load(run_dir).data.get("stages") or {}).get("implementation") or {})
    return {"rows": rows, "source": source, "live": stage.get("status") == "running",
            "planned_epochs": planned_epochs(run_dir)}


def planned_epochs(run_dir: Path) -> int | None:
    """Epochs the current plan asks for (``03_action_planning/plan.json``); None when there is no valid plan."""
    path = Path(run_dir) / stage_folder("action_planning") / "plan.json"
    try:
        return PlanDocument.load(path).training.epochs if path.is_file() else None
    except MlestarError:  # a plan being rewritten or edited by hand: the page shows no target, not an error
        return None


def checkpoint_history(path: Path) -> list[dict[str, Any]]:
    """The history inside a training checkpoint; ``[]`` when it cannot be read safely."""
    stat = path.stat()
    return list(_checkpoint_history(str(path), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=8)
def _checkpoint_history(path: str, mtime_ns: int, size: int) -> tuple[dict[str, Any], ...]:
    """Cached per file version (``mtime_ns``, ``size``): a poll does not reload an unchanged checkpoint."""
    try:
        import torch

        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        rows = checkpoint.get("history") or []
        return tuple({k: float(v) for k, v in row.items()} for row in rows)
    except Exception:  # noqa: BLE001 - a half-written or foreign file just has no curves yet
        return ()
