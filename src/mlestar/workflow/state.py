"""The persisted state of one run (``run.json``), rewritten atomically on every change.

Only the runner changes it (as only Optuna's runner changes a trial's state);
the CLI, the dashboard and tests read it.
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Any

from mlestar.errors import RunNotFoundError, TrackingError
from mlestar.utils.io import atomic_write_json, read_json
from mlestar.workflow.liveness import is_alive

RUN_FILE = "run.json"


class StageStatus(str, Enum):
    """Lifecycle of a stage within a run."""

    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"  # cached: outputs reused from an identical earlier execution
    INTERRUPTED = "interrupted"


DONE = (StageStatus.PASSED.value, StageStatus.SKIPPED.value)


class RunState:
    """Mutable view of ``run.json``; call :meth:`save` after each change."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self.recorded_status = str(data.get("status"))  # as in the file, before the liveness check

    @classmethod
    def create(cls, run_dir: Path, *, run_id: str, project: str, config_hash: str,
               config_path: str | None, stages: list[str]) -> RunState:
        """A fresh state with every stage pending."""
        data = {
            "run_id": run_id, "project": project, "status": "running", "created": time.time(),
            "ended": None, "config_hash": config_hash, "config_path": config_path,
            "stages": {name: {"status": StageStatus.PENDING.value, "attempts": 0} for name in stages},
            "metrics": {}, "gates": [], "gate_failures": {}, "adjustments": [], "loopbacks": [],
            "audit": {"count": 0, "head": None}, "failure": None,
        }
        state = cls(run_dir / RUN_FILE, data)
        state.save()
        return state

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        """Read an existing run's state."""
        path = Path(run_dir) / RUN_FILE
        if not path.exists():
            raise RunNotFoundError(f"no run at {run_dir} (missing {RUN_FILE})",
                                   hint="`mlestar status` lists the runs in a runs folder")
        try:
            data = read_json(path)
        except ValueError as exc:
            raise TrackingError(f"{path} is corrupted: {exc}",
                                hint="restore it from a backup; the run's files and audit trail are untouched") from None
        except OSError as exc:
            raise TrackingError(f"cannot read {path}: {exc.strerror}") from None
        state = cls(path, data)
        state.data = with_liveness(Path(run_dir), data)
        return state

    def save(self) -> None:
        atomic_write_json(self.path, self.data)
        self.recorded_status = self.status

    @property
    def run_id(self) -> str:
        return str(self.data["run_id"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    def stage(self, name: str) -> dict[str, Any]:
        return self.data["stages"][name]

    def set_stage(self, name: str, **fields: Any) -> None:
        self.data["stages"][name].update(fields)
        self.save()

    def finish(self, status: str, failure: dict[str, Any] | None = None) -> None:
        self.data.update(status=status, ended=time.time(), failure=failure)
        self.save()


def with_liveness(run_dir: Path, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as readers should see it: a 'running' run whose process is gone is 'interrupted'.

    A run killed by ``SIGKILL`` (or a power cut) never gets to write its own
    end; its lock tells. Nothing is written: the next ``--resume`` records it.
    """
    if data.get("status") != "running" or is_alive(run_dir, data.get("owner")):
        return data
    owner = data.get("owner") or {}
    message = (f"the process executing it (pid {owner.get('pid', '?')} on {owner.get('host', '?')}) stopped "
               "without finishing: killed or crashed")
    stages = {name: ({**entry, "status": StageStatus.INTERRUPTED.value, "error": message}
                     if entry.get("status") == StageStatus.RUNNING.value else entry)
              for name, entry in (data.get("stages") or {}).items()}
    return {**data, "status": "interrupted", "stages": stages, "failure": {"message": message, "crashed": True}}


def recorded_summary(run_dir: Path, stage: str, fingerprint: str) -> str | None:
    """The summary ``run_dir``'s ``run.json`` holds for ``stage``, if recorded under ``fingerprint``.

    A cache hit reuses files and metrics from the lineage database, which keeps
    no summary; the run that made them does. The fingerprint check makes sure
    the summary belongs to the execution reused, not to a later attempt
    (after a loop-back) with different inputs. ``None`` when unknown.
    """
    try:
        entry = read_json(Path(run_dir) / RUN_FILE)["stages"][stage]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    summary = entry.get("summary") if isinstance(entry, dict) else None
    return summary if isinstance(summary, str) and entry.get("fingerprint") == fingerprint else None
