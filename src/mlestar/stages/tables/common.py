"""Helpers the table stages share: stage 1's dataset record and the check that later stages train on it."""

from __future__ import annotations

from mlestar.domains.tables.dataset import TableDataset, differing_splits
from mlestar.errors import StageError
from mlestar.workflow.stage import DATASET_REF, StageContext


def checked_dataset(ctx: StageContext) -> TableDataset:
    """The run's table, verified against stage 1's record so no stage trains on other rows.

    The calling stage must declare :data:`DATASET_REF` in its ``inputs``.

    Raises:
        StageError: a split's content hash differs from the one stage 1 recorded.
    """
    record = ctx.read_json(DATASET_REF)
    dataset: TableDataset = ctx.dataset()
    for name in differing_splits(dataset, {n: s["hash"] for n, s in record["splits"].items()}):
        raise StageError(f"the {name} split differs from the one stage 1 analysed",
                         hint="the data changed under the run; start a new run")
    return dataset


def n_jobs(config: object) -> int:
    """Threads per fit: ``tables.n_jobs``, or every core when it is 0."""
    import os

    wanted = getattr(getattr(config, "tables"), "n_jobs")
    return int(wanted) or (os.cpu_count() or 1)
