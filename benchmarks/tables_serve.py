"""The served table model against plain ``model.predict``, in the same run.

Usage:  .venv/bin/python benchmarks/tables_serve.py [--table diamonds] [--requests 500] [--batch 1000]

Fits the default LightGBM plan on a shared table (diamonds: regression on
price; HI: binary), builds the stage-7 bundle (ONNX graph with parity, input
schema), starts ``mlestar serve`` on 127.0.0.1 at a free port and measures:

- single-row latency (p50, p95) of ``POST /predict`` with one row, sequential
  requests from one client, against ``TableModel.predict`` on one row in process;
- batch throughput (rows/s) of ``POST /predict`` with ``--batch`` rows per
  request, against ``TableModel.predict`` on the same rows in process.

Client and server share this machine's cores; the HTTP numbers are a lower bound.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "tabular"
TABLES = {"diamonds": ("diamonds.csv", "price"), "HI": ("HI.csv", "whi")}


def fit_and_bundle(table: str, folder: Path) -> tuple[Any, Any, Path]:
    """(model, dataset, bundle folder) for the default plan on ``table``."""
    from mlestar.config.schema import MlestarConfig
    from mlestar.domains.tables.bundle import write_table_bundle
    from mlestar.domains.tables.dataset import load_table_dataset
    from mlestar.domains.tables.export import convert
    from mlestar.domains.tables.fit import fit_plan
    from mlestar.domains.tables.planning import make_plan
    from mlestar.domains.tables.schema import build_schema

    file, target = TABLES[table]
    cfg = MlestarConfig(data={"source": "table", "path": str(SHARED / file), "target": target, "id_columns": [""]})
    ds = load_table_dataset(cfg.data, 0)
    record = {"task": ds.task, "target": ds.target, "features": list(ds.features),
              "columns": {n: {"kind": i.kind, "distinct": i.distinct, "missing": i.missing}
                          for n, i in ds.columns.items()}}
    model = fit_plan(make_plan(record, {}, learner=None, seed=0, cv_folds=0, budget_s=None, fit_time_s=None),
                     ds.train, ds.val, ds.class_names, n_jobs=2).model
    model.save(folder / "model.joblib")
    onnx_bytes, inputs = convert(model)
    schema = build_schema(model, ds.train, inputs, target=ds.target)
    bundle = write_table_bundle(folder / "bundle", joblib_file=folder / "model.joblib", onnx_bytes=onnx_bytes,
                                schema=schema, metadata={"project": "bench", "run_id": "bench", "task": ds.task,
                                                         "runtime": "onnx", "class_names": list(ds.class_names),
                                                         "threshold": model.threshold, "metrics": {}},
                                model_card="benchmark bundle\n")
    return model, ds, bundle


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rows_of(frame: Any, columns: list[str]) -> list[dict[str, Any]]:
    """JSON rows (NaN as null) of ``frame``'s ``columns``."""
    return json.loads(frame[columns].to_json(orient="records", date_format="iso"))


def start_server(bundle: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlestar", "serve", str(bundle), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready in 120 s")


def timed(fn: Any, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="diamonds", choices=list(TABLES))
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, ds, bundle = fit_and_bundle(args.table, Path(tmp))
        columns = model.inputs
        one = ds.test.iloc[[0]]
        batch = ds.test.iloc[: args.batch]
        json_one, json_batch = rows_of(one, columns)[0], rows_of(batch, columns)
        for _ in range(20):
            model.predict(one)
        local_single = timed(lambda: model.predict(one), args.requests)
        local_batch = min(timed(lambda: model.predict(batch), 5))
        proc, base = start_server(bundle)
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                for _ in range(20):
                    client.post("/predict", json={"row": json_one}).raise_for_status()
                served_single = timed(lambda: client.post("/predict", json={"row": json_one}).raise_for_status(),
                                      args.requests)
                served_batch = min(timed(lambda: client.post("/predict", json={"rows": json_batch})
                                         .raise_for_status(), 5))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    p = {k: float(np.percentile(v, q)) * 1000 for k, v in (("local", local_single), ("served", served_single))
         for q in (95,)}
    print(f"{args.table}: {len(ds.train)} training rows, {len(columns)} input columns, learner {model.plan.learner}")
    print(f"  single row p50/p95  model.predict {np.percentile(local_single, 50) * 1000:.2f}/{p['local']:.2f} ms   "
          f"served (HTTP, ONNX) {np.percentile(served_single, 50) * 1000:.2f}/{p['served']:.2f} ms   "
          f"ratio p95 {p['served'] / p['local']:.2f}x")
    rows = len(batch)
    print(f"  batch of {rows} rows    model.predict {rows / local_batch:,.0f} rows/s   served {rows / served_batch:,.0f} "
          f"rows/s   ratio {(rows / served_batch) / (rows / local_batch):.2f}x")


if __name__ == "__main__":
    main()
