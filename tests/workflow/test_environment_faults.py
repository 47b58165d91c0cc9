"""Faults of the environment and of the process: each is one clear message, the right exit code, nothing lost.

Exit 2 for environment problems (disk full, read-only, locked), 1 only for
gates, 130/143 for Ctrl-C/SIGTERM. Permission tests drop to the ``nobody``
user when the suite runs as root (root ignores file modes).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import sqlite3
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from typer.testing import CliRunner

from fault_harness import context, run_cli, run_quietly
from mlestar.cli.app import app
from mlestar.tracking.audit import read_records
from mlestar.tracking.lineage import LineageDB
from mlestar.utils import faults
from mlestar.workflow.inspect import list_runs, verify_run_audit
from mlestar.workflow.liveness import RunLock
from mlestar.workflow.state import RunState
from tiny_workflow import TINY, merge

QUICK = merge(TINY, {"refinement": {"enabled": False}, "deployment": {"formats": ["torchscript"]}})


@pytest.fixture(autouse=True)
def _disarm() -> Iterator[None]:
    yield
    faults.disarm()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every user may enter and write (pytest's own are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="mlestar-perm-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block as ``nobody`` when the suite runs as root, so file modes apply."""
    if os.geteuid() != 0:
        yield
        return
    nobody = pwd.getpwnam("nobody")
    os.setegid(nobody.pw_gid)
    os.seteuid(nobody.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def config_file(folder: Path, **extra: object) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(merge(QUICK, dict(extra))))
    path.chmod(0o644)
    return path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def runs_in(runs_dir: Path) -> list[str]:
    return [p.name for p in runs_dir.iterdir() if p.is_dir()] if runs_dir.exists() else []


# disk full -------------------------------------------------------------------------------------------------
def test_a_full_disk_during_training_is_exit_2_naming_the_file_and_resume_finishes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    faults.arm("write:04_implementation/history.json:before", "ENOSPC")
    code, output = cli("run", str(config_file(tmp_path)), "--runs-dir", str(runs))
    assert code == 2
    assert "disk is full" in output and "04_implementation/history.json" in output
    assert "df -h" in output  # the fix, not a database hint
    [state] = list_runs(runs)
    assert state.status == "failed" and state.stage("implementation")["status"] == "failed"
    assert verify_run_audit(runs / state.run_id).ok
    faults.disarm()  # space freed
    code, output = cli("run", "--resume", state.run_id, "--runs-dir", str(runs))
    assert code == 0, output
    assert RunState.load(runs / state.run_id).status == "passed"


def test_a_full_disk_while_creating_the_run_leaves_no_run_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    faults.arm("write:environment.json:replace", "ENOSPC")
    code, output = cli("run", str(config_file(tmp_path)), "--runs-dir", str(runs))
    assert code == 2 and "disk is full" in output
    assert runs_in(runs) == []  # neither a run nor a half-made .creating- folder


def test_sqlite_errors_name_the_real_cause() -> None:
    from mlestar.tracking.lineage import _sqlite_error

    full = _sqlite_error(sqlite3.OperationalError("disk I/O error"), Path("runs/lineage.db"))
    assert "I/O error" in full.message and "df -h" in (full.hint or "") and "move it aside" not in (full.hint or "")
    corrupt = _sqlite_error(sqlite3.DatabaseError("file is not a database"), Path("runs/lineage.db"))
    assert "corrupted" in corrupt.message and "move it aside" in (corrupt.hint or "")
    readonly = _sqlite_error(sqlite3.OperationalError("attempt to write a readonly database"), Path("x.db"))
    assert "read-only" in readonly.message


def test_a_corrupted_lineage_database_is_exit_2_and_leaves_no_run_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "lineage.db").write_bytes(b"this is not a database" * 100)
    code, output = cli("run", str(config_file(tmp_path)), "--runs-dir", str(runs))
    assert code == 2 and "corrupted" in output and "lineage.db" in output
    assert runs_in(runs) == []


# permissions -----------------------------------------------------------------------------------------------
def test_a_read_only_runs_folder_is_exit_2_naming_it(open_dir: Path) -> None:
    runs = open_dir / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    config = config_file(open_dir)
    with unprivileged():
        code, output = cli("run", str(config), "--runs-dir", str(runs))
    assert code == 2
    assert "permission denied" in output and str(runs) in output
    assert runs_in(runs) == []


def test_a_read_only_lineage_database_is_exit_2_naming_it(open_dir: Path) -> None:
    runs = open_dir / "runs"
    runs.mkdir()
    runs.chmod(0o777)
    LineageDB(runs / "lineage.db")  # made by another user, not writable by this one
    (runs / "lineage.db").chmod(0o444)
    config = config_file(open_dir)
    with unprivileged():
        code, output = cli("run", str(config), "--runs-dir", str(runs))
    assert code == 2
    assert "lineage.db" in output and "read-only" in output
    assert runs_in(runs) == []


