"""Data-parallel training through torchrun with 2 CPU processes (gloo), inside the workflow."""

import json
from pathlib import Path

from tiny_workflow import run_tiny
from mlestar.tracking.audit import read_records


def test_two_process_ddp_training_in_stage_4(tmp_path: Path) -> None:
    state = run_tiny(tmp_path / "runs", training={"processes": 2, "epochs": 3, "num_threads": 1},
                     refinement={"enabled": False}, deployment={"formats": ["torchscript"]})
    assert state.status == "passed"
    run_dir = tmp_path / "runs" / state.run_id
    out = run_dir / "04_implementation"
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert state.data["metrics"]["val_accuracy"] > 0.5  # 10 classes: chance is 0.1
    job = json.loads((out / "distributed_job.json").read_text())
    assert job["plan"]["processes"] == 2
    decisions = [r["data"] for r in read_records(run_dir / "audit.jsonl") if r["event"] == "decision"]
    assert {"what": "distributed", "choice": 2}.items() <= next(d for d in decisions if d["what"] == "distributed").items()
    assert (out / "checkpoints" / "last.pt").exists()
