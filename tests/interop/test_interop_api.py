"""The Python API: ``import mlestar`` stays light, ``Run`` reads a run, and docs/api.md's cells execute."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import mlestar
from mlestar.errors import ConfigError, InteropError, RunNotFoundError
from mlestar.utils.io import read_json

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
HEAVY = ("torch", "sklearn", "matplotlib", "mlflow")


def test_import_mlestar_loads_nothing_heavy_and_the_api_names_resolve() -> None:
    code = (f"import sys, mlestar; print(' '.join(m for m in {HEAVY!r} if m in sys.modules) or '-'); "
            "print(mlestar.run.__module__, mlestar.Run.__name__, mlestar.load_config.__name__, "
            "mlestar.RunOptions.__name__, mlestar.export_mlflow.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "-"
    assert out[1] == "mlestar.interop.api Run load_config RunOptions export_run"


def test_an_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mlestar.nope  # noqa: B018
    assert {"run", "Run", "load_config"} <= set(dir(mlestar))


def test_run_load_reads_the_finished_run(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    run = mlestar.Run.load(runs_dir, "latest")
    state = read_json(runs_dir / run_id / "run.json")
    assert run.id == run_id and run.dir == runs_dir / run_id and run.status == "passed"
    assert run.metrics == state["metrics"] and run.metrics["test_accuracy"] > 0
    assert list(run.stages) == list(state["stages"])
    impl = run.stages["implementation"]
    assert impl.status == "passed" and impl.folder == run.dir / "04_implementation"
    assert impl.metrics["epochs_completed"] == 2.0
    assert run.artifact("implementation/model.pt") == run.artifact("04_implementation/model.pt")
    assert run.artifact("run.json").is_file() and (run.bundle / "manifest.json").is_file()
    assert run.config.training.epochs == 2
    assert [r.id for r in mlestar.list_runs(runs_dir)] == [run_id]
    assert repr(run) == f"Run({run_id!r}, status='passed')"


def test_run_artifact_and_load_refuse_what_is_not_there(finished_run: tuple[Path, str], tmp_path: Path) -> None:
    runs_dir, _ = finished_run
    run = mlestar.Run.load(runs_dir)
    with pytest.raises(InteropError, match="no 'implementation/nothing.pt'") as caught:
        run.artifact("implementation/nothing.pt")
    assert "mlestar lineage" in (caught.value.hint or "")
    with pytest.raises(RunNotFoundError):
        mlestar.Run.load(tmp_path, "latest")


def test_run_refuses_an_unknown_stage_name_before_running(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="implementaton"):
        mlestar.run({"project": {"name": "x", "runs_dir": str(tmp_path)}}, only="implementaton")
    assert not (tmp_path / "lineage.db").exists()


def _cells(markdown: str) -> tuple[str, list[str]]:
    """The doc's YAML config and its Python cells, in order."""
    yaml_blocks = re.findall(r"```yaml\n(.*?)```", markdown, flags=re.S)
    return yaml_blocks[0], re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def test_the_notebook_in_docs_api_md_runs_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config, cells = _cells(DOC.read_text(encoding="utf-8"))
    assert len(cells) >= 3
    (tmp_path / "mle_star_config.yaml").write_text(config, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for cell in cells:
        exec(compile(cell, str(DOC), "exec"), namespace)  # noqa: S102 - the documented example itself
    run = namespace["run"]
    assert isinstance(run, mlestar.Run) and run.stages["situation_analysis"].status == "passed"
    assert run.metrics["num_classes"] == 10.0 and run.metrics["num_train_images"] == 200.0
    printed = capsys.readouterr().out
    assert "notebook 20" in printed and "# Situation analysis: digits" in printed
    assert "['situation_analysis']" in printed
