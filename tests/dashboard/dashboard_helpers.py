"""Helpers for the dashboard tests: synthetic run folders and a real server in a thread."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import uvicorn

from mlestar.config.catalog import STAGE_ORDER, stage_folder
from mlestar.dashboard import create_app
from mlestar.dashboard.security import LOOPBACK_NAMES
from mlestar.workflow.liveness import owner_record
from plan_helpers import legacy_plan_json


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def synthetic_run(runs_dir: Path, run_id: str, *, status: str = "passed", created: float = 1.7e9,
                  project: str = "synthetic", metrics: dict[str, float] | None = None,
                  gates: list[dict[str, Any]] | None = None, stages: dict[str, dict[str, Any]] | None = None,
                  config: dict[str, Any] | None = None) -> Path:
    """A run folder with run.json and config.json only, shaped like the runner writes them.

    A ``running`` run names this test process as its owner, so readers see it as
    alive (running) rather than interrupted, for as long as the test runs.
    """
    run_dir = runs_dir / run_id
    done = {name: {"status": "passed", "attempts": 1, "duration": 1.0} for name in STAGE_ORDER}
    write_json(run_dir / "config.json", config or {"project": {"name": project},
                                                   "task": {"primary_metric": "test_accuracy",
                                                            "targets": {"test_accuracy": 0.9}}})
    write_json(run_dir / "run.json", {
        "run_id": run_id, "project": project, "status": status, "created": created,
        "ended": None if status == "running" else created + 60, "config_hash": "0" * 64, "config_path": None,
        "stages": {**done, **(stages or {})}, "metrics": metrics if metrics is not None else {"test_accuracy": 0.95},
        "gates": gates or [], "gate_failures": {}, "adjustments": [], "loopbacks": [],
        "audit": {"count": 0, "head": None}, "failure": None,
        **({"owner": owner_record()} if status == "running" else {})})
    return run_dir


RUN_STATUSES = ("passed", "failed", "running", "interrupted")


def make_runs(runs_dir: Path, count: int) -> None:
    """``count`` synthetic runs: statuses in rotation, accuracy rising with the index, every 7th without one."""
    for i in range(count):
        gates = [{"name": "acc", "metric": "test_accuracy", "op": ">=", "threshold": 0.9, "passed": i % 3 != 0,
                  "value": 0.5, "stage": "evaluation", "attempt": 1}]
        metrics = {} if i % 7 == 0 else {"test_accuracy": 0.5 + i / 2000}
        synthetic_run(runs_dir, f"run-{i:03d}", status=RUN_STATUSES[i % 4], created=1.7e9 + i * 60,
                      project=f"proj{i % 5}", metrics=metrics, gates=gates)


def running_run(runs_dir: Path, run_id: str, epochs_done: int, planned: int = 6) -> Path:
    """A run whose stage 4 is training: a plan, and a checkpoint holding ``epochs_done`` epochs of history."""
    stages = {name: {"status": "pending", "attempts": 0} for name in STAGE_ORDER[4:]}
    stages["implementation"] = {"status": "running", "attempts": 1, "started": time.time()}
    run_dir = synthetic_run(runs_dir, run_id, status="running", created=time.time(), stages=stages, metrics={})
    write_json(run_dir / stage_folder("action_planning") / "plan.json", legacy_plan_json(epochs=planned))
    write_checkpoint(run_dir, epochs_done)
    return run_dir


def history_rows(epochs: int) -> list[dict[str, float]]:
    """Plausible training curves: loss falling, accuracy rising."""
    return [{"epoch": float(e), "train_loss": 2.0 / e, "val_loss": 2.2 / e, "train_accuracy": 1 - 0.5 / e,
             "val_accuracy": 1 - 0.55 / e, "lr": 0.01 * e, "time": float(e)} for e in range(1, epochs + 1)]


def write_checkpoint(run_dir: Path, epochs: int) -> Path:
    """``checkpoints/last.pt`` as the training loop writes it (only the parts the dashboard reads)."""
    import torch

    path = run_dir / stage_folder("implementation") / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"history": history_rows(epochs), "best_epoch": epochs, "model": {"w": torch.zeros(2)}}, tmp)
    tmp.replace(path)
    return path


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``root`` with (size, mtime_ns), SQLite's transient -wal/-shm files left out."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


SERVER_DEADLINE_S = 60.0  # bounds a server that never starts or stops; it takes milliseconds


@contextmanager
def serving(runs_dir: Path, token: str | None = None) -> Iterator[str]:
    """Serve the dashboard over ``runs_dir`` on a free loopback port; yields the base URL once it listens."""
    app = create_app(runs_dir, token=token, allowed_hosts=LOOPBACK_NAMES)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_DEADLINE_S)
        sock.close()
    assert not thread.is_alive(), f"the dashboard server did not stop within {SERVER_DEADLINE_S:.0f} s"


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Return once uvicorn says it is serving (its ``started`` flag); fail if it died or never does."""
    deadline = time.monotonic() + SERVER_DEADLINE_S
    while not server.started:
        assert thread.is_alive(), "the dashboard server thread exited before it started serving"
        assert time.monotonic() < deadline, f"the dashboard server did not start within {SERVER_DEADLINE_S:.0f} s"
        time.sleep(0.01)
