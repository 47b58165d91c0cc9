"""Read-only views of runs: listing, lookup, lineage, audit verification, reproduction check."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlestar.config.catalog import METRICS, stage_folder
from mlestar.errors import RunNotFoundError
from mlestar.tracking.audit import AuditVerification, verify_audit
from mlestar.tracking.lineage import LineageDB
from mlestar.workflow.layout import AUDIT_FILE, LINEAGE_FILE
from mlestar.workflow.state import RUN_FILE, RunState


def list_runs(runs_dir: Path) -> list[RunState]:
    """Every run under ``runs_dir``, oldest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.exists():
        return []
    # dot-folders are runs still being created (``.creating-ID``), never listed
    states = [RunState.load(p) for p in runs_dir.iterdir() if not p.name.startswith(".") and (p / RUN_FILE).exists()]
    return sorted(states, key=lambda s: s.data["created"])


def find_run(runs_dir: Path, ref: str) -> Path:
    """Run folder for a run id, a unique prefix of one, ``latest``, or a path to a run folder."""
    direct = Path(ref)
    if (direct / RUN_FILE).exists():
        return direct
    runs = list_runs(runs_dir)
    if ref == "latest" and runs:
        return Path(runs_dir) / runs[-1].run_id
    matches = [s.run_id for s in runs if s.run_id.startswith(ref)]
    if len(matches) == 1:
        return Path(runs_dir) / matches[0]
    detail = f"{len(matches)} runs start with it" if matches else "no run has that id"
    raise RunNotFoundError(f"cannot find run {ref!r} in {runs_dir}: {detail}",
                           hint="`mlestar status` lists runs; pass --runs-dir if they live elsewhere")


def verify_run_audit(run_dir: Path) -> AuditVerification:
    """Verify a run's audit chain against the head its run.json recorded."""
    state = RunState.load(run_dir)
    head = state.data.get("audit", {})
    # a run that never wrote its end (running, or killed) may have records past the head it last saved
    return verify_audit(Path(run_dir) / AUDIT_FILE, expected_count=head.get("count"),
                        expected_head=head.get("head"), live=state.recorded_status == "running")


def lineage(run_dir: Path, artifact: str | None = None) -> dict[str, Any]:
    """Artifacts of a run (or one artifact) with producer and consumers."""
    run_dir = Path(run_dir)
    db = LineageDB(run_dir.parent / LINEAGE_FILE, writer=False)
    run_id = run_dir.name
    artifacts = db.artifacts(run_id)
    consumed = db.consumed_by(run_id)
    rows = []
    for record in artifacts:
        if artifact and artifact not in record.path:
            continue
        consumers = sorted({stage for stage, items in consumed.items()
                            for kind, ref, _ in items if kind == "artifact" and _ref_path(ref) == record.path})
        rows.append({"path": record.path, "sha256": record.sha256, "size": record.size,
                     "producer": record.stage, "consumers": consumers})
    if artifact and not rows:
        raise RunNotFoundError(f"run {run_id} has no artifact matching {artifact!r}")
    config_inputs = {stage: [ref for kind, ref, _ in items if kind == "config"] for stage, items in consumed.items()}
    return {"run_id": run_id, "artifacts": rows, "config_inputs": config_inputs}


def _ref_path(ref: str) -> str:
    """``'implementation/model.pt'`` -> ``'04_implementation/model.pt'`` (run-relative)."""
    stage, _, rel = ref.partition("/")
    return f"{stage_folder(stage)}/{rel}"


@dataclass(frozen=True)
class MetricComparison:
    """One metric of the original run against the reproduction."""

    metric: str
    original: float | None
    reproduced: float | None
    tolerance: float

    @property
    def within(self) -> bool:
        if self.original is None or self.reproduced is None:
            return self.original == self.reproduced
        if math.isnan(self.original) and math.isnan(self.reproduced):
            return True
        return abs(self.original - self.reproduced) <= self.tolerance


# Quality metrics are compared; timings vary run to run and are not.
REPRODUCIBLE = ("val_accuracy", "train_accuracy", "test_accuracy", "macro_f1", "refined_val_accuracy",
                "num_params", "imbalance_ratio", "num_train_images")


def compare_metrics(original: dict[str, Any], reproduced: dict[str, Any], tolerance: float
                    ) -> list[MetricComparison]:
    """Compare the reproducible metrics present in the original run."""
    return [MetricComparison(m, original.get(m), reproduced.get(m),
                             tolerance if METRICS[m].unit == "fraction" else 0.0)
            for m in REPRODUCIBLE if m in original]
