"""``--json`` on the inspection commands, piped (non-terminal) output, and ``show``'s stage order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.utils.io import sha256_file
from mlestar.workflow.stage import list_stages
from mlestar.workflow.state import RunState
from run_files import copy_run

runner = CliRunner()


def invoke(*args: Any, width: int | None = None) -> Any:
    return runner.invoke(app, [str(a) for a in args], terminal_width=width)


def parsed(*args: Any) -> dict[str, Any]:
    """Run a command with --json; its stdout must be one JSON document and nothing else."""
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_status_json_describes_the_finished_run(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    recorded = RunState.load(runs_dir / run_id).data
    doc = parsed("status", "--runs-dir", runs_dir)
    assert doc["schema"] == "mlestar.status/1" and doc["runs_dir"] == str(runs_dir)
    [run] = doc["runs"]
    assert run["run_id"] == run_id and run["status"] == "passed" and run["project"] == "tiny"
    assert (run["stages_done"], run["stages_total"]) == (7, 7)
    assert run["primary_metric"] == "test_accuracy" and run["primary_unit"] == "fraction"
    assert run["primary_value"] == recorded["metrics"]["test_accuracy"]
    assert run["duration_s"] == pytest.approx(recorded["ended"] - recorded["created"])


def test_status_json_of_an_empty_folder_is_an_empty_list(tmp_path: Path) -> None:
    assert parsed("status", "--runs-dir", tmp_path / "none")["runs"] == []


def test_show_json_lists_stages_in_workflow_order_with_their_records(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    recorded = RunState.load(runs_dir / run_id).data
    doc = parsed("show", run_id[:12], "--runs-dir", runs_dir)
    assert doc["schema"] == "mlestar.show/1" and doc["run_id"] == run_id and doc["domain"] == "images"
    assert [s["name"] for s in doc["stages"]] == list_stages("images")
    assert list(recorded["stages"]) != list_stages("images")  # run.json's keys are sorted: the order is shown's
    evaluation = doc["stages"][4]
    assert evaluation["folder"] == "05_evaluation" and evaluation["status"] == "passed"
    assert evaluation["summary"] == recorded["stages"]["evaluation"]["summary"]
    assert evaluation["metrics"]["test_accuracy"] == recorded["metrics"]["test_accuracy"]
    assert doc["metrics"]["num_params"] == recorded["metrics"]["num_params"]
    assert doc["gates"] == [] and doc["adjustments"] == [] and doc["failure"] is None


def test_show_prints_stages_in_workflow_order(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    result = invoke("show", run_id, "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]
    assert rows[0] == ["stage", "status", "attempts", "seconds", "summary"]
    assert [row[0] for row in rows[1:]] == list_stages("images")
    summary = RunState.load(runs_dir / run_id).stage("implementation")["summary"]
    assert rows[4][1] == "passed" and rows[4][4] == summary


def test_lineage_json_hashes_match_the_files(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    doc = parsed("lineage", "latest", "model.pt", "--runs-dir", runs_dir)
    assert doc["schema"] == "mlestar.lineage/1" and doc["artifact_filter"] == "model.pt"
    rows = {row["path"]: row for row in doc["artifacts"]}
    model = rows["04_implementation/model.pt"]
    path = runs_dir / run_id / "04_implementation" / "model.pt"
    assert model["sha256"] == sha256_file(path) and model["size"] == path.stat().st_size
    assert model["producer"] == "implementation" and "evaluation" in model["consumers"]
    assert "seed" in doc["config_inputs"]["implementation"]


def test_audit_json_holds_every_record(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    lines = (runs_dir / run_id / "audit.jsonl").read_text().splitlines()
    doc = parsed("audit", run_id, "--runs-dir", runs_dir)
    assert doc["schema"] == "mlestar.audit/1" and doc["verification"] is None
    assert doc["records"] == [json.loads(line) for line in lines]
    assert doc["records"][-1]["event"] == "run_finished"


def test_audit_verify_json(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    doc = parsed("audit", run_id, "--verify", "--runs-dir", runs_dir)
    count = RunState.load(runs_dir / run_id).data["audit"]["count"]
    assert doc["records"] is None and doc["verification"] == {"ok": True, "records": count, "problems": [],
                                                              "notes": []}


def test_audit_verify_json_reports_an_edit_and_exits_1(run_copy: tuple[Path, str]) -> None:
    runs_dir, run_id = run_copy
    path = runs_dir / run_id / "audit.jsonl"
    path.write_text(path.read_text().replace('"stage_passed"', '"stage_failed"', 1))
    result = invoke("audit", run_id, "--verify", "--json", "--runs-dir", runs_dir)
    assert result.exit_code == 1
    verification = json.loads(result.stdout)["verification"]
    assert verification["ok"] is False and any("record edited" in p for p in verification["problems"])


def test_models_json_reports_measured_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlestar.evaluation import model_summary

    # one real model keeps this fast; the full registry is measured by test_cli.py's models test
    monkeypatch.setattr(model_summary, "summarize_all",
                        lambda **shape: [model_summary.summarize("small_cnn", **shape)])
    doc = parsed("models", "--image-size", "8", "--channels", "1", "--classes", "3")
    assert doc["schema"] == "mlestar.models/1"
    assert doc["input"] == {"image_size": 8, "channels": 1, "classes": 3}
    [row] = doc["models"]
    measured = model_summary.summarize("small_cnn", image_size=8, in_channels=1, num_classes=3)
    assert row == {"name": "small_cnn", "width": measured.width, "params": measured.params,
                   "flops": measured.flops, "size_bytes": measured.size_bytes, "description": measured.description}
    assert row["params"] > 0 and row["size_bytes"] >= 4 * row["params"]  # fp32: 4 bytes per parameter


def test_json_turns_nan_into_null(finished_run: tuple[Path, str], tmp_path: Path) -> None:
    def nan_accuracy(data: dict[str, Any]) -> None:
        data["metrics"]["test_accuracy"] = float("nan")

    copy_run(finished_run[0] / finished_run[1], tmp_path / "runs", "nan-run", state=nan_accuracy)
    result = invoke("status", "--json", "--runs-dir", tmp_path / "runs")
    assert "NaN" not in result.stdout and json.loads(result.stdout)["runs"][0]["primary_value"] is None


def test_piped_status_never_cuts_a_run_id(finished_run: tuple[Path, str], tmp_path: Path) -> None:
    long_id = "a-very-long-experiment-name-" + "x" * 60 + "-20261202-044028-f52d"
    copy_run(finished_run[0] / finished_run[1], tmp_path / "runs", long_id)
    result = invoke("status", "--runs-dir", tmp_path / "runs", width=30)
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split("\t")[0] == "run" and row.split("\t")[:3] == [long_id, "passed", "7/7"]
    assert "…" not in result.stdout


def test_terminal_tables_fold_instead_of_cutting(finished_run: tuple[Path, str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from mlestar.cli import output

    long_id = "run-" + "y" * 50 + "-tail"
    copy_run(finished_run[0] / finished_run[1], tmp_path / "runs", long_id)
    screen = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=screen, force_terminal=True, width=40, color_system=None))
    result = invoke("status", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    drawn = screen.getvalue()
    body = [line.split("│")[1].strip() for line in drawn.splitlines() if line.startswith("│")]
    assert "".join(body) == long_id and "…" not in drawn  # folded, every character kept
