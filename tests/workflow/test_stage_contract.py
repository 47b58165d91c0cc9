"""Every registered stage honours the contract; new stages are tested for free."""

from pathlib import Path

import pytest

from mlestar.config.catalog import METRICS, STAGE_ORDER, stage_folder
from mlestar.tracking.lineage import LineageDB
from mlestar.utils.io import sha256_file
from mlestar.workflow.stage import DOMAINS, list_stages, stage_class
from mlestar.workflow.state import RunState

STAGES = list_stages()
# Every domain registers all seven stages; the contract is checked for each (domain, stage).
DOMAIN_STAGES = [(domain, name) for domain in DOMAINS for name in list_stages(domain)]


@pytest.mark.parametrize("domain", DOMAINS)
def test_all_seven_stages_are_registered_in_order(domain: str) -> None:
    assert list_stages(domain) == list(STAGE_ORDER)
    assert {stage_class(n, domain).domain for n in STAGE_ORDER} == {domain}


@pytest.mark.parametrize(("domain", "name"), DOMAIN_STAGES)
def test_declarations(domain: str, name: str) -> None:
    cls = stage_class(name, domain)
    assert cls.title and cls.outputs
    assert cls.metrics(), f"{name} produces no catalogued metric"
    assert all(METRICS[m].stage == name and domain in METRICS[m].domains for m in cls.metrics())
    assert len(cls.code_hash()) == 64 and cls.code_hash() == cls.code_hash()


@pytest.mark.parametrize(("domain", "name"), DOMAIN_STAGES)
def test_inputs_are_outputs_of_earlier_stages(domain: str, name: str) -> None:
    cls = stage_class(name, domain)
    for ref in cls.inputs:
        producer, _, rel = ref.partition("/")
        assert STAGE_ORDER.index(producer) < STAGE_ORDER.index(name), ref
        assert rel in stage_class(producer, domain).outputs, f"{ref} is not a declared output of {producer}"


@pytest.mark.parametrize(("domain", "name"), DOMAIN_STAGES)
def test_outputs_metrics_and_lineage_after_a_run(domain: str, name: str, request: pytest.FixtureRequest) -> None:
    runs_dir, run_id = request.getfixturevalue("finished_run" if domain == "images" else "finished_table_run")
    run_dir = runs_dir / run_id
    cls = stage_class(name, domain)
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


@pytest.mark.parametrize("domain", DOMAINS)
def test_only_three_stages_may_read_the_test_split(domain: str) -> None:
    readers = {name for name in STAGE_ORDER if stage_class(name, domain).reads_test}
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


@pytest.mark.parametrize(("domain", "name"), DOMAIN_STAGES)
def test_outputs_are_exact_paths(domain: str, name: str) -> None:
    assert not [out for out in stage_class(name, domain).outputs if set(out) & set("*?[]")], "globs are not expanded"


def test_code_fingerprints_follow_what_stages_really_import() -> None:
    from mlestar.workflow.code import module_closure

    assert {"mlestar.training.recipes", "mlestar.data.analysis"} <= set(module_closure(
        stage_class("evaluation").__module__))
    assert {"mlestar.models", "mlestar.training.probe", "mlestar.training.precision",
            "mlestar.evaluation.efficiency"} <= set(module_closure(stage_class("task_definition").__module__))
    # the stage registry imports every stage by name; no stage's key covers the others'
    assert "mlestar.stages.s6_refinement" not in module_closure(stage_class("implementation").__module__)


def test_editing_a_module_a_stage_uses_indirectly_reruns_it_and_its_dependents(
        run_copy: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from tiny_workflow import run_tiny
    from mlestar.workflow import code

    copy = tmp_path / "src" / "mlestar"
    shutil.copytree(code.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code, "PACKAGE_ROOT", copy)
    runs_dir, _ = run_copy
    # refinement reaches the objective only through tuning.search -> tuning.study -> tuning.objective
    assert "mlestar.tuning.objective" not in _direct_imports(stage_class("refinement"))
    with open(copy / "tuning" / "objective.py", "a", encoding="utf-8") as fh:
        fh.write("\n# an edit\n")
    state = run_tiny(runs_dir)
    statuses = {n: state.stage(n)["status"] for n in STAGES}
    assert statuses == {"situation_analysis": "skipped", "task_definition": "skipped",
                        "action_planning": "skipped", "implementation": "skipped", "evaluation": "skipped",
                        "refinement": "passed", "deployment": "passed"}


def _direct_imports(cls: type) -> set[str]:
    import ast
    import sys

    tree = ast.parse(Path(sys.modules[cls.__module__].__file__ or "").read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_a_stage_may_only_read_declared_inputs(tmp_path: Path) -> None:
    from mlestar.errors import StageError
    from mlestar.workflow.stage import StageContext

    ctx = StageContext(config=None, run_id="r", run_dir=tmp_path, out_dir=tmp_path / "05_evaluation",  # type: ignore[arg-type]
                       stage="evaluation", attempt=1, resume=False, adjustments=[], audit=None,  # type: ignore[arg-type]
                       load_dataset=lambda: None, declared=("implementation/model.pt",))
    with pytest.raises(StageError, match="does not declare"):
        ctx.input("situation_analysis/analysis.json")


@pytest.mark.parametrize("mode,what", [("r", "read"), ("w", "write")])
def test_opening_an_undeclared_file_of_the_run_fails_the_stage(run_copy: tuple[Path, str], mode: str, what: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tiny_workflow import tiny_config

    from mlestar.errors import StageError
    from mlestar.workflow.runner import RunOptions, run_workflow

    runs_dir, _ = run_copy
    cls = stage_class("evaluation")
    original = cls.run

    def sneaky(self: object, ctx: object) -> object:
        target = ctx.run_dir / "01_situation_analysis" / "report.md"  # type: ignore[attr-defined]
        with open(target, mode, encoding="utf-8"):
            pass
        return original(self, ctx)  # type: ignore[arg-type]

    monkeypatch.setattr(cls, "run", sneaky)
    with pytest.raises(StageError, match=f"tried to {what} 01_situation_analysis/report.md"):
        run_workflow(tiny_config(runs_dir), RunOptions(runs_dir=runs_dir, only_stage="evaluation"))
