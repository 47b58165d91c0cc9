"""mlestar against FLAML's AutoML on the two shared tables, same splits, same time.

Usage:  .venv/bin/python benchmarks/tabular.py [--budget 300] [--tables diamonds HI] [--seed 0]

For each table, mlestar runs stages 1-6 (refinement's search gets most of the
budget) and its adopted model is scored on the test split. FLAML then gets
exactly the wall time mlestar took, the same training and validation rows
(holdout), the same feature columns and the same metric, and is scored on the
same test rows. Prints RMSE and R² (diamonds) or ROC AUC and accuracy (HI)
side by side, with each tool's seconds. Needs ``pip install flaml``.

With ``--autogluon-python PATH`` (the interpreter of a separate environment holding
``autogluon.tabular``, which needs ``pandas<2.4``), AutoGluon's ``medium_quality``
gets the same time, rows and metric too, through ``benchmarks/autogluon_fit.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "tabular"
TABLES = {"diamonds": ("diamonds.csv", "price", "rmse"), "HI": ("HI.csv", "whi", "roc_auc")}


def mlestar_config(path: Path, target: str, budget: float, seed: int) -> dict[str, Any]:
    """Stages 1-6 inside ``budget`` seconds: the search gets 60% of it."""
    return {"project": {"name": f"bench-{path.stem}"}, "seed": seed,
            "data": {"source": "table", "path": str(path), "target": target, "id_columns": [""]},
            "refinement": {"n_trials": 1000, "timeout": f"{int(budget * 0.6)}s", "seeds": 2, "ablation": False}}


def run_mlestar(path: Path, target: str, budget: float, seed: int, work: Path) -> tuple[float, Any, Any, dict]:
    """Seconds of stages 1-6 (stage 7 packages the model; FLAML has no such step), the adopted
    model, the run's dataset and every stage's seconds."""
    from mlestar.config.loader import load_config
    from mlestar.domains import load_dataset
    from mlestar.domains.tables.model import load_model
    from mlestar.workflow.runner import RunOptions, Runner

    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(mlestar_config(path, target, budget, seed)))
    loaded = load_config(config)
    runner = Runner(loaded, RunOptions(runs_dir=work / "runs"))
    runner.execute()
    state = json.loads((runner.run_dir / "run.json").read_text())
    stages = {name: entry["duration"] for name, entry in state["stages"].items()}
    seconds = sum(v for k, v in stages.items() if k != "deployment")
    model = load_model(runner.run_dir / "06_refinement" / "model.joblib")
    return seconds, model, load_dataset(loaded.config.data, seed), stages


def run_flaml(dataset: Any, budget: float, metric: str, seed: int) -> tuple[float, np.ndarray]:
    """Seconds and test scores (probabilities of the positive class, or values) of FLAML's AutoML."""
    from flaml import AutoML

    def frame(split: str) -> Any:
        x, y = dataset.xy(split)
        x = x.copy()
        for column in x.columns:
            if x[column].dtype.kind not in "fi":
                x[column] = x[column].astype("category")
        return x, y

    (xt, yt), (xv, yv), (xs, _) = frame("train"), frame("val"), frame("test")
    automl = AutoML()
    started = time.perf_counter()
    automl.fit(X_train=xt, y_train=yt, X_val=xv, y_val=yv, eval_method="holdout", time_budget=budget,
               metric=metric, task="regression" if metric == "rmse" else "classification", seed=seed,
               n_jobs=-1, verbose=0)
    seconds = time.perf_counter() - started
    scores = automl.predict(xs) if metric == "rmse" else automl.predict_proba(xs)
    return seconds, np.asarray(scores, dtype=np.float64)


def run_autogluon(python: Path, dataset: Any, budget: float, metric: str, work: Path) -> tuple[float, np.ndarray]:
    """Seconds of AutoGluon's ``fit`` and its test scores, from its own interpreter ``python``."""
    splits = work / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    columns = [*dataset.features, dataset.target]
    for name in ("train", "val", "test"):
        dataset.split(name)[columns].to_parquet(splits / f"{name}.parquet", index=False)
    out = work / "autogluon_scores.npy"
    script = Path(__file__).with_name("autogluon_fit.py")
    done = subprocess.run([str(python), str(script), "--splits", str(splits), "--label", dataset.target,
                           "--metric", metric, "--time-limit", f"{budget:.1f}", "--out", str(out)],
                          check=True, capture_output=True, text=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  autogluon models: {', '.join(report['models'])}")
    return report["seconds"], np.load(out)


def test_scores(task: str, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from mlestar.domains.tables.scoring import score_all

    return score_all(task, y, scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds for mlestar's stages 1-6")
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--autogluon-python", type=Path, help="interpreter of an environment with autogluon.tabular")
    args = parser.parse_args()
    results = []
    for name in args.tables:
        file, target, metric = TABLES[name]
        with tempfile.TemporaryDirectory() as tmp:
            seconds, model, dataset, stages = run_mlestar(SHARED / file, target, args.budget, args.seed, Path(tmp))
        y = dataset.test[dataset.target].to_numpy()
        ours = test_scores(dataset.task, y, model.scores(dataset.test))
        flaml_seconds, flaml_scores = run_flaml(dataset, seconds, metric, args.seed)
        theirs = test_scores(dataset.task, y, flaml_scores)
        keys = ("rmse", "r2") if metric == "rmse" else ("roc_auc", "accuracy")
        results.append({"table": name, "rows": [len(dataset.train), len(dataset.val), len(dataset.test)],
                        "mlestar": {"seconds": seconds, "stages": stages, **{k: ours[k] for k in keys}},
                        "flaml": {"seconds": flaml_seconds, **{k: theirs[k] for k in keys}}})
        tools = ["mlestar", "flaml"]
        if args.autogluon_python:
            with tempfile.TemporaryDirectory() as tmp:
                ag_seconds, ag_scores = run_autogluon(args.autogluon_python, dataset, seconds, metric, Path(tmp))
            ag = test_scores(dataset.task, y, ag_scores)
            results[-1]["autogluon"] = {"seconds": ag_seconds, **{k: ag[k] for k in keys}}
            tools.append("autogluon")
        print(f"{name}: train/val/test {results[-1]['rows']}")
        for tool in tools:
            r = results[-1][tool]
            print(f"  {tool:8s} {r['seconds']:7.1f}s  " + "  ".join(f"{k} {r[k]:.4f}" for k in keys))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
