"""Stage 6 earns its time: the budget from stage 4's seconds, tuned recipes, stage 4 as the "before", findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlestar.training import recipes
from mlestar.tracking.audit import read_records
from mlestar.workflow.runner import RunOptions, run_workflow
from tiny_workflow import tiny_config

OUT = "06_refinement"
QUICK = {"seeds": 1, "ablation": False}


def decisions(run_dir: Path) -> dict[str, dict]:
    return {r["data"]["what"]: r["data"] for r in read_records(run_dir / "audit.jsonl")
            if r["event"] == "decision" and r["stage"] == "refinement"}


def refine_again(run_copy: tuple[Path, str], **refinement) -> tuple[Path, dict]:
    """Stage 6 of the copied run again with ``refinement`` settings; (run folder, refinement.json)."""
    runs_dir, _ = run_copy
    state = run_workflow(tiny_config(runs_dir, refinement=refinement),
                         RunOptions(runs_dir=runs_dir, only_stage="refinement"))
    run_dir = runs_dir / state.run_id
    return run_dir, json.loads((run_dir / OUT / "refinement.json").read_text())


def stage4(run_dir: Path) -> dict:
    return json.loads((run_dir / "04_implementation" / "metrics.json").read_text())


def test_stage_4_is_the_before_side_of_the_tiny_run_and_says_why(finished_run: tuple[Path, str]) -> None:
    run_dir = finished_run[0] / finished_run[1]
    metrics = stage4(run_dir)
    assert metrics["seed"] == 0 and set(metrics["split_hashes"]) == {"train", "val"}
    decision = decisions(run_dir)["stage4_is_before"]
    assert decision["choice"] is True and "same seed" in decision["reason"]
    summary = json.loads((run_dir / OUT / "refinement.json").read_text())
    assert summary["stage4_reuse"]["reused"] is True
    assert summary["budget"]["share"] is None and summary["spent_seconds"]["search"] > 0
    assert decisions(run_dir)["pruner"]["choice"] == "none"  # 1-epoch trials: no earlier rung to rank on


def test_a_share_too_small_for_two_trials_skips_the_search(run_copy: tuple[Path, str]) -> None:
    run_dir, summary = refine_again(run_copy, budget_share=0.01, budget_floor="1ms")  # no floor to lift it
    t4 = stage4(run_dir)["training_time"]
    assert summary["budget"]["total"] == pytest.approx(max(0.01 * t4, 0.001)) and summary["budget"]["mode"] == "skip"
    assert summary["metrics"]["trials_completed"] == 0 and summary["adopted"] is False
    audit = decisions(run_dir)
    assert audit["refinement_budget"]["choice"] == "skip" and "budget_share >= 1" in audit["refinement_budget"]["reason"]
    assert audit["refinement_time"]["spent"]["total"] >= 0 and "no search fits" in audit["adopt_refined_model"]["reason"]
    assert (run_dir / OUT / "model.pt").read_bytes() == (run_dir / "04_implementation" / "model.pt").read_bytes()


def test_a_share_that_cannot_pay_the_retraining_only_reports_the_winner(run_copy: tuple[Path, str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from mlestar.tuning import budget

    # as if stage 4 had trained for 1000 s: the tiny run's second would leave the trial count to machine speed
    real = budget.plan_budget
    monkeypatch.setattr(budget, "plan_budget", lambda settings, seconds, **kw: real(settings, 1000.0, **kw))
    # 1-epoch trials of a 2-epoch plan cost half of stage 4's time each; the retraining costs all of it:
    # 1.5 x stage 4 pays two trials (1.0) but not two trials and the retraining (2.0)
    run_dir, summary = refine_again(run_copy, budget_share=1.5, **QUICK)
    assert summary["budget"]["mode"] == "search_only" and summary["budget"]["search"] == 1500.0
    assert summary["comparison"] is None and summary["metrics"]["trials_completed"] == 2
    assert summary["adopted"] is False
    assert "only reported" in summary["reason"] and "budget_share >= 2" in summary["reason"]
    assert "Budget: budget_share 1.5" in (run_dir / OUT / "before_after.md").read_text()


def test_a_tuned_recipe_drops_what_it_fixed_and_says_so(run_copy: tuple[Path, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(recipes.TUNED_SETTINGS, "plain", frozenset({"learning_rate", "weight_decay"}))
    run_dir, summary = refine_again(run_copy, **QUICK)
    assert summary["tuned_recipe"] == {"recipe": "plain", "dropped": ["learning_rate", "weight_decay"],
                                       "kept": ["label_smoothing"]}
    job = json.loads((run_dir / OUT / "tune_job.json").read_text())
    assert list(job["space"]) == ["label_smoothing"]
    assert all(set(row["params"]) <= {"label_smoothing"} for row in json.loads((run_dir / OUT / "trials.json").read_text()))
    decision = decisions(run_dir)["tuned_recipe"]
    assert decision["dropped"] == ["learning_rate", "weight_decay"] and "searching only label_smoothing" in \
        decision["reason"]
    assert "left out of the search: learning_rate, weight_decay" in (run_dir / OUT / "before_after.md").read_text()


def test_nothing_left_to_search_skips_it_unless_the_user_opts_out(run_copy: tuple[Path, str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(recipes.TUNED_SETTINGS, "plain",
                        frozenset({"learning_rate", "weight_decay", "label_smoothing"}))
    run_dir, summary = refine_again(run_copy, **QUICK)
    assert summary["metrics"]["trials_completed"] == 0 and "fixes every setting" in summary["reason"]
    assert "nothing is left to search" in decisions(run_dir)["tuned_recipe"]["reason"]
    run_dir, summary = refine_again(run_copy, search_tuned_recipe=True, budget_share=0.01)  # opted out; no time
    assert summary["tuned_recipe"]["dropped"] == [] and "search_tuned_recipe: true" in \
        decisions(run_dir)["tuned_recipe"]["reason"]


def test_an_ablation_that_raises_val_is_the_candidate_compared(run_copy: tuple[Path, str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mlestar.tuning import search

    def ablation(job, data, best_params, best_value, **_):  # removing augmentation measured +5 points
        return [{"component": "augmentation", "change": "augmentation: translate -> none", "setting": "augmentation",
                 "off": "none", "reference": best_value, "val_accuracy": min(1.0, best_value + 0.05),
                 "impact": best_value - min(1.0, best_value + 0.05), "seconds": 0.0, "error": None, "rank": 1}]

    monkeypatch.setattr(search, "run_ablation", ablation)
    run_dir, summary = refine_again(run_copy, seeds=1, ablation=True, focus_fraction=0.0)
    assert summary["ablation_findings"][0]["component"] == "augmentation"
    assert "without augmentation" in summary["candidate"]["source"]
    assert summary["candidate"]["params"]["augmentation"] == "none" and summary["comparison"] is not None
    assert decisions(run_dir)["ablation_candidate"]["choice"] == "augmentation"
    assert decisions(run_dir)["adopt_refined_model"]["params"]["augmentation"] == "none"
    assert "removing **augmentation**" in (run_dir / OUT / "ablation.md").read_text()
    assert "| after (best trial without augmentation) |" in (run_dir / OUT / "before_after.md").read_text()
