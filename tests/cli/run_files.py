"""Small runs folders made from the finished tiny run's own ``run.json`` and ``config.json``.

Inspection commands read only those two files (and lineage/audit, which these
folders lack), so a copy with a few values changed is a second, different run
in milliseconds instead of a minute of training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

Edit = Callable[[dict[str, Any]], None]


def copy_run(source: Path, runs_dir: Path, run_id: str, *, state: Edit | None = None,
             config: Edit | None = None) -> Path:
    """Copy ``source``'s run.json and config.json into ``runs_dir/run_id``, renamed and edited in place."""
    folder = runs_dir / run_id
    folder.mkdir(parents=True)
    data = json.loads((source / "run.json").read_text())
    data["run_id"] = run_id
    data.pop("owner", None)  # no lock file here: a run without an owner is read as recorded
    if state:
        state(data)
    (folder / "run.json").write_text(json.dumps(data))
    saved = json.loads((source / "config.json").read_text())
    if config:
        config(saved)
    (folder / "config.json").write_text(json.dumps(saved))
    return folder


def two_runs(finished_run: tuple[Path, str], root: Path) -> tuple[Path, str, str]:
    """(runs_dir, base id, other id): the other has seed 7, 3 epochs and test accuracy 0.125 higher.

    It also lacks ``val_loss`` and adds ``made_up_metric`` (not in the catalog).
    """
    source = finished_run[0] / finished_run[1]
    runs_dir = root / "runs"
    copy_run(source, runs_dir, "base-run")

    def state(data: dict[str, Any]) -> None:
        data["created"] += 10
        data["metrics"]["test_accuracy"] += 0.125
        del data["metrics"]["val_loss"]
        data["metrics"]["made_up_metric"] = 3.0

    def config(saved: dict[str, Any]) -> None:
        saved["seed"] = 7
        saved["training"]["epochs"] = 3

    copy_run(source, runs_dir, "other-run", state=state, config=config)
    return runs_dir, "base-run", "other-run"



def failed_gate(data: dict[str, Any]) -> None:
    """Edit a run.json as the runner leaves a run whose gate failed, was remedied once, then ran out."""
    data["gates"] = [{"name": "acc", "stage": "evaluation", "metric": "test_accuracy", "op": ">=", "threshold": 0.9,
                      "value": 0.52, "passed": False, "message": "acc: test_accuracy 52.00% < 90.00%",
                      "attempt": 1, "time": 1.0}]
    data["adjustments"] = [{"gate": "acc", "remedy": "increase_epochs", "diagnosis": "underfitting",
                            "evidence": "train 47% < 90%", "value": 0.52, "return_to": "action_planning",
                            "attempt": 2}]
    data.update(status="failed", failure={"gate": "acc", "metric": "test_accuracy", "threshold": 0.9,
                                          "values": [0.52, 0.55], "remedies_tried": ["increase_epochs"],
                                          "message": "gate 'acc' failed 2 time(s)"})
