"""The runner: caching, partial re-runs, gates with loop-backs, exhausted gates, --only/--from."""

from pathlib import Path

import pytest

from tiny_workflow import run_tiny, tiny_config
from mlestar.config.catalog import STAGE_ORDER, stage_folder
from mlestar.errors import MlestarError
from mlestar.tracking.audit import read_records
from mlestar.workflow.inspect import verify_run_audit
from mlestar.workflow.runner import RunOptions, run_workflow
from mlestar.workflow.state import RunState


def statuses(state: RunState) -> dict[str, str]:
    return {name: state.stage(name)["status"] for name in STAGE_ORDER}


def test_unchanged_rerun_skips_every_stage_and_says_why(run_copy: tuple[Path, str]) -> None:
    runs_dir, first = run_copy
    lines: list[str] = []
    state = run_workflow(tiny_config(runs_dir), RunOptions(runs_dir=runs_dir, report=lines.append))
    assert state.status == "passed"
    assert set(statuses(state).values()) == {"skipped"}, "\n".join(lines)
    assert all(state.stage(n)["cached_from"] == first for n in STAGE_ORDER)
    assert sum(f"unchanged since run {first}" in line for line in lines) == 7
    # cached outputs are really there, with the same bytes
    original = runs_dir / first / stage_folder("deployment") / "bundle" / "manifest.json"
    copy = runs_dir / state.run_id / stage_folder("deployment") / "bundle" / "manifest.json"
    assert copy.read_bytes() == original.read_bytes()
    assert state.data["metrics"]["test_accuracy"] == RunState.load(runs_dir / first).data["metrics"]["test_accuracy"]


def test_changing_a_training_parameter_reruns_from_planning(run_copy: tuple[Path, str]) -> None:
    runs_dir, _ = run_copy
    state = run_tiny(runs_dir, training={"learning_rate": 0.08})
    assert statuses(state) == {
        "situation_analysis": "skipped", "task_definition": "skipped", "action_planning": "passed",
        "implementation": "passed", "evaluation": "passed", "refinement": "passed", "deployment": "passed"}
    plan = (runs_dir / state.run_id / stage_folder("action_planning") / "plan.json").read_text()
    assert '"learning_rate": 0.08' in plan


def test_changing_only_deployment_reruns_only_deployment(run_copy: tuple[Path, str]) -> None:
    runs_dir, _ = run_copy
    state = run_tiny(runs_dir, deployment={"formats": ["torchscript"]})
    assert [n for n, s in statuses(state).items() if s == "passed"] == ["deployment"]
    assert state.data["metrics"]["onnx_max_abs_diff"] is None


def test_failed_gate_loops_back_with_a_recorded_remedy_then_passes(tmp_path: Path) -> None:
    gate = {"metric": "epochs_completed", "op": ">=", "threshold": 4, "on_fail": {"max_attempts": 3}}
    state = run_tiny(tmp_path / "runs", gates=[gate], refinement={"enabled": False})
    assert state.status == "passed"
    assert [g["passed"] for g in state.data["gates"]] == [False, True]
    [adjustment] = state.data["adjustments"]
    assert (adjustment["remedy"], adjustment["diagnosis"], adjustment["return_to"]) == \
        ("increase_epochs", "undertrained", "action_planning")
    assert state.stage("implementation")["attempts"] == 2
    assert state.data["metrics"]["epochs_completed"] == 4
    run_dir = tmp_path / "runs" / state.run_id
    assert (run_dir / "_attempts" / "04_implementation-attempt1" / "model.pt").exists()
    decisions = [r for r in read_records(run_dir / "audit.jsonl") if r["event"] == "decision"
                 and r["data"]["what"] == "remedy"]
    assert decisions[0]["data"]["choice"] == "increase_epochs"
    assert "remedy increase_epochs" in (run_dir / stage_folder("action_planning") / "plan.md").read_text()
    [change] = [r["data"] for r in read_records(run_dir / "audit.jsonl") if r["event"] == "decision"
                and r["data"]["what"] == "plan_change"]
    assert change["choice"] == f"increase_epochs (gate {adjustment['gate']}): epochs: 2 -> 4"
    assert change["changes"] == [{"field": "epochs", "value": 4}]
    assert change["reason"] == f"remedy increase_epochs after gate {adjustment['gate']!r} (undertrained)"


def test_gate_that_exhausts_its_attempts_fails_the_run_with_a_summary(tmp_path: Path) -> None:
    gate = {"name": "tiny model", "metric": "model_size", "op": "<=", "threshold": "1KB",
            "on_fail": {"max_attempts": 2}}
    state = run_tiny(tmp_path / "runs", gates=[gate], refinement={"enabled": False})
    assert state.status == "failed"
    failure = state.data["failure"]
    assert failure["gate"] == "tiny model"
    assert len(failure["values"]) == 2 and failure["values"][1] < failure["values"][0]  # simplify_model shrank it
    assert failure["remedies_tried"] == ["simplify_model"]
    assert "failed 2 time(s)" in failure["message"]
    assert state.stage("deployment")["status"] == "pending"
    assert verify_run_audit(tmp_path / "runs" / state.run_id).ok


