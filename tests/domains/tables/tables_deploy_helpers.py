"""Small fitted table models for the stage-7 tests (export, bundle, serving)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlestar.config.schema import MlestarConfig
from mlestar.domains.tables.dataset import TableDataset, load_table_dataset
from mlestar.domains.tables.fit import fit_plan
from mlestar.domains.tables.model import TableModel
from mlestar.domains.tables.planning import make_plan


def record_of(ds: TableDataset) -> dict[str, Any]:
    return {"task": ds.task, "target": ds.target, "features": list(ds.features),
            "columns": {n: {"kind": i.kind, "distinct": i.distinct, "missing": i.missing}
                        for n, i in ds.columns.items()}}


def fit(ds: TableDataset, learner: str | None = None, **changes: Any) -> TableModel:
    plan = make_plan(record_of(ds), {}, learner=learner, seed=0, cv_folds=0, budget_s=None, fit_time_s=None)
    # a tiny HistGradientBoosting: its failed conversion formats every tree into the error message
    params = {"max_iter": 3, "max_leaf_nodes": 4} if learner == "hist_gradient_boosting" else (
        {} if learner == "linear" else {"n_estimators": 60})
    return fit_plan(plan.with_changes(params=params, **changes), ds.train, ds.val, ds.class_names).model


def builtin(name: str) -> TableDataset:
    return load_table_dataset(MlestarConfig(data={"source": "table", "dataset": name}).data, 0)


def mixed_table(folder: Path, rows: int = 400) -> TableDataset:
    """Categories with missing values (one-hot and, past 15 values, ordinal), a number with gaps, a date."""
    rng = np.random.default_rng(0)
    color = rng.choice(np.array(["red", "green", "blue", None], dtype=object), rows)
    city = rng.choice(np.array([f"city{i}" for i in range(20)], dtype=object), rows)
    size = np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows))
    when = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 700, rows), unit="D")
    signal = (color == "red") * 1.5 + np.nan_to_num(size) + (np.char.endswith(city.astype(str), "3") * 1.0)
    y = np.where(signal + rng.normal(scale=0.5, size=rows) > 0.6, "yes", "no")
    frame = pd.DataFrame({"color": color, "city": city, "size": size, "when": when, "y": y})
    path = folder / "mixed.parquet"
    frame.to_parquet(path, index=False)
    return load_table_dataset(MlestarConfig(data={"source": "table", "path": str(path), "target": "y"}).data, 0)
