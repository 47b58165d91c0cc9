"""Every registered stage honours the contract; new stages are tested for free."""

from pathlib import Path

import pytest

from mlestar.config.catalog import METRICS, STAGE_ORDER, stage_folder
from mlestar.tracking.lineage import LineageDB
from mlestar.utils.io import sha256_file
from mlestar.workflow.stage import list_stages, stage_class
from mlestar.workflow.state import RunState

STAGES = list_stages()


def test_all_seven_stages_are_registered_in_order() -> None:
    assert STAGES == list(STAGE_ORDER)


@pytest.mark.parametrize("name", STAGES)
def test_declarations(name: str) -> None:
    cls = stage_class(name)
    assert cls.title and cls.outputs
    assert cls.metrics(), f"{name} produces no catalogued metric"
    assert all(METRICS[m].stage == name for m in cls.metrics())
    assert len(cls.code_hash()) == 64 and cls.code_hash() == cls.code_hash()


@pytest.mark.parametrize("name", STAGES)
def test_inputs_are_outputs_of_earlier_stages(name: str) -> None:
    cls = stage_class(name)
    for ref in cls.inputs:
        producer, _, rel = ref.partition("/")
        assert STAGE_ORDER.index(producer) < STAGE_ORDER.index(name), ref
        assert rel in stage_class(producer).outputs, f"{ref} is not a declared output of {producer}"


@pytest.mark.parametrize("name", STAGES)
def test_outputs_metrics_and_lineage_after_a_run(name: str, finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    run_dir = runs_dir / run_id
    cls = stage_class(name)
    folder = run_dir / stage_folder(name)
    for out in cls.outputs:
        assert (folder / out).stat().st_size > 0, out
    entry = RunState.load(run_dir).stage(name)
    assert entry["status"] == "passed"
    assert set(entry["metrics"]) == set(cls.metrics())
    records = {r.path: r for r in LineageDB(runs_dir / "lineage.db").artifacts(run_id) if r.stage == name}
    for out in cls.outputs:
        record = records[f"{stage_folder(name)}/{out}"]
        assert record.sha256 == sha256_file(folder / out)
        assert record.size == (folder / out).stat().st_size


def test_only_three_stages_may_read_the_test_split() -> None:
    readers = {name for name in STAGES if stage_class(name).reads_test}
    assert readers == {"situation_analysis", "evaluation", "deployment"}


def test_stages_that_may_not_read_test_get_an_empty_test_split(tmp_path: Path) -> None:
    from tiny_workflow import tiny_config

    from mlestar.workflow.runner import RunOptions, Runner
    from mlestar.workflow.stage import create_stage

    runner = Runner(tiny_config(tmp_path / "runs"), RunOptions(runs_dir=tmp_path / "runs"))
    for name, expect_test in (("implementation", False), ("refinement", False), ("evaluation", True)):
        ctx = runner._context(create_stage(name), tmp_path / name, 1, False)
        assert (len(ctx.dataset().test) > 0) is expect_test, name
        assert len(ctx.dataset().train) > 0
