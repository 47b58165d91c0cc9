"""Lineage: every artifact with its hash, size, producer and consumers."""

from pathlib import Path

from mlestar.utils.io import sha256_file
from mlestar.workflow.inspect import lineage


def test_lineage_links_producers_and_consumers(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    report = lineage(runs_dir / run_id)
    rows = {row["path"]: row for row in report["artifacts"]}
    model = rows["04_implementation/model.pt"]
    assert model["producer"] == "implementation"
    assert model["sha256"] == sha256_file(runs_dir / run_id / "04_implementation" / "model.pt")
    assert set(model["consumers"]) == {"evaluation", "refinement"}
    plan = rows["03_action_planning/plan.json"]
    assert set(plan["consumers"]) == {"implementation", "evaluation", "refinement"}
    dataset = rows["01_situation_analysis/dataset.json"]
    assert set(dataset["consumers"]) == set(report["config_inputs"]) - {"situation_analysis"}
    assert "training" in report["config_inputs"]["action_planning"]


def test_lineage_of_one_artifact(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    report = lineage(runs_dir / run_id, "bundle/manifest.json")
    [row] = report["artifacts"]
    assert row["producer"] == "deployment" and row["size"] > 0
