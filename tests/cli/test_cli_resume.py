"""A run killed mid-training resumes from its last checkpoint and finishes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.tracking.audit import read_records
from mlestar.workflow.inspect import list_runs, verify_run_audit

EPOCHS = 20


def start_run(tmp_path: Path) -> subprocess.Popen:
    config = {"project": {"name": "killme"}, "data": {"source": "digits"},
              "training": {"epochs": EPOCHS, "batch_size": 32, "num_threads": 1},
              "refinement": {"enabled": False}, "deployment": {"formats": ["torchscript"]}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.Popen([sys.executable, "-m", "mlestar", "run", str(path), "--runs-dir", str(tmp_path / "runs")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_checkpoint(runs_dir: Path, proc: subprocess.Popen, timeout: float = 120) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = list(runs_dir.glob("*/04_implementation/checkpoints/last.pt"))
        if found:
            return found[0]
        assert proc.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_kill_mid_training_then_resume(tmp_path: Path) -> None:
    proc = start_run(tmp_path)
    wait_for_checkpoint(tmp_path / "runs", proc)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    [state] = list_runs(tmp_path / "runs")
    assert state.stage("implementation")["status"] == "running"  # killed: nothing got to say otherwise
    result = CliRunner().invoke(app, ["run", "--resume", state.run_id, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "resumed training from the checkpoint after epoch" in result.output
    run_dir = tmp_path / "runs" / state.run_id
    resumed = [r for r in read_records(run_dir / "audit.jsonl") if r["event"] == "training_resumed"]
    assert resumed and 1 <= resumed[0]["data"]["from_epoch"] < EPOCHS
    final = json.loads((run_dir / "run.json").read_text())
    assert final["status"] == "passed"
    assert final["metrics"]["epochs_completed"] == EPOCHS
    assert final["stages"]["action_planning"]["attempts"] == 1  # earlier stages were not redone
    assert len(json.loads((run_dir / "04_implementation" / "history.json").read_text())) == EPOCHS
    assert verify_run_audit(run_dir).ok
