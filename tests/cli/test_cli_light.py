"""The CLI's light path stays light: importing the command set loads no torch, scikit-learn or matplotlib.

Checked in a fresh interpreter (this one has them loaded already), so an eager
import added anywhere under ``mlestar.cli`` fails here instead of costing every
``mlestar --help`` seconds.
"""

import subprocess
import sys

HEAVY = ("torch", "sklearn", "matplotlib")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = f"import sys, mlestar.cli.app; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
