"""Finding runs and their files without ever leaving the runs folder.

Every path the dashboard reads from a request goes through :func:`resolve_run`
or :func:`artifact_path`. Both refuse ``..``, absolute paths, NUL bytes, and
anything whose real location (after following symlinks) lies outside the runs
folder, with :class:`~mlestar.errors.RunNotFoundError` (a 404), so a request
cannot tell a forbidden path from a missing one.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from mlestar.errors import RunNotFoundError
from mlestar.workflow.state import RUN_FILE

MAX_LISTED_FILES = 5000  # a runaway folder (huge TensorBoard logs) cannot stall a page


def is_inside(path: Path, root: Path) -> bool:
    """True when ``path`` exists and its real location is ``root`` or below it."""
    try:
        path.resolve(strict=True).relative_to(root.resolve(strict=True))
    except (OSError, ValueError, RuntimeError):
        return False
    return True


def resolve_run(runs_dir: Path, run_id: str) -> Path:
    """The folder of ``run_id``: a direct child of ``runs_dir`` holding ``run.json``.

    Raises:
        RunNotFoundError: for anything else, including ids with separators or dots only.
    """
    bad = not run_id or run_id in (".", "..") or any(c in run_id for c in "/\\\x00")
    folder = Path(runs_dir) / run_id
    if bad or not (folder / RUN_FILE).is_file() or not is_inside(folder / RUN_FILE, runs_dir):
        raise RunNotFoundError(f"no run {run_id!r} in {runs_dir}",
                               hint="the runs list at / shows every run of this folder")
    return folder


def artifact_path(runs_dir: Path, run_dir: Path, rel: str) -> Path:
    """The regular file at run-relative path ``rel``, confined to ``runs_dir``.

    Raises:
        RunNotFoundError: for ``..`` parts, absolute paths, NUL bytes, missing files,
            folders, and symlinks whose target lies outside ``runs_dir``.
    """
    pure = PurePosixPath(rel)
    bad = not rel or "\x00" in rel or "\\" in rel or pure.is_absolute() or ".." in pure.parts
    target = Path(run_dir) / pure
    if bad or not target.is_file() or not is_inside(target, runs_dir):
        raise RunNotFoundError(f"run {Path(run_dir).name} has no file {rel!r}")
    return target


def file_url(run_id: str, rel: str) -> str:
    """Download URL of a run file, every segment percent-encoded."""
    return f"/runs/{quote(run_id, safe='')}/files/{quote(rel, safe='/')}"


def list_files(runs_dir: Path, run_dir: Path, under: str = "") -> list[dict[str, Any]]:
    """Regular files below ``run_dir/under`` (inside ``runs_dir``), sorted by path.

    Each entry: ``path`` (run-relative, POSIX), ``size`` in bytes, ``url``.
    Symlinks escaping the runs folder are left out; at most
    :data:`MAX_LISTED_FILES` entries are returned.
    """
    root = Path(run_dir) / under if under else Path(run_dir)
    if not root.is_dir() or not is_inside(root, runs_dir):
        return []
    found = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            if path.is_file() and is_inside(path, runs_dir):
                found.append(_entry(run_dir, path))
            if len(found) >= MAX_LISTED_FILES:
                return found
    return sorted(found, key=lambda item: item["path"])


def _entry(run_dir: Path, path: Path) -> dict[str, Any]:
    rel = path.relative_to(run_dir).as_posix()
    return {"path": rel, "size": path.stat().st_size, "url": file_url(Path(run_dir).name, rel)}
