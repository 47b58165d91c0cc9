"""docs/tutorial.md cannot go stale: its console blocks run here, in order, on the digits path.

Each block's commands run in one bash session in a scratch folder holding a copy of
``examples/`` (the tutorial runs from the repository root), with the suite's
interpreter's ``bin/`` first on PATH so ``mlestar`` is the code under test. The output
the tutorial shows must appear in the real output (``tests/docs/console_blocks.py``).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

from tests.docs.console_blocks import Session, missing_lines, parse

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"


def test_every_console_block_of_the_tutorial_runs_and_shows_real_output(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    # One thread per process: the suite runs a worker per core, and a second torch thread only
    # waits for a core the other worker holds (a third of the speed, measured: 537 s against
    # about 200 s). The commands and what they print are the same either way.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "COLUMNS": "200", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    session = Session(tmp_path, env)
    try:
        for command in parse(TUTORIAL.read_text(encoding="utf-8")):
            output = session.run(command)
            missing = missing_lines(command.expected, output)
            assert not missing, f"$ {command.text}\nshows lines the real output lacks: {missing}\nreal output:\n{output}"
    finally:
        session.close()


def test_the_tutorial_has_commands_and_every_picture_it_shows_exists() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    assert len(parse(text)) >= 20
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert pictures and all((TUTORIAL.parent / picture).is_file() for picture in pictures), pictures
