"""The cache verifies recorded files before it reuses a stage, and reuse never shares a file between runs."""

from __future__ import annotations

import os
from pathlib import Path

from tiny_workflow import tiny_config
from mlestar.config.catalog import stage_folder
from mlestar.workflow.runner import RunOptions, run_workflow
from mlestar.workflow.state import RunState


def rerun(runs_dir: Path) -> tuple[RunState, list[str]]:
    lines: list[str] = []
    state = run_workflow(tiny_config(runs_dir), RunOptions(runs_dir=runs_dir, report=lines.append))
    assert state.status == "passed", "\n".join(lines)
    return state, lines


def status(state: RunState, stage: str) -> str:
    return str(state.stage(stage)["status"])


def test_a_corrupted_file_is_not_reused_and_the_stage_says_why(run_copy: tuple[Path, str]) -> None:
    runs_dir, first = run_copy
    metrics = runs_dir / first / stage_folder("evaluation") / "metrics.json"
    metrics.write_text("{bad")
    state, lines = rerun(runs_dir)
    assert status(state, "implementation") == "skipped"
    assert status(state, "evaluation") == "passed"  # executed again, not linked in corrupted
    assert any(f"not reusing run {first}: 05_evaluation/metrics.json changed since it was recorded" in line
               for line in lines)
    # everything downstream ran on the new evaluation, and the bad file stayed where it was
    assert status(state, "deployment") == "passed"
    assert metrics.read_text() == "{bad"
    assert (runs_dir / state.run_id / stage_folder("evaluation") / "metrics.json").read_text().startswith("{")


def test_a_deleted_declared_output_makes_the_stage_run(run_copy: tuple[Path, str]) -> None:
    runs_dir, first = run_copy
    (runs_dir / first / stage_folder("deployment") / "bundle" / "model.ts").unlink()
    state, lines = rerun(runs_dir)
    assert status(state, "deployment") == "passed"
    assert (runs_dir / state.run_id / stage_folder("deployment") / "bundle" / "model.ts").is_file()
    assert any("07_deployment/bundle/model.ts is missing" in line for line in lines)


def test_a_deleted_undeclared_file_makes_the_stage_run(run_copy: tuple[Path, str]) -> None:
    runs_dir, first = run_copy
    events = next((runs_dir / first / stage_folder("implementation") / "tensorboard").iterdir())
    events.unlink()
    state, lines = rerun(runs_dir)
    assert status(state, "situation_analysis") == "skipped"
    assert status(state, "implementation") == "passed"
    assert any(f"{events.name} is missing" in line for line in lines)


def test_a_touched_but_unchanged_file_still_verifies(run_copy: tuple[Path, str]) -> None:
    runs_dir, first = run_copy
    plan = runs_dir / first / stage_folder("action_planning") / "plan.json"
    os.utime(plan, ns=(plan.stat().st_atime_ns, plan.stat().st_mtime_ns + 10**9))  # mtime moves, bytes do not
    state, _ = rerun(runs_dir)
    assert {status(state, s) for s in ("action_planning", "implementation", "deployment")} == {"skipped"}


def test_reused_files_are_copies_so_an_edit_never_reaches_another_run(run_copy: tuple[Path, str]) -> None:
    runs_dir, first = run_copy
    second, _ = rerun(runs_dir)
    original = runs_dir / first / stage_folder("evaluation") / "report.md"
    copy = runs_dir / second.run_id / stage_folder("evaluation") / "report.md"
    assert copy.read_bytes() == original.read_bytes()
    assert copy.stat().st_ino != original.stat().st_ino
    before = original.read_bytes()
    with open(copy, "ab") as fh:  # an edit in place, as an editor or a script would make
        fh.write(b"\nedited by hand\n")
    assert original.read_bytes() == before
    third, lines = rerun(runs_dir)
    assert status(third, "evaluation") == "skipped"  # from the newest intact execution
    assert any(f"not reusing run {second.run_id}: 05_evaluation/report.md changed" in line for line in lines)
    assert (runs_dir / third.run_id / stage_folder("evaluation") / "report.md").read_bytes() == before
