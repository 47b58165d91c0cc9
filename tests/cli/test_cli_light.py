"""The CLI's light paths stay light: no torch, scikit-learn or matplotlib for the command set,
``mlestar --help``, ``mlestar status`` and a fully cached ``mlestar run``; no config schema (pydantic
building its models) or runner for any ``--help`` and ``status``; no pydantic at all for ``mlestar --help``.

Checked in a fresh interpreter (this one has them loaded already), so an eager
import added anywhere on those paths fails here instead of costing every
``mlestar --help`` or cached re-run seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlestar.cli import common, schema
from mlestar.config import DEFAULT_CONFIG_NAME
from mlestar.config.json_schema import SCHEMA_FILE_NAME
from tiny_workflow import TINY

HEAVY = ("torch", "sklearn", "matplotlib")
SCHEMA = "mlestar.config.schema"  # importing it builds every pydantic model of the config
RUNNER = "mlestar.workflow.runner"  # imports the config, the data layer and the stage registry
WATCHED = (*HEAVY, "pydantic", SCHEMA, RUNNER)

# Runs the CLI in-process once per argv given (a JSON list of argv lists), then prints the exit codes
# and which WATCHED modules were loaded by all of them together.
PROBE = """
import json, sys
from mlestar.cli.app import app
codes = []
for argv in json.loads(sys.argv[1]):
    try:
        app(argv, prog_name="mlestar")
        codes.append(0)
    except SystemExit as exc:
        codes.append(exc.code or 0)
print("\\nPROBE " + json.dumps({"exit": codes, "loaded": [m for m in %r if m in sys.modules]}))
""" % (WATCHED,)


def probe(*argvs: list[str]) -> tuple[dict[str, object], str]:
    """Run ``mlestar ARGV`` for each argv in one fresh interpreter; returns (exit codes and watched
    modules loaded, output)."""
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argvs)], capture_output=True, text=True,
                          check=True)
    head, _, tail = done.stdout.rpartition("\nPROBE ")
    return json.loads(tail), head + done.stderr


def test_importing_the_cli_loads_no_heavy_library_nor_the_config_schema() -> None:
    code = f"import sys, mlestar.cli.app; print(' '.join(m for m in {WATCHED!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_help_loads_neither_heavy_libraries_nor_pydantic_nor_the_runner() -> None:
    result, output = probe(["--help"])
    assert result == {"exit": [0], "loaded": []}
    assert "run" in output and "--version" in output


def test_every_command_help_loads_neither_heavy_libraries_nor_the_config_schema() -> None:
    from mlestar.cli.app import app
    import typer.main

    group = typer.main.get_command(app)
    commands = sorted(group.commands)  # type: ignore[attr-defined]
    assert {"run", "status", "validate", "schema", "export"} <= set(commands)
    result, output = probe(*([name, "--help"] for name in commands), ["export", "mlflow", "--help"])
    assert result["exit"] == [0] * (len(commands) + 1), output
    # pydantic itself may load: Typer (0.29) converts the app's own options (--quiet, ...) through TypeAdapters
    assert not {*HEAVY, SCHEMA, RUNNER} & set(result["loaded"]), result  # type: ignore[arg-type]
    assert "--set" in output and "--runs-dir" in output  # the shared option types are in the help


def test_status_loads_no_heavy_library_nor_the_config_schema_nor_the_runner(run_copy: tuple[Path, str]) -> None:
    runs_dir, run_id = run_copy
    result, output = probe(["status", "--runs-dir", str(runs_dir)])
    assert result["exit"] == [0], output
    # pydantic itself may load: as for a command's --help, Typer converts option values through TypeAdapters
    assert not {*HEAVY, SCHEMA, RUNNER} & set(result["loaded"]), result  # type: ignore[arg-type]
    assert run_id in output and "passed" in output


def test_fully_cached_run_loads_no_heavy_library(run_copy: tuple[Path, str], tmp_path: Path) -> None:
    runs_dir, _ = run_copy
    config = tmp_path / "tiny.yaml"  # the config the shared finished run was made with
    config.write_text(yaml.safe_dump(TINY))
    result, output = probe(["run", str(config), "--runs-dir", str(runs_dir)])
    assert result["exit"] == [0], output
    assert not set(HEAVY) & set(result["loaded"]), output  # type: ignore[arg-type]
    assert output.count("] skipped: inputs, config and code unchanged") == 7, output


@pytest.mark.parametrize(("spelled", "source"), [(common.DEFAULT_CONFIG_NAME, DEFAULT_CONFIG_NAME),
                                                 (schema.SCHEMA_FILE_NAME, SCHEMA_FILE_NAME)])
def test_names_the_cli_spells_for_its_help_match_the_config_package(spelled: str, source: str) -> None:
    """The CLI names these files without importing the config (its schema); they must not drift apart."""
    assert spelled == source
