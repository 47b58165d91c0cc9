"""``run``/``validate`` config defaults and ``-S`` overrides, and ``schema``, through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.cli.run import resolve
from mlestar.config import DEFAULT_CONFIG_NAME, parse_overrides
from mlestar.config.catalog import stage_folder
from mlestar.errors import ConfigError
from mlestar.tracking.audit import read_records
from mlestar.workflow.inspect import find_run
from mlestar.workflow.state import RunState
from tiny_workflow import TINY, merge

runner = CliRunner()


def invoke(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


def write_tiny(folder: Path, runs_dir: Path) -> Path:
    path = folder / DEFAULT_CONFIG_NAME
    path.write_text(yaml.safe_dump(merge(TINY, {"project": {"runs_dir": str(runs_dir)}})))
    return path


def test_run_without_config_uses_the_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    write_tiny(tmp_path, tmp_path / "runs")
    loaded, resume_id = resolve(None, None, None, parse_overrides(["seed=3"]))
    assert (loaded.path, loaded.config.project.name, loaded.config.seed, resume_id) == (
        Path(DEFAULT_CONFIG_NAME), "tiny", 3, None)
    assert f"using ./{DEFAULT_CONFIG_NAME}; " in capsys.readouterr().out


def test_run_without_config_or_local_file_uses_the_embedded_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    loaded, _ = resolve(None, None, None)
    assert (loaded.path, loaded.config.project.name) == (None, "digits-default")
    assert "no config given: running the embedded default" in capsys.readouterr().out


def test_a_bad_local_file_is_named_and_nothing_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / DEFAULT_CONFIG_NAME).write_text("trainig: {epochs: 3}\n")
    result = invoke("run")
    assert result.exit_code == 2, result.output
    assert f"using ./{DEFAULT_CONFIG_NAME}; " in result.output
    assert "trainig: unknown key; did you mean 'training'?" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["run", "validate"])
def test_bad_overrides_exit_2_with_the_key_path(tmp_path: Path, command: str) -> None:
    path = write_tiny(tmp_path, tmp_path / "runs")
    for override, message in [("training.epoch=3", "training.epoch: unknown key; did you mean 'epochs'?"),
                              ("training.epochs=0", "training.epochs: Input should be greater than or equal to 1"),
                              ("training.epochs", "is not KEY=VALUE")]:
        result = invoke(command, path, "-S", override)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_validate_applies_overrides(tmp_path: Path) -> None:
    path = write_tiny(tmp_path, tmp_path / "runs")
    plain = invoke("validate", path)
    changed = invoke("validate", path, "--set", "training.epochs=3", "-S", "seed=1")
    assert plain.exit_code == changed.exit_code == 0
    assert plain.output.split("config hash")[1] != changed.output.split("config hash")[1]


def test_resume_refuses_overrides(tmp_path: Path) -> None:
    # refused before the run is even looked up: a resumed run keeps the config it was started with
    with pytest.raises(ConfigError, match="--resume continues run 2024abc .* -S seed=1 would change it"):
        resolve(None, "2024abc", tmp_path, parse_overrides(["seed=1"]))
    result = invoke("run", "--resume", "2024abc", "--runs-dir", tmp_path, "-S", "seed=1")
    assert result.exit_code == 2 and "drop -S to resume" in result.output


def rerun(tmp_path: Path, runs_dir: Path, *args: str) -> RunState:
    result = invoke("run", "--runs-dir", runs_dir, *args)  # no CONFIG: ./mle_star_config.yaml
    assert result.exit_code == 0, result.output
    return RunState.load(find_run(runs_dir, "latest"))


def test_overrides_are_saved_audited_and_part_of_the_cache_key(
        run_copy: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs_dir, first = run_copy
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    write_tiny(work, runs_dir)
    # the finished run used the default tolerance (1e-4): the same value is the same key, nothing executes
    same = rerun(tmp_path, runs_dir, "-S", "deployment.parity_tolerance=0.0001")
    assert {same.stage(s)["status"] for s in same.data["stages"]} == {"skipped"}
    # another value changes only stage 7's config, so only stage 7 executes
    other = rerun(tmp_path, runs_dir, "-S", "deployment.parity_tolerance=0.001")
    assert other.stage("deployment")["status"] == "passed"
    assert {other.stage(s)["status"] for s in other.data["stages"] if s != "deployment"} == {"skipped"}
    saved = json.loads((runs_dir / other.run_id / "config.json").read_text())
    assert saved["deployment"]["parity_tolerance"] == 0.001
    events = [r["data"] for r in read_records(runs_dir / other.run_id / "audit.jsonl")
              if r["event"] == "config_override"]
    assert events == [{"key": "deployment.parity_tolerance", "value": "0.001"}]
    assert (runs_dir / other.run_id / stage_folder("deployment") / "deployment.json").is_file()


def test_schema_prints_json_and_writes_a_file(tmp_path: Path) -> None:
    printed = invoke("schema")
    assert printed.exit_code == 0
    schema = json.loads(printed.output)
    assert {"project", "data", "training", "deployment"} <= set(schema["properties"])
    target = tmp_path / "mle_star_config.schema.json"
    written = invoke("schema", "-o", target)
    assert written.exit_code == 0 and f"# yaml-language-server: $schema={target}" in written.output
    assert json.loads(target.read_text()) == schema
