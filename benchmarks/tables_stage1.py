"""Time stage 1 for tables (the situation analysis) on a generated table.

Usage:  PYTHONPATH=src .venv/bin/python benchmarks/tables_stage1.py [--rows 1000000] [--columns 50]

Writes a seeded table to a temporary Parquet file: 80% numeric columns (normal,
log-normal, integer counts; a few with 5% missing) and 20% categorical ones (5 to
500 distinct values), and a binary target that depends on two of them. Loads it as
a run does (timed apart), then times :func:`mlestar.domains.tables.analysis.analyze_table`
and prints its seconds per check. Target: the analysis of 1,000,000 rows x 50
columns in at most 30 s on two cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_table(rows: int, columns: int, seed: int = 0) -> pd.DataFrame:
    """A seeded table of ``columns`` feature columns plus the target ``y``."""
    rng = np.random.default_rng(seed)
    categorical = max(1, columns // 5)
    data: dict[str, object] = {}
    for i in range(columns - categorical):
        values = [rng.normal, rng.lognormal, lambda size: rng.poisson(3, size).astype(float)][i % 3](size=rows)
        if i % 7 == 0:
            values[rng.random(rows) < 0.05] = np.nan
        data[f"num_{i}"] = values
    for i in range(categorical):
        levels = np.array([f"L{j}" for j in range(5 + 55 * i)])
        data[f"cat_{i}"] = levels[rng.integers(0, len(levels), rows)]
    logit = data["num_0"] if "num_0" in data else 0.0
    logit = np.nan_to_num(np.asarray(logit)) + (np.asarray(data["cat_0"]) == "L1") + rng.normal(size=rows)
    data["y"] = (logit > 0.5).astype(np.int64)
    return pd.DataFrame(data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from mlestar.config.schema import MlestarConfig
    from mlestar.domains.tables.analysis import analyze_table
    from mlestar.domains.tables.dataset import load_table_dataset

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.parquet"
        make_table(args.rows, args.columns, args.seed).to_parquet(path, index=False)
        config = MlestarConfig(data={"source": "table", "path": str(path), "target": "y"})
        start = time.perf_counter()
        dataset = load_table_dataset(config.data, args.seed)
        load_s = time.perf_counter() - start
        out = Path(tmp) / "out"
        out.mkdir()
        start = time.perf_counter()
        result = analyze_table(dataset, out, seed=args.seed)
        analysis_s = time.perf_counter() - start
    print(f"table: {args.rows:,} rows x {args.columns} columns; load {load_s:.1f} s (not part of the analysis)")
    print(f"analysis: {analysis_s:.1f} s")
    print("steps: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.analysis["seconds"].items()))
    print(f"findings: {[(f['grade'], f['check']) for f in result.findings]}")


if __name__ == "__main__":
    main()
