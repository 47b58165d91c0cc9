"""Stage panels of a table run: the domain they name, and the files the table renderers (tables.js) read.

The renderers read these panel keys; each test pins the shape one renderer relies on,
over a real finished tiny table run (breast cancer, binary).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import synthetic_run, write_json
from fastapi.testclient import TestClient

from mlestar.config.catalog import STAGE_ORDER
from mlestar.dashboard import create_app
from mlestar.dashboard.panels import run_domain

TABLES_JS = Path(__file__).resolve().parents[2] / "src" / "mlestar" / "dashboard" / "static" / "js" / "tables.js"
Run = tuple[Path, str]


@pytest.fixture(scope="module")
def table_client(finished_table_run: Run) -> TestClient:
    return TestClient(create_app(finished_table_run[0]))


@pytest.fixture(scope="module")
def panels(table_client: TestClient, finished_table_run: Run) -> dict[str, dict[str, Any]]:
    """Every stage panel of the table run, by stage name (each fetched once)."""
    run_id = finished_table_run[1]
    out = {}
    for stage in STAGE_ORDER:
        response = table_client.get(f"/api/runs/{run_id}/stages/{stage}")
        assert response.status_code == 200, response.text
        out[stage] = response.json()
    return out


@pytest.mark.parametrize("stage", STAGE_ORDER)
def test_every_table_panel_names_the_tables_domain(panels: dict[str, dict[str, Any]], stage: str) -> None:
    panel = panels[stage]
    assert (panel["domain"], panel["status"]) == ("tables", "passed")
    assert panel["files"], "a passed table stage wrote files"


def test_image_run_panels_name_the_images_domain(client: TestClient, dash_runs: tuple[Path, str, str]) -> None:
    _, plain, _ = dash_runs
    for stage in STAGE_ORDER:
        panel = client.get(f"/api/runs/{plain}/stages/{stage}").json()
        assert panel["domain"] == "images", stage
        assert ("history" in panel) == (stage == "implementation")


def test_situation_panel_has_findings_columns_and_recommendations(panels: dict[str, dict[str, Any]]) -> None:
    panel = panels["situation_analysis"]
    analysis, report = panel["json"]["analysis.json"], panel["json"]["report.json"]
    assert analysis["task"] == "binary" and analysis["target_column"] == "target"
    assert sum(analysis["splits"].values()) == 569  # breast cancer's rows, every one in a split
    assert len(analysis["columns"]) == analysis["num_features"] == 30
    for column in analysis["columns"].values():
        assert {"kind", "role", "missing", "missing_count", "distinct", "constant", "near_constant"} <= set(column)
        assert 0.0 <= column["missing"] <= 1.0
    assert set(analysis["correlation"]["scores"]) == set(analysis["columns"])
    assert report["findings"] and all({"grade", "check", "message", "items", "count"} <= set(f)
                                      for f in report["findings"])
    assert panel["json"]["dataset.json"]["class_names"] == ["0", "1"]
    recs = panel["json"]["recommendations.json"]
    assert recs["drop_columns"] == [] and {"choice", "reason"} <= set(recs["class_weighting"])
    assert recs["target_transform"]["choice"] == "none"
    assert {i["path"] for i in panel["images"]} >= {"target_distribution.png", "column_distributions.png"}


def test_task_panel_has_metrics_gates_feasibility_and_probe(panels: dict[str, dict[str, Any]]) -> None:
    spec = panels["task_definition"]["json"]["task_spec.json"]
    assert (spec["task"], spec["metrics"]["primary"]) == ("binary", "test_roc_auc")
    assert isinstance(spec["metrics"]["secondary"], list) and spec["gates"] == []
    assert spec["feasibility"]["verdict"] == "feasible" and spec["feasibility"]["reason"]
    assert spec["probe"]["estimated_fit_seconds"] > 0


def test_planning_panel_has_learner_params_decisions_and_columns(panels: dict[str, dict[str, Any]]) -> None:
    plan = panels["action_planning"]["json"]["plan.json"]
    assert plan["learner"] == "lightgbm" and plan["params"] == {"n_estimators": 200}
    assert set(plan["reasons"]) >= {"learner", "class_weight"}
    assert len(plan["columns"]) == 30
    assert all({"column", "kind", "action", "reason"} <= set(c) for c in plan["columns"])


def test_implementation_panel_has_scores_folds_curve_and_importance(panels: dict[str, dict[str, Any]]) -> None:
    panel = panels["implementation"]
    assert "history" not in panel  # a table run has no epochs; its curve is in training.json
    training = panel["json"]["training.json"]
    cv = training["cross_validation"]
    assert len(cv["folds"]) == 2 and cv["score"] == "roc_auc"
    assert math.isclose(cv["mean"], sum(cv["folds"]) / 2)
    assert 1 <= training["best_iteration"] <= 200 and 0.9 < training["val_scores"]["roc_auc"] <= 1.0
    [(_, sides)] = training["curve"].items()
    assert len(sides["train"]) == len(sides["valid"]) >= training["best_iteration"]
    assert len(panel["json"]["feature_importance.json"]) == 30
    assert {i["path"] for i in panel["images"]} == {"learning_curve.png", "feature_importance.png"}


def test_evaluation_panel_has_metrics_threshold_report_and_shap(panels: dict[str, dict[str, Any]]) -> None:
    panel = panels["evaluation"]
    record = panel["json"]["evaluation.json"]
    assert record["task"] == "binary" and record["n_test"] == 114
    assert 0.5 < record["scores"]["roc_auc"] <= 1.0
    assert record["threshold"]["chosen"] in (0.5, record["threshold"]["f1_optimal"])
    assert set(record["threshold"]["test_at_0.5"]) == set(record["scores"])
    report = record["classification_report"]
    assert sum(report[name]["support"] for name in ("0", "1")) == 114
    assert sum(map(sum, record["confusion_matrix"]["matrix"])) == 114
    assert record["target_buckets"] is None and panel["json"]["error_by_category.json"] == {}
    assert len(panel["json"]["shap_importance.json"]["mean_abs"]) == 30
    assert record["efficiency"]["latency_p95"] >= record["efficiency"]["latency_p50"] > 0


def test_refinement_panel_has_candidates_ablations_and_trials(panels: dict[str, dict[str, Any]]) -> None:
    panel = panels["refinement"]
    result = panel["json"]["refinement.json"]
    names = [c["name"] for c in result["candidates"]]
    assert result["adopted"] in names and result["reason"]
    assert all(len(c["scores"]) == len(result["seeds"]) == 2 for c in result["candidates"])
    assert isinstance(result["ablations"], list)
    trials = panel["tables"]["trials.csv"]
    assert trials["columns"][:3] == ["number", "state", "value"] and len(trials["rows"]) == 4


def test_deployment_panel_has_parity_benchmark_schema_and_drift(panels: dict[str, dict[str, Any]]) -> None:
    panel = panels["deployment"]
    record = panel["json"]["deployment.json"]
    parity = record["parity"]
    assert record["runtime"] == "onnx" and parity["passed"] and parity["max_abs_diff"] <= parity["tolerance"]
    assert parity["top1_agreement"] >= parity["min_top1_agreement"] and parity["rows"] > 0
    assert record["benchmark"]["latency_s"]["p95"] > 0 and set(record["benchmark"]["throughput"]) == {"32", "64"}
    assert record["serve"] == "mlestar serve bundle" and record["bundle_size_bytes"] > 0
    schema = panel["json"]["bundle/schema.json"]
    assert all({"name", "kind", "nullable", "range", "categories"} <= set(c) for c in schema["columns"])
    assert set(panel["json"]["drift.json"]["psi"]) == {c["name"] for c in schema["columns"]}
    assert any(f["path"].endswith("bundle/model.onnx") for f in panel["files"])


def test_history_of_a_table_run_is_empty_not_an_error(table_client: TestClient, finished_table_run: Run) -> None:
    history = table_client.get(f"/api/runs/{finished_table_run[1]}/history").json()
    assert (history["rows"], history["source"], history["planned_epochs"]) == ([], None, None)


@pytest.mark.parametrize("config, domain", [
    ({"data": {"source": "table", "dataset": "iris"}}, "tables"),
    ({"data": {"source": "digits"}}, "images"),
    ({"data": "table"}, "images"),
    (["not", "a", "mapping"], "images"),
])
def test_run_domain_reads_data_source(tmp_path: Path, config: Any, domain: str) -> None:
    write_json(tmp_path / "config.json", config)
    assert run_domain(tmp_path) == domain


@pytest.mark.parametrize("text", [None, "{not json", "\xff\xfe"])
def test_run_domain_of_a_missing_or_broken_config_is_images(tmp_path: Path, text: str | None) -> None:
    if text is not None:
        (tmp_path / "config.json").write_bytes(text.encode("latin-1"))
    assert run_domain(tmp_path) == "images"


def test_non_finite_numbers_in_a_stage_file_reach_the_browser_as_null(tmp_path: Path) -> None:
    # a PSI over no rows is NaN, which Python writes as a bare NaN that strict JSON cannot carry
    run = synthetic_run(tmp_path, "nan", config={"data": {"source": "table"}})
    (run / "07_deployment").mkdir()
    (run / "07_deployment" / "drift.json").write_text('{"psi": {"a": NaN, "b": 0.5, "c": Infinity}}')
    response = TestClient(create_app(tmp_path)).get("/api/runs/nan/stages/deployment")
    assert response.status_code == 200
    assert response.json()["domain"] == "tables"
    assert response.json()["json"]["drift.json"] == {"psi": {"a": None, "b": 0.5, "c": None}}


def test_tables_js_has_a_renderer_for_every_stage() -> None:
    """Without a browser: the exported renderer map names exactly the seven stages, each a defined function."""
    text = TABLES_JS.read_text(encoding="utf-8")
    block = re.search(r"export const TABLE_RENDERERS = \{(.*?)\};", text, re.S)
    assert block, "tables.js exports TABLE_RENDERERS"
    entries = [e.strip() for e in block.group(1).split(",") if e.strip()]
    mapping = dict((e.split(":")[0].strip(), e.split(":")[-1].strip()) for e in entries)
    assert set(mapping) == set(STAGE_ORDER)
    for function in mapping.values():
        assert re.search(rf"^function {function}\(panel", text, re.M), function
