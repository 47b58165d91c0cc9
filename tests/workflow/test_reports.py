"""The inspection documents: stage order, what a cached stage shows, gates and failures as recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mlestar.workflow.gates import GateOutcome
from mlestar.workflow.reports import json_safe, run_domain, show_report
from mlestar.workflow.stage import list_stages
from mlestar.workflow.state import RunState, recorded_summary
from tiny_workflow import run_tiny, tiny_table_config


def test_a_cached_stage_keeps_the_summary_of_the_execution_it_reused(run_copy: tuple[Path, str]) -> None:
    runs_dir, original = run_copy
    first = RunState.load(runs_dir / original)
    state = run_tiny(runs_dir)  # nothing changed: every stage is reused
    report = show_report(runs_dir / state.run_id)
    for stage in report["stages"]:
        recorded = first.stage(stage["name"])
        assert stage["status"] == "skipped" and stage["cached_from"] == original
        assert stage["summary"] == recorded["summary"] and stage["summary"]
        assert stage["metrics"] == json_safe(recorded["metrics"])
        assert original in stage["reason"]
    again = run_tiny(runs_dir)  # reuses a copy: the summary travels on
    assert RunState.load(runs_dir / again.run_id).stage("evaluation")["summary"] == first.stage("evaluation")["summary"]


def test_recorded_summary_needs_the_same_fingerprint(finished_run: tuple[Path, str]) -> None:
    run_dir = finished_run[0] / finished_run[1]
    entry = RunState.load(run_dir).stage("implementation")
    assert recorded_summary(run_dir, "implementation", entry["fingerprint"]) == entry["summary"]
    assert recorded_summary(run_dir, "implementation", "0" * 64) is None  # a later attempt's, not the one reused
    assert recorded_summary(run_dir.parent / "missing", "implementation", entry["fingerprint"]) is None


def test_show_orders_stages_by_the_registry_not_the_file(finished_run: tuple[Path, str]) -> None:
    run_dir = finished_run[0] / finished_run[1]
    assert sorted(RunState.load(run_dir).data["stages"]) == list(RunState.load(run_dir).data["stages"])
    assert [s["name"] for s in show_report(run_dir)["stages"]] == list_stages("images")


def test_the_domain_comes_from_the_saved_config(tmp_path: Path) -> None:
    config = tiny_table_config(tmp_path / "runs").config.model_dump(mode="json")
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert run_domain(tmp_path) == "tables"
    assert run_domain(tmp_path / "nothing") == "images"


def test_gates_remedies_and_failure_as_the_runner_records_them(finished_run: tuple[Path, str],
                                                                tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run[0] / finished_run[1], run_dir, ignore=shutil.ignore_patterns("0*", "_attempts"))
    data = json.loads((run_dir / "run.json").read_text())
    outcome = GateOutcome(name="acc", stage="evaluation", metric="test_accuracy", op=">=", threshold=0.9,
                          value=0.52, passed=False, message="acc: test_accuracy 52.00% < 90.00%")
    data["gates"] = [{**outcome.to_dict(), "attempt": 1, "time": 1.0}]
    data["adjustments"] = [{"gate": "acc", "remedy": "increase_epochs", "diagnosis": "underfitting",
                            "evidence": "train 47% < 90%", "value": 0.52, "return_to": "action_planning",
                            "attempt": 2}]
    data.update(status="failed", failure={"gate": "acc", "metric": "test_accuracy", "threshold": 0.9,
                                          "values": [0.52, float("nan")], "remedies_tried": ["increase_epochs"],
                                          "message": "gate 'acc' failed 2 time(s)"})
    (run_dir / "run.json").write_text(json.dumps(data))
    report = show_report(run_dir)
    assert report["status"] == "failed"
    assert report["gates"] == [{"name": "acc", "stage": "evaluation", "metric": "test_accuracy", "op": ">=",
                                "threshold": 0.9, "value": 0.52, "passed": False, "attempt": 1,
                                "message": "acc: test_accuracy 52.00% < 90.00%"}]
    assert report["adjustments"][0]["remedy"] == "increase_epochs" and report["adjustments"][0]["attempt"] == 2
    assert report["failure"] == {"message": "gate 'acc' failed 2 time(s)", "gate": "acc", "metric": "test_accuracy",
                                 "values": [0.52, None], "remedies_tried": ["increase_epochs"], "crashed": False}
