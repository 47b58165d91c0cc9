"""Stage 6 in the workflow: its outputs, the audited adoption decision, disabled refinement."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mlestar.stages.s6_refinement import Outcome, adopted_plan
from mlestar.tracking.audit import read_records
from mlestar.tuning.search import SearchResult
from mlestar.tuning.space import param_changes
from mlestar.workflow.runner import RunOptions, run_workflow
from mlestar.workflow.state import RunState
from plan_helpers import LEGACY_PLAN_JSON, sample_document
from tiny_workflow import tiny_config

OUT = "06_refinement"


def decisions(run_dir: Path) -> dict[str, dict]:
    return {r["data"]["what"]: r["data"] for r in read_records(run_dir / "audit.jsonl")
            if r["event"] == "decision" and r["stage"] == "refinement"}


def test_refinement_writes_its_tables_plots_and_an_audited_decision(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    run_dir = runs_dir / run_id
    out = run_dir / OUT
    summary = json.loads((out / "refinement.json").read_text())
    trials = json.loads((out / "trials.json").read_text())
    with open(out / "trials.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(trials) >= 2 and {row["study"] for row in table} == {"main"}
    assert {"learning_rate", "weight_decay", "label_smoothing"} <= set(table[0])
    for name in ("optimization_history.png", "param_importance.png", "ablation.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    decision = decisions(run_dir)["adopt_refined_model"]
    assert decision["choice"] is summary["adopted"] and "larger seed std" in decision["reason"]
    comparison = decision["comparison"]
    assert comparison["seeds"] == [0, 1, 2] and len(comparison["refined"]) == 3
    stage4 = json.loads((run_dir / "04_implementation" / "metrics.json").read_text())["val_accuracy"]
    assert comparison["baseline"][0] == stage4  # stage 4's own run is the baseline's first seed
    assert decisions(run_dir)["best_trial"]["choice"] == summary["best_trial"]["number"]
    before_after = (out / "before_after.md").read_text()
    assert "mean ± std" in before_after and f"optuna-dashboard sqlite:///{out.resolve()}/study.db" in before_after
    ablation = (out / "ablation.md").read_text()
    assert "| rank | component |" in ablation and summary["ablation"][0]["rank"] == 1
    job = json.loads((out / "tune_job.json").read_text())
    assert job["study"] == f"{run_id}-refinement" and job["split_hashes"]["train"]
    metrics = RunState.load(run_dir).stage("refinement")["metrics"]
    assert metrics["refinement_regression"] == max(0.0, -comparison["gain"])
    assert metrics["refinement_noise"] == comparison["noise"]
    expected = comparison["refined"][0] if summary["adopted"] else stage4
    assert metrics["refined_val_accuracy"] == expected


def test_disabled_refinement_keeps_stage_4_and_still_writes_every_output(run_copy: tuple[Path, str]) -> None:
    runs_dir, _ = run_copy
    state = run_workflow(tiny_config(runs_dir, refinement={"enabled": False}),
                         RunOptions(runs_dir=runs_dir, only_stage="refinement"))
    run_dir = runs_dir / state.run_id
    metrics = state.stage("refinement")["metrics"]
    assert metrics["trials_completed"] == 0 and metrics["refinement_improvement"] == 0
    assert metrics["refined_val_accuracy"] == state.data["metrics"]["val_accuracy"]
    assert (run_dir / OUT / "model.pt").read_bytes() == (run_dir / "04_implementation" / "model.pt").read_bytes()
    assert json.loads((run_dir / OUT / "refinement.json").read_text())["adopted"] is False
    assert "No ablation ran" in (run_dir / OUT / "ablation.md").read_text()


def test_an_adopted_plan_names_the_trial_as_the_reason_of_each_setting_it_changed() -> None:
    doc = sample_document()
    params = {"learning_rate": 0.1, "class_weighting": "balanced"}
    outcome = Outcome(baseline_val=0.8, adopted=True,
                      search=SearchResult(best={"number": 3, "study": "s", "params": params}),
                      refined_changes=param_changes(params, [10, 30], "refinement: best trial 3 of study s"))
    adopted = adopted_plan(doc, outcome).to_json()
    assert adopted["refined_params"] == params and adopted["training"]["learning_rate"] == 0.1
    assert adopted["training"]["class_weights"] == [2.0, 2 / 3]
    for name in ("learning_rate", "class_weighting", "class_weights"):
        assert adopted["reasons"][name] == "refinement: best trial 3 of study s"
    assert adopted["reasons"]["epochs"] == LEGACY_PLAN_JSON["reasons"]["epochs"]
    assert {k: v for k, v in adopted.items() if k not in ("training", "reasons", "refined_params")} == \
        {k: v for k, v in LEGACY_PLAN_JSON.items() if k not in ("training", "reasons")}
