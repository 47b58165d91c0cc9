"""Time the CLI's light paths against a bare interpreter: ``mlestar --help`` and a fully cached re-run.

Usage:  .venv/bin/python benchmarks/cli_startup.py [--repeats 5] [--runs-dir DIR]

Each measurement is a fresh process, as a user types the command: ``python -c
pass`` (the floor every command pays), ``python -m mlestar --help``, and
``python -m mlestar run`` of the embedded default in a runs folder that already
holds a passed run, so every stage is reused from the cache. Without
``--runs-dir`` a temporary folder is used and one untimed cold run fills it
first (about a minute). Prints the median (and range) of each in seconds and
its ratio to ``python -c pass`` measured in the same session.
Targets (issue 13): ``--help`` under 0.5 s, the cached re-run under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list[str]) -> float:
    """Wall seconds of one process running ``argv`` (its output discarded; a failure raises)."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(argv: list[str], repeats: int) -> list[float]:
    """``repeats`` timings of ``argv``, after one untimed warm-up (the page cache, .pyc files)."""
    timed(argv)
    return [timed(argv) for _ in range(repeats)]


def has_passed_run(runs_dir: Path) -> bool:
    """True when ``runs_dir`` already holds a run that passed, so a re-run is fully cached."""
    return any('"status": "passed"' in p.read_text() for p in runs_dir.glob("*/run.json"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="a runs folder to re-run in (filled by a cold run when it holds no passed run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = args.runs_dir or Path(tmp) / "runs"
        run = [sys.executable, "-m", "mlestar", "run", "--runs-dir", str(runs_dir)]
        if not runs_dir.exists() or not has_passed_run(runs_dir):
            print(f"cold run to fill {runs_dir} (untimed) ...", flush=True)
            timed(run)
        results = {"python -c pass": measure([sys.executable, "-c", "pass"], args.repeats),
                   "mlestar --help": measure([sys.executable, "-m", "mlestar", "--help"], args.repeats),
                   "mlestar run (all cached)": measure(run, args.repeats)}
    floor = statistics.median(results["python -c pass"])
    for label, times in results.items():
        median = statistics.median(times)
        print(f"{label:26s} median of {args.repeats}: {median:.3f} s (min {min(times):.3f}, max {max(times):.3f})"
              f"  ratio to python -c pass: {median / floor:.1f}x")


if __name__ == "__main__":
    main()