def test_a_locked_lineage_database_fails_clearly_instead_of_hanging(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    LineageDB(runs / "lineage.db")
    monkeypatch.setattr(LineageDB, "lock_timeout_s", 0.2)
    holder = sqlite3.connect(runs / "lineage.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a long write
    try:
        code, output = cli("run", str(config_file(tmp_path)), "--runs-dir", str(runs))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 2 and "locked" in output and "lineage.db" in output
    assert runs_in(runs) == []


# signals and liveness --------------------------------------------------------------------------------------
def test_ctrl_c_marks_the_run_and_the_execution_interrupted(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    faults.arm("audit:stage_started:implementation:after", "interrupt")
    code, output = cli("run", str(config_file(tmp_path)), "--runs-dir", str(runs))
    assert code == 130
    [state] = list_runs(runs)
    assert state.status == "interrupted" and state.stage("implementation")["status"] == "interrupted"
    executions = LineageDB(runs / "lineage.db").stage_runs(state.run_id)
    assert executions[-1].stage == "implementation" and executions[-1].status == "interrupted"
    assert "resume with: mlestar run --resume" in output


def wait_until_stopped(pid: int, timeout: float = 300) -> None:
    """Until the process has stopped itself at its fault point (state T in /proc)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.05)
    raise AssertionError("the run never reached its stop point")


def test_sigterm_ends_a_run_cleanly_and_it_resumes(tmp_path: Path) -> None:
    runs, log = tmp_path / "runs", tmp_path / "run.log"
    args = ["run", str(config_file(tmp_path)), "--runs-dir", str(runs)]
    proc = context().Process(target=run_cli, args=(args, "stop@audit:stage_started:implementation:after", str(log)))
    proc.start()
    try:
        wait_until_stopped(proc.pid)
        [state] = list_runs(runs)
        assert state.status == "running"  # frozen, but alive: its lock is held
        os.kill(proc.pid, signal.SIGTERM)
        os.kill(proc.pid, signal.SIGCONT)
        proc.join(300)
    finally:
        if proc.is_alive():
            proc.kill()
    output = log.read_text()
    assert proc.exitcode == 143, output
    assert "Traceback" not in output and "terminated (SIGTERM)" in output
    state = RunState.load(runs / state.run_id)
    assert state.status == "interrupted" and state.stage("implementation")["status"] == "interrupted"
    events = [r for r in read_records(runs / state.run_id / "audit.jsonl") if r["event"] == "run_interrupted"]
    assert events and "SIGTERM" in events[0]["data"]["message"]
    assert verify_run_audit(runs / state.run_id).ok
    code, output = cli("run", "--resume", state.run_id, "--runs-dir", str(runs))
    assert code == 0, output


def test_a_killed_run_shows_interrupted_not_running(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = context().Process(target=run_quietly, args=(str(runs), "stop@audit:stage_started:task_definition:after"))
    proc.start()
    try:
        wait_until_stopped(proc.pid)
        assert "running" in cli("status", "--runs-dir", str(runs))[1]
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    finally:
        if proc.is_alive():
            proc.kill()
    code, status = cli("status", "--runs-dir", str(runs))
    assert "interrupted" in status and "running" not in status
    [state] = list_runs(runs)
    shown = cli("show", state.run_id, "--runs-dir", str(runs))[1]
    assert "interrupted" in shown and "killed or crashed" in shown
    assert verify_run_audit(runs / state.run_id).ok


def test_a_live_run_cannot_be_resumed_by_a_second_process(run_copy: tuple[Path, str]) -> None:
    runs_dir, run_id = run_copy
    lock = RunLock(runs_dir / run_id).acquire()  # as if another process were executing it
    try:
        code, output = cli("run", "--resume", run_id, "--runs-dir", str(runs_dir))
    finally:
        lock.release()
    assert code == 2 and "being executed by another process" in output


def test_two_runs_in_one_runs_folder_at_the_same_time(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    procs = [context().Process(target=run_quietly, args=(str(runs), "")) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(600)
        assert proc.exitcode == 0
    states = list_runs(runs)
    assert len(states) == 2 and {s.status for s in states} == {"passed"}
    db = LineageDB(runs / "lineage.db")
    for state in states:
        assert verify_run_audit(runs / state.run_id).ok
        assert db.integrity_problems(state.run_id) == []
        assert {r.path for r in db.artifacts(state.run_id)} >= {"04_implementation/model.pt",
                                                                "07_deployment/bundle/manifest.json"}


def test_files_a_killed_attempt_left_belong_to_that_attempt(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = context().Process(target=run_quietly,
                             args=(str(runs), "kill@write:04_implementation/checkpoints/last.pt:after"))
    proc.start()
    proc.join(600)
    assert proc.exitcode == -signal.SIGKILL
    [state] = list_runs(runs)
    code, output = cli("run", "--resume", state.run_id, "--runs-dir", str(runs))
    assert code == 0, output
    db = LineageDB(runs / "lineage.db")
    executions = [e for e in db.stage_runs(state.run_id) if e.stage == "implementation"]
    assert [e.status for e in executions] == ["interrupted", "passed"]
    killed = {r.path for r in db.stage_artifacts(executions[0].id)}
    passed = {r.path for r in db.stage_artifacts(executions[1].id)}
    folder = runs / state.run_id / "04_implementation" / "tensorboard"
    first, second = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime)
    assert f"04_implementation/tensorboard/{first.name}" in killed - passed
    assert f"04_implementation/tensorboard/{second.name}" in passed
    assert "04_implementation/checkpoints/last.pt" in passed  # rewritten by the attempt that passed
