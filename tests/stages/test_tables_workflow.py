"""The table workflow end to end: seven stages on breast cancer, cache, gates that loop back, bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.config.catalog import stage_folder
from mlestar.workflow.state import RunState
from tests.domains.tables.tables_helpers import mixed_frame, write_csv
from tiny_workflow import run_tiny_table


def _stage(run: tuple[Path, str], name: str) -> Path:
    runs_dir, run_id = run
    return runs_dir / run_id / stage_folder(name)


def _audit(run: tuple[Path, str]) -> list[dict]:
    runs_dir, run_id = run
    return [json.loads(line) for line in (runs_dir / run_id / "audit.jsonl").read_text().splitlines()]


def test_all_seven_stages_pass_with_real_scores(finished_table_run) -> None:
    runs_dir, run_id = finished_table_run
    state = RunState.load(runs_dir / run_id)
    metrics = {k: v for name in state.data["stages"] for k, v in state.stage(name)["metrics"].items()}
    assert metrics["num_train_rows"] == 455 and metrics["leakage_suspects"] == 0
    assert metrics["val_roc_auc"] > 0.95 and metrics["test_roc_auc"] > 0.95
    assert metrics["test_rmse"] is None and metrics["target_skew"] is None  # the other task's metrics
    assert metrics["cv_std"] > 0 and metrics["trials_completed"] >= 1
    assert metrics["onnx_max_abs_diff"] < 1e-4 and metrics["parity_top1_agreement"] == 1.0


def test_cross_validation_folds_and_plan_reasons_are_recorded(finished_table_run) -> None:
    training = json.loads((_stage(finished_table_run, "implementation") / "training.json").read_text())
    assert len(training["cross_validation"]["folds"]) == 2
    plan = json.loads((_stage(finished_table_run, "action_planning") / "plan.json").read_text())
    assert plan["learner"] == "lightgbm" and "default" in plan["reasons"]["learner"]
    decisions = {e["data"]["what"] for e in _audit(finished_table_run) if e["event"] == "decision"}
    assert {"learner", "cross_validation", "early_stopping", "adopt", "primary_metric"} <= decisions


def test_refinement_compares_over_seeds(finished_table_run) -> None:
    result = json.loads((_stage(finished_table_run, "refinement") / "refinement.json").read_text())
    assert result["seeds"] == [0, 1] and all(len(c["scores"]) == 2 for c in result["candidates"])
    assert result["candidates"][0]["name"].startswith("baseline")
    assert {a["group"] for a in result["ablations"]} == set()  # one column kind: nothing to ablate by group


def test_a_rerun_reuses_every_stage(finished_table_run, tmp_path) -> None:
    import shutil

    runs_dir, _ = finished_table_run
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy)
    state = run_tiny_table(copy)
    assert {n: state.stage(n)["status"] for n in state.data["stages"]} == dict.fromkeys(state.data["stages"], "skipped")


def test_a_failed_gate_loops_back_with_a_recorded_remedy(tmp_path) -> None:
    gate = {"metric": "val_roc_auc", "op": ">=", "threshold": 0.99999, "on_fail": {"max_attempts": 2}}
    state = run_tiny_table(tmp_path / "runs", gates=[gate], tables={"cv_folds": 0},
                           refinement={"enabled": False})
    assert state.status == "failed" and state.stage("implementation")["attempts"] == 2
    adjustment = state.data["adjustments"][0]
    plan = json.loads((tmp_path / "runs" / state.run_id / stage_folder("action_planning") / "plan.json").read_text())
    assert adjustment["remedy"] in json.dumps(plan["reasons"])


def test_a_leaking_column_stops_the_run_after_the_report(tmp_path) -> None:
    frame = mixed_frame(rows=300)
    frame["leak"] = frame["y"] * 2.0 + np.random.default_rng(0).normal(scale=0.01, size=len(frame))
    path = write_csv(frame, tmp_path / "churn.csv")
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{source: table, path: {path}, target: y, id_columns: [row_id]}}\n"
                      f"project: {{runs_dir: {tmp_path / 'runs'}}}\n")
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 2 and "leak" in result.output and "Traceback" not in result.output
    run_dir = next(p for p in (tmp_path / "runs").iterdir() if (p / "run.json").exists())
    assert (run_dir / stage_folder("situation_analysis") / "report.html").exists()


@pytest.mark.parametrize(("data", "message"), [
    ({"target": "nope"}, "target column 'nope' is not in the table"),
    ({"target": "y", "task": "regression", "columns": {"y": "categorical"}}, ""),
])
def test_bad_targets_exit_2_with_the_column_named(tmp_path, data, message) -> None:
    path = write_csv(mixed_frame(rows=60), tmp_path / "t.csv")
    if not message:
        frame = mixed_frame(rows=60)
        frame["y"] = 1
        write_csv(frame, path)
        message = "one value only"
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"data": {"source": "table", "path": str(path), **data},
                                  "project": {"runs_dir": str(tmp_path / "runs")}}))
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
