"""Stage 2's measurement for tables: how long one LightGBM fit takes on this machine.

A probe fits :data:`PROBE_ROUNDS` rounds on up to :data:`PROBE_ROWS` training
rows and scales the time linearly to all rows and to :data:`EXPECTED_ROUNDS`
rounds (where early stopping typically ends with the default learning rate).
Linear in rows and rounds is what histogram boosting costs once the bins are built.
"""

from __future__ import annotations

import time
from typing import Any

from mlestar.domains.tables.dataset import TableDataset
from mlestar.domains.tables.learners import create_learner
from mlestar.domains.tables.plan import ColumnStep, TablePlan, build_preprocessor

PROBE_ROWS = 20_000
PROBE_ROUNDS = 50
EXPECTED_ROUNDS = 500


def probe_fit_time(dataset: TableDataset, *, n_jobs: int, seed: int) -> dict[str, Any]:
    """Measured seconds of the probe and the estimate for one full default fit."""
    train = dataset.train.sample(n=min(PROBE_ROWS, len(dataset.train)), random_state=seed)
    steps = [ColumnStep(column=c, kind=dataset.columns[c].kind,
                        action="numeric" if dataset.columns[c].kind in ("numeric", "boolean", "datetime")
                        else "ordinal", impute="median", reason="probe") for c in dataset.features]
    plan = TablePlan(task=dataset.task, target=dataset.target, columns=steps)
    from mlestar.domains.tables.model import TableModel

    x = TableModel(None, plan, dataset.class_names).prepare(train)
    started = time.perf_counter()
    encoded = build_preprocessor(plan).fit_transform(x)
    learner = create_learner("lightgbm", dataset.task, {"n_estimators": PROBE_ROUNDS}, seed=seed, n_jobs=n_jobs)
    learner.fit(encoded, train[dataset.target].to_numpy())
    seconds = time.perf_counter() - started
    scale = len(dataset.train) / len(train) * EXPECTED_ROUNDS / PROBE_ROUNDS
    return {"probe_rows": len(train), "probe_rounds": PROBE_ROUNDS, "probe_seconds": seconds,
            "expected_rounds": EXPECTED_ROUNDS, "estimated_fit_seconds": seconds * scale, "n_jobs": n_jobs}
