"""Global options: --version, shell completion, --quiet and --verbose (on a fully cached tiny run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mlestar import __version__
from mlestar.cli.app import app
from mlestar.cli.common import set_verbosity
from tiny_workflow import TINY

runner = CliRunner()


@pytest.fixture(autouse=True)
def normal_verbosity() -> None:
    """The app callback sets a process-wide level; leave it as other tests expect."""
    yield
    set_verbosity("normal")


def cached_run(run_copy: tuple[Path, str], tmp_path: Path, *options: str) -> tuple[int, str]:
    """``mlestar OPTIONS run tiny.yaml`` in a copy of the shared run's folder: every stage is reused."""
    runs_dir, _ = run_copy
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    result = runner.invoke(app, [*options, "run", str(config), "--runs-dir", str(runs_dir)])
    return result.exit_code, result.output


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.output) == (0, f"mlestar {__version__}\n")


def test_bash_completion_script_and_completions() -> None:
    # Through the environment variables the installed script sets, not --show-completion, whose
    # shell argument Typer may ignore in favour of detecting the parent shell (none under CI).
    script = runner.invoke(app, [], prog_name="mlestar", env={"_MLESTAR_COMPLETE": "source_bash"})
    assert script.exit_code == 0, script.output
    assert "complete -o default -F _mlestar_completion mlestar" in script.output
    assert "_MLESTAR_COMPLETE=complete_bash" in script.output
    words = runner.invoke(app, [], prog_name="mlestar",
                          env={"_MLESTAR_COMPLETE": "complete_bash", "COMP_WORDS": "mlestar sta", "COMP_CWORD": "1"})
    assert words.output.split() == ["status"]


def test_quiet_and_verbose_together_exit_2() -> None:
    result = runner.invoke(app, ["--quiet", "--verbose", "status"])
    assert result.exit_code == 2 and "contradict" in result.output


def test_quiet_prints_only_the_outcome(run_copy: tuple[Path, str], tmp_path: Path) -> None:
    code, output = cached_run(run_copy, tmp_path, "--quiet")
    assert code == 0, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run tiny-") and lines[0].endswith(" passed"), output


def test_normal_prints_progress_lines_without_debug(run_copy: tuple[Path, str], tmp_path: Path) -> None:
    code, output = cached_run(run_copy, tmp_path)
    assert code == 0, output
    assert output.count("] skipped: inputs, config and code unchanged") == 7
    assert "debug:" not in output


def test_verbose_adds_each_stage_cache_decision_and_timing(run_copy: tuple[Path, str], tmp_path: Path) -> None:
    code, output = cached_run(run_copy, tmp_path, "--verbose")
    assert code == 0, output
    assert output.count("] skipped: inputs, config and code unchanged") == 7
    decisions = [line for line in output.splitlines() if "cache key" in line and "hit, reusing" in line]
    assert len(decisions) == 7, output
    assert output.count("debug: [") >= 3 * 7  # key parts, decision, timing for each stage
    assert "debug: [04_implementation] reused in " in output
