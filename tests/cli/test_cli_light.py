"""The CLI's light paths stay light: no torch, scikit-learn or matplotlib for the command set,
``mlestar --help``, ``mlestar status`` and a fully cached ``mlestar run``.

Checked in a fresh interpreter (this one has them loaded already), so an eager
import added anywhere on those paths fails here instead of costing every
``mlestar --help`` or cached re-run seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tiny_workflow import TINY

HEAVY = ("torch", "sklearn", "matplotlib")

# Runs the CLI in-process with the given argv, then prints its exit code and the heavy modules loaded.
PROBE = """
import json, sys
from mlestar.cli.app import app
try:
    app(sys.argv[1:], prog_name="mlestar")
    code = 0
except SystemExit as exc:
    code = exc.code or 0
print("\\nPROBE " + json.dumps({"exit": code, "heavy": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


def probe(*args: str) -> tuple[dict[str, object], str]:
    """Run ``mlestar ARGS`` in a fresh interpreter; returns (exit code and heavy modules loaded, output)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    head, _, tail = done.stdout.rpartition("\nPROBE ")
    return json.loads(tail), head + done.stderr


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = f"import sys, mlestar.cli.app; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_help_loads_no_heavy_library() -> None:
    result, output = probe("--help")
    assert result == {"exit": 0, "heavy": []}
    assert "run" in output and "--version" in output


def test_status_loads_no_heavy_library(run_copy: tuple[Path, str]) -> None:
    runs_dir, run_id = run_copy
    result, output = probe("status", "--runs-dir", str(runs_dir))
    assert result == {"exit": 0, "heavy": []}
    assert run_id in output


def test_fully_cached_run_loads_no_heavy_library(run_copy: tuple[Path, str], tmp_path: Path) -> None:
    runs_dir, _ = run_copy
    config = tmp_path / "tiny.yaml"  # the config the shared finished run was made with
    config.write_text(yaml.safe_dump(TINY))
    result, output = probe("run", str(config), "--runs-dir", str(runs_dir))
    assert result == {"exit": 0, "heavy": []}, output
    assert output.count("] skipped: inputs, config and code unchanged") == 7, output
