"""How fast the dashboard lists a folder of many runs: first answer, then cached answers.

Usage:  .venv/bin/python benchmarks/dashboard_list.py [--runs 500] [--repeats 20]

Writes ``--runs`` run folders (``run.json`` and ``config.json`` only, in the
shape the runner writes: passed, failed and interrupted runs in rotation) to a
temporary folder, then times ``GET /api/runs`` (the first page of 50) through
FastAPI's TestClient, in-process, without a network: the first answer, which
reads and summarizes every ``run.json``, and ``--repeats`` more, which find
every summary in the cache because no ``run.json`` changed. Prints the first
answer and the median and maximum of the cached ones, in milliseconds.

The unit tests check the cache by counting summaries (tests/dashboard/test_dashboard_list.py);
only this script says how long the answers take, on the machine it runs on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from mlestar.config.catalog import STAGE_ORDER
from mlestar.dashboard import create_app

STATUSES = ("passed", "failed", "interrupted")


def write_runs(runs_dir: Path, count: int) -> None:
    """``count`` finished run folders with a test accuracy and one gate each."""
    stages = {name: {"status": "passed", "attempts": 1, "duration": 1.0} for name in STAGE_ORDER}
    config = {"project": {"name": "bench"}, "task": {"primary_metric": "test_accuracy",
                                                     "targets": {"test_accuracy": 0.9}}}
    for i in range(count):
        run_dir = runs_dir / f"run-{i:05d}"
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(json.dumps(config))
        gate = {"name": "acc", "metric": "test_accuracy", "op": ">=", "threshold": 0.9, "passed": i % 3 != 0,
                "value": 0.5, "stage": "evaluation", "attempt": 1}
        (run_dir / "run.json").write_text(json.dumps({
            "run_id": run_dir.name, "project": f"proj{i % 5}", "status": STATUSES[i % 3],
            "created": 1.7e9 + 60 * i, "ended": 1.7e9 + 60 * i + 30, "config_hash": "0" * 64, "stages": stages,
            "metrics": {"test_accuracy": 0.5 + i / (4 * count)}, "gates": [gate], "loopbacks": [],
            "audit": {"count": 0, "head": None}, "failure": None}))


def timed_list(client: TestClient) -> float:
    """Milliseconds for one ``GET /api/runs``."""
    start = time.perf_counter()
    response = client.get("/api/runs")
    elapsed = (time.perf_counter() - start) * 1000
    response.raise_for_status()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="run folders to list")
    parser.add_argument("--repeats", type=int, default=20, help="cached answers to time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs_dir = Path(tmp) / "runs"
        write_runs(runs_dir, args.runs)
        client = TestClient(create_app(runs_dir))
        first = timed_list(client)
        cached = [timed_list(client) for _ in range(args.repeats)]
    print(f"{args.runs} runs: first answer {first:.0f} ms; cached answers median {statistics.median(cached):.0f} ms, "
          f"max {max(cached):.0f} ms over {args.repeats}")


if __name__ == "__main__":
    main()
