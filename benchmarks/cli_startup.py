"""Time the CLI's light paths against a bare interpreter: ``mlestar --help`` and a fully cached re-run.

Usage:  .venv/bin/python benchmarks/cli_startup.py [--repeats 5] [--runs-dir DIR]

Each measurement is a fresh process, as a user types the command: ``python -c
pass`` (the floor every command pays), ``python -m mlestar --help``, ``python -m
mlestar status`` and ``python -m mlestar run`` of the embedded default in a runs
folder that already holds a passed run, so every stage is reused from the cache.
Without ``--runs-dir`` a temporary folder is used and one untimed cold run fills
it first (about a minute). Prints the median (and range) of each in seconds, its
ratio to ``python -c pass`` measured in the same session, the median CPU time
(user + system) of the process, and the load average before and after (on a
shared machine the load moves wall times more than most changes do).

The children run with bytecode caching on, as an installed package does: an
environment that sets ``PYTHONDONTWRITEBYTECODE`` (this project's sandbox does)
would otherwise compile every mlestar module on every start, about 0.2 s that
users never pay. ``--as-is`` keeps the environment unchanged.
Targets (issue 13): ``--help`` under 0.5 s, the cached re-run under 1 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child_env(as_is: bool) -> dict[str, str]:
    """The children's environment: ours, with bytecode caching back on unless ``as_is``."""
    env = dict(os.environ)
    if not as_is:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one process running ``argv``; its output is
    discarded and a failure raises. CPU time waits for no other process, so on a shared machine it
    compares two versions of the code better than wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(argv: list[str], repeats: int, env: dict[str, str]) -> list[tuple[float, float]]:
    """``repeats`` timings of ``argv``, after one untimed warm-up (the page cache, .pyc files)."""
    timed(argv, env)
    return [timed(argv, env) for _ in range(repeats)]


def load() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def has_passed_run(runs_dir: Path) -> bool:
    """True when ``runs_dir`` already holds a run that passed, so a re-run is fully cached."""
    return any('"status": "passed"' in p.read_text() for p in runs_dir.glob("*/run.json"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="a runs folder to re-run in (filled by a cold run when it holds no passed run)")
    parser.add_argument("--as-is", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE if set (every start then compiles mlestar)")
    args = parser.parse_args()
    env = child_env(args.as_is)
    print(f"python {sys.version.split()[0]}; bytecode caching: "
          f"{'off' if env.get('PYTHONDONTWRITEBYTECODE') else 'on'}; load average before: {load()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = args.runs_dir or Path(tmp) / "runs"
        run = [sys.executable, "-m", "mlestar", "run", "--runs-dir", str(runs_dir)]
        if not runs_dir.exists() or not has_passed_run(runs_dir):
            print(f"cold run to fill {runs_dir} (untimed) ...", flush=True)
            timed(run, env)
        mlestar = [sys.executable, "-m", "mlestar"]
        results = {"python -c pass": measure([sys.executable, "-c", "pass"], args.repeats, env),
                   "mlestar --help": measure([*mlestar, "--help"], args.repeats, env),
                   "mlestar status": measure([*mlestar, "status", "--runs-dir", str(runs_dir)], args.repeats, env),
                   "mlestar run (all cached)": measure(run, args.repeats, env)}
    floor = statistics.median(wall for wall, _ in results["python -c pass"])
    for label, pairs in results.items():
        times = [wall for wall, _ in pairs]
        median = statistics.median(times)
        print(f"{label:26s} median of {args.repeats}: {median:.3f} s (min {min(times):.3f}, max {max(times):.3f})"
              f"  ratio to python -c pass: {median / floor:.1f}x"
              f"  cpu {statistics.median(cpu for _, cpu in pairs):.3f} s")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
