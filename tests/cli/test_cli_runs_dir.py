"""Every command finds the runs folder the same way: --runs-dir, else ./mle_star_config.yaml's, else ./runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.cli.common import resolve_runs_dir
from mlestar.errors import ConfigError
from run_files import two_runs

runner = CliRunner()


def write_config(folder: Path, content: Any) -> None:
    text = content if isinstance(content, str) else yaml.safe_dump(content)
    (folder / "mle_star_config.yaml").write_text(text)


def test_the_option_wins_over_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, {"project": {"name": "p", "runs_dir": "from-config"}})
    assert resolve_runs_dir(Path("given")) == Path("given")


@pytest.mark.parametrize("content, expected", [
    ({"project": {"name": "p", "runs_dir": "from-config"}}, Path("from-config")),
    ({"project": {"name": "p", "runs_dir": "/abs/runs"}}, Path("/abs/runs")),
    ({"project": {"name": "p"}}, Path("runs")),
    ("", Path("runs")),
    ({"paths": {"output_dir": "legacy-out"}}, Path("legacy-out")),  # a template-style config, translated
])
def test_the_config_in_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: Any,
                                          expected: Path) -> None:
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, content)
    assert resolve_runs_dir(None) == expected


def test_without_a_config_it_is_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_runs_dir(None) == Path("runs")


@pytest.mark.parametrize("content, message", [("project: [unclosed", "cannot read project.runs_dir"),
                                              ({"project": {"runs_dir": 5}}, "must be a path")])
def test_a_broken_config_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: Any,
                                  message: str) -> None:
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, content)
    with pytest.raises(ConfigError, match=message) as caught:
        resolve_runs_dir(None)
    assert "mle_star_config.yaml" in caught.value.message and "--runs-dir" in caught.value.hint
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 2 and "mle_star_config.yaml" in result.output


@pytest.fixture
def project(finished_run: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder whose config points at a runs folder of two runs, as the current folder."""
    runs_dir, _, _ = two_runs(finished_run, tmp_path / "elsewhere")
    folder = tmp_path / "project"
    folder.mkdir()
    write_config(folder, {"project": {"name": "p", "runs_dir": "../elsewhere/runs"}})
    monkeypatch.chdir(folder)
    return runs_dir


@pytest.mark.parametrize("args", [["status"], ["show", "latest"], ["audit", "latest"],
                                  ["compare", "base-run", "other-run"]])
def test_reading_commands_use_the_configs_folder(project: Path, args: list[str]) -> None:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc.get("run_id", "other-run") == "other-run"  # 'latest' is the newer of the two
    assert doc.get("runs_dir", "../elsewhere/runs") == "../elsewhere/runs"


@pytest.mark.parametrize("args", [["lineage", "nope"], ["reproduce", "nope"], ["run", "--resume", "nope"],
                                  ["tune", "mle_star_config.yaml", "--run", "nope"]])
def test_run_lookups_search_the_configs_folder(project: Path, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "cannot find run 'nope' in ../elsewhere/runs" in result.output


def test_dashboard_serves_the_configs_folder(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlestar.dashboard

    served: list[Path] = []
    monkeypatch.setattr(mlestar.dashboard, "serve", lambda runs_dir, **options: served.append(runs_dir))
    assert runner.invoke(app, ["dashboard"]).exit_code == 0
    assert runner.invoke(app, ["dashboard", "--runs-dir", "other"]).exit_code == 0
    assert runner.invoke(app, ["dashboard", "positional"]).exit_code == 0
    assert served == [Path("../elsewhere/runs"), Path("other"), Path("positional")]
    clash = runner.invoke(app, ["dashboard", "a", "--runs-dir", "b"])
    assert clash.exit_code == 2 and "two runs folders" in clash.output
