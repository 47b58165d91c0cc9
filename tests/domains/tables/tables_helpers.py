"""Small tables for the table tests: built here, written to tmp_path, loaded like a user's file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def mixed_frame(rows: int = 400, seed: int = 0) -> Any:
    """Numbers (with gaps), categories (with gaps), a date, a group and an id; ``y`` depends on x and color."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    color = rng.choice(["red", "green", "blue"], size=rows)
    noise = rng.normal(scale=0.5, size=rows)
    y = ((x + (color == "red") * 1.5 + noise) > 0.5).astype(int)
    x_gappy = x.copy()
    x_gappy[rng.random(rows) < 0.1] = np.nan
    color_gappy = np.where(rng.random(rows) < 0.05, None, color)
    return pd.DataFrame({"row_id": np.arange(rows), "x": x_gappy, "color": color_gappy,
                         "day": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
                         "shop": rng.choice([f"s{i}" for i in range(12)], size=rows), "y": y})


def write_csv(frame: Any, path: Path) -> Path:
    """Write ``frame`` as CSV (no index) and return the path."""
    frame.to_csv(path, index=False)
    return path


def table_config(**data: Any) -> Any:
    """A validated config for a table source."""
    from mlestar.config.schema import MlestarConfig

    return MlestarConfig(data={"source": "table", **data})


def record_of(dataset: Any) -> dict[str, Any]:
    """The parts of stage 1's dataset.json the planner reads."""
    return {"task": dataset.task, "target": dataset.target, "features": list(dataset.features),
            "columns": {n: {"kind": i.kind, "distinct": i.distinct, "missing": i.missing}
                        for n, i in dataset.columns.items()}}
