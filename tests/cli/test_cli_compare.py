"""``mlestar compare``: config and metric differences between runs, for people and as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.workflow.state import RunState
from run_files import two_runs

runner = CliRunner()


@pytest.fixture
def pair(finished_run: tuple[Path, str], tmp_path: Path) -> tuple[Path, str, str]:
    return two_runs(finished_run, tmp_path)


def invoke(*args: Any) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def test_json_lists_only_what_differs(pair: tuple[Path, str, str]) -> None:
    runs_dir, base, other = pair
    result = invoke("compare", base, other, "--json", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema"] == "mlestar.compare/1" and doc["all"] is False
    assert [r["run_id"] for r in doc["runs"]] == [base, other]
    assert {row["key"]: row["values"] for row in doc["config"]} == {"seed": ["0", "7"],
                                                                     "training.epochs": ["2", "3"]}
    metrics = {row["metric"]: row for row in doc["metrics"]}
    accuracy = RunState.load(runs_dir / base).data["metrics"]["test_accuracy"]
    row = metrics["test_accuracy"]
    assert row["values"] == [accuracy, pytest.approx(accuracy + 0.125)] and row["unit"] == "fraction"
    assert row["deltas"][0] is None and row["deltas"][1] == pytest.approx(0.125) and row["best"] == [1]
    assert metrics["val_loss"]["values"][1] is None and metrics["val_loss"]["deltas"] == [None, None]
    assert metrics["made_up_metric"]["values"] == [None, 3.0] and metrics["made_up_metric"]["unit"] == "number"
    assert set(metrics) == {"test_accuracy", "val_loss", "made_up_metric"}  # the other metrics are equal


def test_all_keeps_equal_rows(pair: tuple[Path, str, str]) -> None:
    runs_dir, base, other = pair
    doc = json.loads(invoke("compare", base, other, "--all", "--json", "--runs-dir", runs_dir).stdout)
    assert doc["all"] is True and len(doc["config"]) == doc["config_keys"] > 50
    assert len(doc["metrics"]) == doc["metric_names"]
    config = {row["key"]: row for row in doc["config"]}
    assert config["training.batch_size"] == {"key": "training.batch_size", "values": ["32", "32"], "differs": False}


def test_people_get_tab_separated_rows_with_changes(pair: tuple[Path, str, str]) -> None:
    runs_dir, base, other = pair
    result = invoke("compare", base, other, "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("config: 2 of ") and lines[0].endswith(" keys differ")
    assert lines[1].split("\t") == ["key", base, other] and lines[2].split("\t") == ["seed", "0", "7"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines if "\t" in line}
    assert rows["metric"] == ["metric", base, other, f"change {other}"]
    accuracy = RunState.load(runs_dir / base).data["metrics"]["test_accuracy"]
    assert rows["test_accuracy"] == ["test_accuracy", f"{accuracy:.2%}", f"{accuracy + 0.125:.2%}", "+12.50%"]
    assert rows["val_loss"][2:] == ["-", "-"]


@pytest.mark.parametrize("refs, message", [(["base-run"], "at least two different runs"),
                                           (["base-run", "base-run"], "at least two different runs"),
                                           (["base-run", "nope"], "cannot find run 'nope'")])
def test_bad_selections_exit_2(pair: tuple[Path, str, str], refs: list[str], message: str) -> None:
    result = invoke("compare", *refs, "--runs-dir", pair[0])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
