"""A run killed mid-training resumes from its last checkpoint and finishes.

The kill is a named fault point (:mod:`mlestar.utils.faults`), not a timer:
the child process SIGKILLs itself right after its third checkpoint write, so
the test kills at the same epoch however fast or loaded the machine is.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.tracking.audit import read_records
from mlestar.utils import faults
from mlestar.workflow.inspect import list_runs, verify_run_audit

EPOCHS = 5
KILLED_AFTER = 3  # epochs whose checkpoint was written when the process died
# Only bounds a hang; the run itself needs seconds.
CHILD_DEADLINE_S = 600


def run_until_killed(tmp_path: Path) -> int:
    """``mlestar run`` in a child armed to die after checkpoint ``KILLED_AFTER``; returns its exit code."""
    config = {"project": {"name": "killme"}, "data": {"source": "digits"},
              "training": {"epochs": EPOCHS, "batch_size": 32, "num_threads": 1},
              "refinement": {"enabled": False}, "deployment": {"formats": ["torchscript"]}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    # Armed in the child's environment only: this process resumes the run and must not die.
    env = {**os.environ, faults.ENV: f"kill@write:04_implementation/checkpoints/last.pt:after#{KILLED_AFTER}"}
    proc = subprocess.run([sys.executable, "-m", "mlestar", "run", str(path), "--runs-dir", str(tmp_path / "runs")],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=CHILD_DEADLINE_S)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed at its fault point:\n{proc.stdout[-3000:]}"
    return proc.returncode


def test_kill_mid_training_then_resume(tmp_path: Path) -> None:
    run_until_killed(tmp_path)
    [state] = list_runs(tmp_path / "runs")
    on_disk = json.loads((tmp_path / "runs" / state.run_id / "run.json").read_text())
    assert on_disk["stages"]["implementation"]["status"] == "running"  # killed: nothing got to say otherwise
    assert state.stage("implementation")["status"] == "interrupted"  # its owner process is gone
    result = CliRunner().invoke(app, ["run", "--resume", state.run_id, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert f"resumed training from the checkpoint after epoch {KILLED_AFTER}" in result.output
    run_dir = tmp_path / "runs" / state.run_id
    resumed = [r for r in read_records(run_dir / "audit.jsonl") if r["event"] == "training_resumed"]
    assert [r["data"]["from_epoch"] for r in resumed] == [KILLED_AFTER]
    final = json.loads((run_dir / "run.json").read_text())
    assert final["status"] == "passed"
    assert final["metrics"]["epochs_completed"] == EPOCHS
    assert final["stages"]["action_planning"]["attempts"] == 1  # earlier stages were not redone
    history = json.loads((run_dir / "04_implementation" / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    assert verify_run_audit(run_dir).ok
