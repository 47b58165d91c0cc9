"""SIGKILL at named points in every stage; each time, resume and check nothing is lost or corrupted.

A reference run records every fault point it passes (artifact writes, lineage
transactions, audit appends, each with a before and after side). A chain of
child processes then kills one run at a chosen sequence of those points:
each link resumes the run left by the previous kill and dies at the next
point, and a last link finishes it. After every kill the run must show as
interrupted, its audit trail must verify against ``run.json`` and its lineage
must hold nothing that points nowhere; at the end, the run must match the
reference: the same recorded files, with the same bytes where the stage is
deterministic.

The fast test kills at 21 points (3 per stage, rotating through the kinds
in :func:`kinds`) and at 4 points of a cached run; ``-m slow`` kills at every point of
every kind in every stage.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fault_harness import run_child
from mlestar.tracking.lineage import LineageDB
from mlestar.workflow.inspect import list_runs, verify_run_audit
from mlestar.workflow.state import RunState

KILLED = -9
STAGES = ("situation_analysis", "task_definition", "action_planning", "implementation", "evaluation",
          "refinement", "deployment")
# Files whose bytes do not depend on timing (checked on two clean runs); timings, probes and study
# histories differ run to run, and a killed trial makes refinement's study differ too.
DETERMINISTIC = ("01_situation_analysis/dataset.json", "01_situation_analysis/recommendations.json",
                 "04_implementation/model.pt", "05_evaluation/per_class.csv",
                 "07_deployment/bundle/labels.json", "07_deployment/bundle/preprocessing.json",
                 "07_deployment/bundle/reference.json")


def segments(labels: list[str]) -> dict[str, list[str]]:
    """The recorded labels of each stage, in order (from its lineage start to the next stage's)."""
    out: dict[str, list[str]] = {}
    current = None
    for label in labels:
        if label.startswith("lineage:start_stage:") and label.endswith(":before"):
            current = label.split(":")[2]
        if current is not None and label not in out.setdefault(current, []):
            out[current].append(label)
    return out


def kinds(stage: str, labels: list[str]) -> tuple[list[str], list[str]]:
    """One label of each kind of point in a stage, split at the point ``run.json`` records it passed.

    Returns ``(before_done, after_done)``. A kill before that point makes the
    resumed run execute the stage again, so the stage's later points come round
    again; a kill after it does not, so a chain can stop in a stage at most once there.
    """
    writes = [lb for lb in labels if lb.startswith("write:0")]
    before = [f"lineage:start_stage:{stage}:before", f"lineage:start_stage:{stage}:after",
              f"audit:stage_started:{stage}:before", f"audit:stage_started:{stage}:after",
              writes[0].rsplit(":", 1)[0] + ":replace", writes[len(writes) // 2].rsplit(":", 1)[0] + ":before",
              writes[-1].rsplit(":", 1)[0] + ":after",
              f"lineage:complete_stage:{stage}:before", f"lineage:complete_stage:{stage}:after"]
    after = [f"audit:stage_passed:{stage}:before", f"audit:stage_passed:{stage}:after"]
    missing = [p for p in before + after if p not in labels]
    assert not missing, f"stage {stage} never passed {missing}"
    return before, after


def plan_kills(labels: list[str], per_stage: int | None, after_side: int = 0) -> list[str]:
    """Kill points in run order.

    ``per_stage`` points before the stage is recorded done, rotating over the
    kinds (None: all of them), then one after it: ``after_side`` picks which
    (0 or 1), or alternates by stage when ``per_stage`` is set.
    """
    seg = segments(labels)
    out = []
    for index, stage in enumerate(STAGES):
        before, after = kinds(stage, seg[stage])
        chosen = before if per_stage is None else \
            list({before[(index * per_stage + k) % len(before)] for k in range(per_stage)})
        out.extend(sorted(chosen, key=seg[stage].index))
        out.append(after[(index + after_side) % 2 if per_stage is not None else after_side])
    return out


def check_after_kill(runs_dir: Path, run_id: str, point: str) -> None:
    run_dir = runs_dir / run_id
    state = RunState.load(run_dir)
    assert state.status == "interrupted", f"after a kill at {point}: status {state.status}"
    check = verify_run_audit(run_dir)
    assert check.ok, f"after a kill at {point}: {check.problems}"
    problems = LineageDB(runs_dir / "lineage.db").integrity_problems(run_id)
    assert all(p.endswith("execution still marked running") for p in problems), (point, problems)


def passed_files(runs_dir: Path, run_id: str) -> dict[str, str]:
    """Recorded files of the run's finished executions (TensorBoard event names hold a timestamp)."""
    records = LineageDB(runs_dir / "lineage.db").artifacts(run_id)
    return {r.path: r.sha256 for r in records if "/tensorboard/" not in r.path}


def check_final(runs_dir: Path, run_id: str, ref_dir: Path, ref_id: str) -> None:
    run_dir = runs_dir / run_id
    assert RunState.load(run_dir).status == "passed"
    assert verify_run_audit(run_dir).ok
    assert LineageDB(runs_dir / "lineage.db").integrity_problems(run_id) == []
    assert not list(run_dir.rglob(".*.tmp")), "a killed write's temp file was left behind"
    got, want = passed_files(runs_dir, run_id), passed_files(ref_dir, ref_id)
    assert set(got) == set(want)
    assert {p: got[p] for p in DETERMINISTIC} == {p: want[p] for p in DETERMINISTIC}
    for path, sha in got.items():  # what the lineage says is what is on disk
        from mlestar.utils.io import sha256_file

        assert sha256_file(run_dir / path) == sha, path


def kill_chain(points: list[str], runs_dir: Path, cache_dir: Path) -> str:
    """Kill a run at each point in turn (resuming in between); finish it; return its id."""
    run_id = None
    for point in points:
        code = run_child(runs_dir, cache_dir=cache_dir, resume=run_id, kill_at=point)
        assert code == KILLED, f"the run never reached {point} (exit {code})"
        runs = list_runs(runs_dir)
        if run_id is None and runs:
            run_id = runs[0].run_id
        if run_id is not None:
            check_after_kill(runs_dir, run_id, point)
    assert run_child(runs_dir, cache_dir=cache_dir, resume=run_id) == 0
    assert len(list_runs(runs_dir)) == 1, "a resume started a second run"
    assert run_id is not None
    return run_id


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[str], Path]:
    """(runs dir, run id, fault points passed, image cache) of one uninterrupted run."""
    root = tmp_path_factory.mktemp("faults")
    record = root / "points.txt"
    assert run_child(root / "ref", cache_dir=root / "cache", record=record) == 0
    [state] = list_runs(root / "ref")
    return root / "ref", state.run_id, record.read_text().splitlines(), root / "cache"


def test_kills_in_every_stage_lose_nothing(reference: tuple[Path, str, list[str], Path], tmp_path: Path) -> None:
    ref_dir, ref_id, labels, cache = reference
    points = plan_kills(labels, per_stage=2)
    covered = {p.split(":")[0] + ":" + p.rsplit(":", 1)[1] for p in points}
    assert covered >= {"write:before", "write:replace", "write:after", "lineage:before", "lineage:after",
                       "audit:before", "audit:after"}
    run_id = kill_chain(points, tmp_path / "runs", cache)
    check_final(tmp_path / "runs", run_id, ref_dir, ref_id)


def test_kills_while_reusing_cached_stages(reference: tuple[Path, str, list[str], Path], tmp_path: Path) -> None:
    import shutil

    ref_dir, ref_id, _, cache = reference
    runs = tmp_path / "runs"
    shutil.copytree(ref_dir, runs)
    points = ["write:04_implementation/model.pt:replace", "lineage:complete_stage:evaluation:before",
              "audit:stage_skipped:refinement:after", "write:07_deployment/bundle/model.ts:after"]
    run_id = None
    for point in points:
        assert run_child(runs, cache_dir=cache, resume=run_id, kill_at=point) == KILLED, point
        run_id = next(s.run_id for s in list_runs(runs) if s.run_id != ref_id)
        check_after_kill(runs, run_id, point)
    assert run_child(runs, cache_dir=cache, resume=run_id) == 0
    state = RunState.load(runs / run_id)
    assert {state.stage(s)["status"] for s in STAGES} == {"skipped"}
    got, want = passed_files(runs, run_id), passed_files(runs, ref_id)
    assert got == want  # every reused file, byte for byte


@pytest.mark.slow
def test_kills_at_every_point_of_every_stage(reference: tuple[Path, str, list[str], Path], tmp_path: Path) -> None:
    ref_dir, ref_id, labels, cache = reference
    for side in (0, 1):
        runs = tmp_path / f"runs{side}"
        run_id = kill_chain(plan_kills(labels, per_stage=None, after_side=side), runs, cache)
        check_final(runs, run_id, ref_dir, ref_id)