def test_only_reruns_one_stage(run_copy: tuple[Path, str]) -> None:
    runs_dir, _ = run_copy
    options = RunOptions(runs_dir=runs_dir, only_stage="evaluation")
    state = run_workflow(tiny_config(runs_dir), options)
    assert state.status == "partial"
    assert statuses(state)["evaluation"] == "passed"
    assert statuses(state)["refinement"] == "pending"
    assert statuses(state)["implementation"] == "skipped"


def test_only_without_earlier_results_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MlestarError, match="no completed or cached result"):
        run_workflow(tiny_config(tmp_path / "runs"), RunOptions(runs_dir=tmp_path / "runs", only_stage="evaluation"))


def test_from_forces_later_stages(run_copy: tuple[Path, str]) -> None:
    runs_dir, _ = run_copy
    state = run_workflow(tiny_config(runs_dir), RunOptions(runs_dir=runs_dir, from_stage="refinement"))
    assert statuses(state)["evaluation"] == "skipped"
    assert statuses(state)["refinement"] == "passed" and statuses(state)["deployment"] == "passed"


def test_stage_one_keeps_its_cache_key_when_the_data_moves_and_loses_it_when_the_data_changes(
        tmp_path: Path) -> None:
    """The key holds the data's content hash, not where it lies: a moved project keeps its cache hits."""
    from tiny_workflow import tiny_table_config

    from mlestar.workflow.runner import RunOptions, Runner
    from mlestar.workflow.stage import create_stage

    rows = "x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(40))
    keys = []
    for folder, text in (("a", rows), ("b", rows), ("c", rows + "41,1\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "t.csv").write_text(text)
        loaded = tiny_table_config(tmp_path / "runs", data={"source": "table", "dataset": None,
                                                            "path": str(tmp_path / folder / "t.csv"), "target": "y"})
        runner = Runner(loaded, RunOptions(runs_dir=tmp_path / "runs"))
        keys.append(runner._fingerprint(create_stage("situation_analysis", "tables")))
    assert keys[0] == keys[1] != keys[2]


def test_only_the_data_locations_leave_a_key_and_only_where_the_content_is_keyed() -> None:
    from mlestar.stages.common import DATASET_REF
    from mlestar.stages.tables.common import DATASET_REF as TABLE_DATASET_REF
    from mlestar.workflow.runner import without_locations
    from mlestar.workflow.stage import DATASET_REF as DATASET_RECORD
    from mlestar.workflow.stage import STAGE_ORDER, stage_class

    config = {"data": {"source": "imagefolder", "path": "/x/a.tgz", "cache_dir": "/c", "image_size": 32},
              "seed": 0}
    assert without_locations(config) == {"data": {"source": "imagefolder", "image_size": 32}, "seed": 0}
    assert without_locations({"seed": 0}) == {"seed": 0}
    assert DATASET_RECORD == DATASET_REF == TABLE_DATASET_REF
    for domain in ("images", "tables"):  # every stage that reads data settings is keyed on the content
        for name in STAGE_ORDER:
            cls = stage_class(name, domain)
            if "data" in cls.config_paths:
                assert cls.uses_data_fingerprint or DATASET_RECORD in cls.inputs, (domain, name)


def test_a_reused_stage_whose_gate_fails_counts_as_an_attempt(tmp_path: Path) -> None:
    """Run 2 reuses run 1's stage 4; its gate fails on that result: attempt 1, archived as such, then 2."""
    from tiny_workflow import run_tiny

    runs = tmp_path / "runs"
    first = run_tiny(runs, refinement={"enabled": False})
    assert first.status == "passed" and first.stage("implementation")["attempts"] == 1
    gate = {"metric": "epochs_completed", "op": ">=", "threshold": 1000, "on_fail": {"max_attempts": 2}}
    second = run_tiny(runs, refinement={"enabled": False}, gates=[gate])
    entry = second.stage("implementation")
    assert second.status == "failed" and entry["attempts"] == 2  # reused (attempt 1), re-executed (attempt 2)
    attempts = sorted(p.name for p in (runs / second.run_id / "_attempts").iterdir())
    assert "04_implementation-attempt1" in attempts and not [a for a in attempts if a.endswith("-attempt0")]
    assert [g["attempt"] for g in second.data["gates"] if g["metric"] == "epochs_completed"] == [1, 2]


@pytest.mark.parametrize("domain", ["images", "tables"])
def test_only_stage_7_is_keyed_on_the_whole_package_it_ships(domain: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit anywhere in mlestar changes the wheel stage 7 bundles: a cached stage 7 must not keep the old one."""
    from tiny_workflow import tiny_config, tiny_table_config

    import mlestar.tracking.wheel as wheel
    from mlestar.workflow.runner import RunOptions, Runner
    from mlestar.workflow.stage import STAGE_ORDER, create_stage

    loaded = (tiny_config if domain == "images" else tiny_table_config)(tmp_path / "runs")
    runner = Runner(loaded, RunOptions(runs_dir=tmp_path / "runs"))
    monkeypatch.setattr(Runner, "_input_hash", lambda self, stage, ref: "same inputs")
    keys = []
    for digest in ("source A", "source B"):
        monkeypatch.setattr(wheel, "package_digest", lambda digest=digest: digest)
        keys.append({name: runner._fingerprint(create_stage(name, domain)) for name in STAGE_ORDER})
    changed = [name for name in STAGE_ORDER if keys[0][name] != keys[1][name]]
    assert changed == ["deployment"]
