"""Every JSON endpoint of the dashboard over a real plain run and a real gated run that looped back."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_helpers import running_run, synthetic_run, tree_snapshot, write_checkpoint
from fastapi.testclient import TestClient

from mlestar.config.catalog import STAGE_ORDER
from mlestar.dashboard import create_app

Runs = tuple[Path, str, str]


def test_catalog_lists_the_seven_stages_and_metric_units(client: TestClient) -> None:
    body = client.get("/api/catalog").json()
    assert [s["name"] for s in body["stages"]] == list(STAGE_ORDER)
    assert body["stages"][3]["folder"] == "04_implementation"
    assert body["metrics"]["val_accuracy"] == {**body["metrics"]["val_accuracy"], "unit": "fraction",
                                               "higher_is_better": True}


def test_runs_list_summarizes_both_runs(client: TestClient, dash_runs: Runs) -> None:
    _, plain, gated = dash_runs
    body = client.get("/api/runs").json()
    rows = {r["run_id"]: r for r in body["runs"]}
    assert set(rows) == {plain, gated} and body["total"] == 2
    assert rows[gated]["run_id"] == gated and rows[gated]["created"] > rows[plain]["created"]
    assert [r["run_id"] for r in body["runs"]] == [gated, plain]  # newest first by default
    assert (rows[gated]["gates_passed"], rows[gated]["gates_failed"], rows[gated]["loopbacks"]) == (1, 1, 1)
    primary = rows[plain]["primary"]
    assert primary["metric"] == "test_accuracy" and 0 < primary["value"] <= 1 and primary["value_text"].endswith("%")
    assert rows[plain]["stages_done"] == rows[plain]["stages_total"] == 7
    assert rows[plain]["duration"] > 0


def test_run_detail_has_stages_gates_remedies_and_loopbacks(client: TestClient, dash_runs: Runs) -> None:
    _, _, gated = dash_runs
    body = client.get(f"/api/runs/{gated}").json()
    stages = {s["name"]: s for s in body["stages"]}
    assert list(stages) == list(STAGE_ORDER)
    assert stages["implementation"]["attempts"] == 2 and stages["implementation"]["duration"] > 0
    assert stages["situation_analysis"]["status"] in ("passed", "skipped")
    failed, passed = body["gates"]
    assert (failed["passed"], failed["value"], failed["threshold"]) == (False, 2, 4)
    assert failed["metric"] == "epochs_completed"
    assert failed["remedy"]["remedy"] == "increase_epochs" and failed["remedy"]["return_to"] == "action_planning"
    assert (passed["passed"], passed["value"], passed["remedy"]) == (True, 4, None)
    assert body["loopbacks"] == [{"from": "implementation", "to": "action_planning", "gate": failed["name"],
                                  "remedy": "increase_epochs", "diagnosis": "undertrained",
                                  "evidence": failed["remedy"]["evidence"]}]
    assert any(m["metric"] == "epochs_completed" and m["text"] == "4" for m in body["metrics"])
    assert body["version"]


def test_tool_commands_point_at_the_run(client: TestClient, dash_runs: Runs) -> None:
    runs_dir, plain, _ = dash_runs
    tools = {t["name"]: t for t in client.get(f"/api/runs/{plain}").json()["tools"]}
    run_dir = (runs_dir / plain).resolve()
    assert tools["TensorBoard"]["command"] == f"tensorboard --logdir {run_dir}/04_implementation/tensorboard"
    assert tools["TensorBoard"]["available"]
    assert tools["optuna-dashboard"]["command"] == f"optuna-dashboard sqlite:///{run_dir}/06_refinement/study.db"


@pytest.mark.parametrize("stage, expected", [
    ("situation_analysis", {"json": "dataset.json", "image": "class_distribution.png", "text": "report.md"}),
    ("evaluation", {"json": "metrics.json", "image": "confusion_matrix.png", "table": "per_class.csv"}),
    ("refinement", {"json": "refinement.json", "table": "trials.csv"}),
    ("deployment", {"json": "deployment.json"}),
])
def test_stage_panels_read_reports_plots_and_tables(client: TestClient, dash_runs: Runs, stage: str,
                                                    expected: dict[str, str]) -> None:
    _, plain, _ = dash_runs
    panel = client.get(f"/api/runs/{plain}/stages/{stage}").json()
    assert panel["stage"] == stage and panel["status"] == "passed"
    assert expected["json"] in panel["json"]
    if "image" in expected:
        [image] = [i for i in panel["images"] if i["path"] == expected["image"]]
        assert client.get(image["url"]).headers["content-type"] == "image/png"
    if "table" in expected:
        assert panel["tables"][expected["table"]]["rows"]
    if "text" in expected:
        assert panel["text"][expected["text"]].startswith("#")
    assert all(client.head(f["url"]).status_code == 200 for f in panel["files"][:5])


def test_deployment_panel_lists_the_bundle_with_parity(client: TestClient, dash_runs: Runs) -> None:
    _, plain, _ = dash_runs
    panel = client.get(f"/api/runs/{plain}/stages/deployment").json()
    assert any(f["path"].endswith("bundle/manifest.json") for f in panel["files"])
    parity = panel["json"]["deployment.json"]["parity"]
    assert all(p["passed"] for p in parity.values())


def test_implementation_panel_and_history_carry_the_training_curves(client: TestClient, dash_runs: Runs) -> None:
    _, _, gated = dash_runs
    history = client.get(f"/api/runs/{gated}/history").json()
    assert (history["source"], history["live"], history["planned_epochs"]) == ("history.json", False, 4)
    assert [row["epoch"] for row in history["rows"]] == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr"} <= set(history["rows"][0])
    panel = client.get(f"/api/runs/{gated}/stages/implementation").json()
    assert panel["history"] == history
    assert [a["name"] for a in panel["attempts"]] == ["04_implementation-attempt1"]


def test_lineage_has_hash_size_producer_consumers_and_links(client: TestClient, dash_runs: Runs) -> None:
    runs_dir, plain, _ = dash_runs
    body = client.get(f"/api/runs/{plain}/lineage").json()
    assert body["available"] and len(body["stages"]) == 7
    plan = next(a for a in body["artifacts"] if a["path"] == "03_action_planning/plan.json")
    assert plan["producer"] == "action_planning" and "implementation" in plan["consumers"]
    assert len(plan["sha256"]) == 64 and plan["size"] == (runs_dir / plain / plan["path"]).stat().st_size
    download = client.get(plan["url"])
    assert download.status_code == 200 and download.content == (runs_dir / plain / plan["path"]).read_bytes()
    assert "implementation" in body["config_inputs"]


def test_audit_lists_decisions_in_order_with_a_verified_chain(client: TestClient, dash_runs: Runs) -> None:
    _, _, gated = dash_runs
    body = client.get(f"/api/runs/{gated}/audit").json()
    assert body["verification"] == {"ok": True, "records": len(body["records"]), "problems": []}
    assert [r["seq"] for r in body["records"]] == list(range(len(body["records"])))
    remedy = next(r for r in body["records"] if r["decision"] and r["data"]["what"] == "remedy")
    assert remedy["data"]["choice"] == "increase_epochs"


def test_audit_reports_a_broken_chain(run_copy: tuple[Path, str]) -> None:
    runs_dir, run_id = run_copy
    audit = runs_dir / run_id / "audit.jsonl"
    lines = audit.read_text().splitlines()
    audit.write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    body = TestClient(create_app(runs_dir)).get(f"/api/runs/{run_id}/audit").json()
    assert not body["verification"]["ok"] and body["verification"]["problems"]


def test_files_lists_the_whole_run_folder(client: TestClient, dash_runs: Runs) -> None:
    _, _, gated = dash_runs
    paths = [f["path"] for f in client.get(f"/api/runs/{gated}/files").json()["files"]]
    assert {"run.json", "audit.jsonl", "config.json", "04_implementation/history.json"} <= set(paths)
    assert any(p.startswith("_attempts/04_implementation-attempt1/") for p in paths)


def test_compare_marks_config_and_metric_differences(client: TestClient, dash_runs: Runs) -> None:
    _, plain, gated = dash_runs
    body = client.get("/api/compare", params=[("run", plain), ("run", gated)]).json()
    assert [r["run_id"] for r in body["runs"]] == [plain, gated]
    config = {row["key"]: row for row in body["config"]}
    assert config["gates"]["differs"] and config["refinement.enabled"]["values"] == ["true", "false"]
    assert not config["seed"]["differs"]
    metrics = {row["metric"]: row for row in body["metrics"]}
    assert metrics["epochs_completed"]["values"] == [2, 4] and metrics["epochs_completed"]["best"] == [1]
    assert metrics["num_classes"]["differs"] is False


@pytest.mark.parametrize("params, status", [
    ([("run", "only-one")], 400), ([], 400), ([("run", "a"), ("run", "b")], 404)])
def test_compare_refuses_bad_selections(client: TestClient, params: list[tuple[str, str]], status: int) -> None:
    response = client.get("/api/compare", params=params)
    assert response.status_code == status and response.json()["error"]


@pytest.mark.parametrize("url", ["/api/runs/nope", "/api/runs/nope/history", "/api/runs/nope/stages/evaluation",
                                 "/api/runs/nope/lineage", "/api/runs/nope/audit", "/api/runs/nope/files",
                                 "/runs/nope", "/runs/nope/files/run.json"])
def test_unknown_runs_are_404(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404 and "nope" in response.json()["error"]


def test_unknown_stage_is_404(client: TestClient, dash_runs: Runs) -> None:
    response = client.get(f"/api/runs/{dash_runs[1]}/stages/training")
    assert response.status_code == 404 and "situation_analysis" in response.json()["error"]


def test_live_training_curves_come_from_the_checkpoint(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    run_dir = running_run(runs_dir, "live-run", epochs_done=2, planned=6)
    client = TestClient(create_app(runs_dir))
    first = client.get("/api/runs/live-run/history").json()
    assert (first["source"], first["live"], first["planned_epochs"]) == ("checkpoints/last.pt", True, 6)
    assert [r["epoch"] for r in first["rows"]] == [1, 2]
    version = client.get("/api/runs/live-run").json()["version"]
    write_checkpoint(run_dir, 3)
    assert len(client.get("/api/runs/live-run/history").json()["rows"]) == 3
    assert client.get("/api/runs/live-run").json()["version"] != version
    assert client.get("/api/runs").json()["runs"][0]["current_stage"] == "implementation"


@pytest.mark.parametrize("plan_text", ['{"training": {"epochs": 6}}', '{"training": ', ""])
def test_a_plan_that_is_not_valid_gives_no_planned_epochs(tmp_path: Path, plan_text: str) -> None:
    runs_dir = tmp_path / "runs"
    run_dir = running_run(runs_dir, "edited", epochs_done=1, planned=6)
    (run_dir / "03_action_planning" / "plan.json").write_text(plan_text, encoding="utf-8")
    body = TestClient(create_app(runs_dir)).get("/api/runs/edited/history").json()
    assert body["planned_epochs"] is None and [r["epoch"] for r in body["rows"]] == [1]


def test_a_checkpoint_that_is_not_a_plain_tensor_file_gives_no_curves(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    run_dir = running_run(runs_dir, "odd", epochs_done=1)
    (run_dir / "04_implementation" / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    body = TestClient(create_app(runs_dir)).get("/api/runs/odd/history").json()
    assert body["rows"] == [] and body["live"]


def test_unreadable_run_json_is_listed_not_fatal(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    synthetic_run(runs_dir, "good")
    (runs_dir / "bad").mkdir()
    (runs_dir / "bad" / "run.json").write_text("{not json")
    rows = {r["run_id"]: r for r in TestClient(create_app(runs_dir)).get("/api/runs").json()["runs"]}
    assert rows["bad"]["status"] == "unreadable" and "unreadable" in rows["bad"]["error"]
    assert rows["good"]["status"] == "passed"


def test_a_missing_runs_folder_lists_nothing(tmp_path: Path) -> None:
    body = TestClient(create_app(tmp_path / "absent")).get("/api/runs").json()
    assert (body["total"], body["runs"]) == (0, [])


def test_no_endpoint_changes_the_runs_folder(client: TestClient, dash_runs: Runs) -> None:
    runs_dir, plain, gated = dash_runs
    before = tree_snapshot(runs_dir)
    for run_id in (plain, gated):
        for suffix in ["", "/history", "/lineage", "/audit", "/files"] + [f"/stages/{s}" for s in STAGE_ORDER]:
            assert client.get(f"/api/runs/{run_id}{suffix}").status_code == 200
    client.get("/api/runs")
    client.get("/api/compare", params=[("run", plain), ("run", gated)])
    assert tree_snapshot(runs_dir) == before


def test_a_gate_that_ran_out_of_attempts_shows_no_remedy_for_its_last_failure(tmp_path: Path) -> None:
    check = {"name": "g", "stage": "evaluation", "metric": "model_size", "op": "<=", "threshold": 1000.0,
             "passed": False, "message": "m"}
    run_dir = synthetic_run(tmp_path, "exhausted", status="failed",
                            gates=[{**check, "value": 9e4, "attempt": 1}, {**check, "value": 5e4, "attempt": 2}])
    data = (run_dir / "run.json").read_text().replace('"adjustments": []', '"adjustments": [{"gate": "g", '
                                                      '"remedy": "simplify_model", "diagnosis": "too_large", '
                                                      '"evidence": "e", "return_to": "action_planning"}]')
    (run_dir / "run.json").write_text(data)
    first, last = TestClient(create_app(tmp_path)).get("/api/runs/exhausted").json()["gates"]
    assert first["remedy"]["remedy"] == "simplify_model" and not first["exhausted"]
    assert last["remedy"] is None and last["exhausted"] and last["value_text"] == "0.05 MB"
