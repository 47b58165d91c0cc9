"""AutoGluon's ``medium_quality`` on splits written by ``benchmarks/tabular.py``.

Runs in AutoGluon's own environment (autogluon.tabular 1.6 needs ``pandas<2.4``;
mlestar's has pandas 3), so it imports nothing from mlestar:

    python benchmarks/autogluon_fit.py --splits DIR --label price --metric rmse \
        --time-limit 300 --out scores.npy

``DIR`` holds ``train.parquet``, ``val.parquet`` and ``test.parquet`` (features plus
the label, classes encoded as indices). The validation rows are passed as
``tuning_data``, so AutoGluon holds them out exactly as mlestar and FLAML do. Writes
the test scores: predicted values, or class probabilities ``(rows, classes)`` in
class-index order; prints the wall seconds of ``fit`` as JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

METRICS = {"rmse": "root_mean_squared_error", "roc_auc": "roc_auc"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=Path, required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--metric", choices=list(METRICS), required=True)
    parser.add_argument("--time-limit", type=float, required=True, help="seconds for fit")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from autogluon.tabular import TabularPredictor

    train, val, test = (pd.read_parquet(args.splits / f"{name}.parquet") for name in ("train", "val", "test"))
    problem = "regression" if args.metric == "rmse" else ("binary" if train[args.label].nunique() == 2
                                                          else "multiclass")
    with tempfile.TemporaryDirectory() as tmp:
        predictor = TabularPredictor(label=args.label, eval_metric=METRICS[args.metric], problem_type=problem,
                                     path=tmp, verbosity=0)
        started = time.perf_counter()
        predictor.fit(train, tuning_data=val, time_limit=args.time_limit, presets="medium_quality")
        seconds = time.perf_counter() - started
        features = test.drop(columns=[args.label])
        if problem == "regression":
            scores = predictor.predict(features).to_numpy(dtype=np.float64)
        else:
            proba = predictor.predict_proba(features)
            scores = proba[sorted(proba.columns)].to_numpy(dtype=np.float64)
            scores /= scores.sum(axis=1, keepdims=True)  # float32 rounding: rows must sum to 1 for log loss
        models = list(predictor.model_names())
    np.save(args.out, scores)
    print(json.dumps({"seconds": seconds, "models": models}))


if __name__ == "__main__":
    main()
