"""Time the embedded default workflow cold, then re-run it fully cached.

Usage:  .venv/bin/python benchmarks/workflow_default.py [--repeats 3]

Prints wall time of ``mlestar run`` (a fresh process each time, as a user
types it) for the first, uncached run and for unchanged re-runs, and the ratio
between them measured in the same session. Target: a cached re-run under 3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(runs_dir: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlestar", "run", "--runs-dir", str(runs_dir)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        cold = timed_run(runs_dir)
        cached = [timed_run(runs_dir) for _ in range(args.repeats)]
    median = statistics.median(cached)
    print(f"cold run (all 7 stages execute): {cold:.2f} s")
    print(f"cached re-run (all 7 skipped), median of {args.repeats}: {median:.2f} s "
          f"(min {min(cached):.2f}, max {max(cached):.2f})")
    print(f"ratio cached/cold: {median / cold:.3f}  (speed-up x{cold / median:.1f})")


if __name__ == "__main__":
    main()
