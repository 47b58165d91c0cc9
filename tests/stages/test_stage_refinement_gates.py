"""Gates on stage 6's metrics send the run back through the engine like any other gate."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_workflow import run_tiny

QUICK = {"n_trials": 1, "seeds": 1, "ablation": False}


def test_min_improvement_gate_loops_back_then_fails_with_a_summary(tmp_path: Path) -> None:
    gates = [{"metric": "refinement_regression", "op": "<=", "threshold": 1.0},  # never fails: 0..1
             {"name": "refinement pays", "metric": "refinement_improvement", "op": ">=", "threshold": 0.5,
              "on_fail": {"max_attempts": 2}}]
    state = run_tiny(tmp_path / "runs", gates=gates, refinement=QUICK)
    assert state.status == "failed"
    assert state.data["failure"]["gate"] == "refinement pays" and len(state.data["failure"]["values"]) == 2
    [adjustment] = state.data["adjustments"]
    assert adjustment["return_to"] == "action_planning" and adjustment["gate"] == "refinement pays"
    assert state.stage("refinement")["attempts"] == 2
    run_dir = tmp_path / "runs" / state.run_id
    first = json.loads((run_dir / "_attempts" / "06_refinement-attempt1" / "tune_job.json").read_text())
    second = json.loads((run_dir / "06_refinement" / "tune_job.json").read_text())
    assert second["study"] == first["study"] + "-a2"  # a new plan gets a new study
    assert [g["passed"] for g in state.data["gates"] if g["metric"] == "refinement_regression"] == [True, True]
