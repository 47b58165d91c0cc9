"""Runs side by side: every metric and every config value, with the differences marked.

The rows come from :mod:`mlestar.workflow.compare` (the same ones ``mlestar
compare`` prints); this module adds the dashboard's confinement and run summaries.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlestar.dashboard.files import resolve_run
from mlestar.dashboard.runs import read_config, summarize
from mlestar.errors import MlestarError
from mlestar.workflow.compare import config_differences, flatten, metric_differences
from mlestar.workflow.state import RunState

MAX_COMPARED = 8


def compare_runs(runs_dir: Path, run_ids: list[str]) -> dict[str, Any]:
    """Compare 2 to :data:`MAX_COMPARED` runs of one runs folder.

    Returns ``runs`` (list summaries, in the order asked), ``metrics`` and ``config``:
    every row of :func:`~mlestar.workflow.compare.metric_differences` and
    :func:`~mlestar.workflow.compare.config_differences`, equal ones included
    (the page hides them on request).

    Raises:
        MlestarError: for fewer than two or more than :data:`MAX_COMPARED` runs.
        RunNotFoundError: for an id that names no run.
    """
    ids = list(dict.fromkeys(run_ids))
    if not 2 <= len(ids) <= MAX_COMPARED:
        raise MlestarError(f"compare takes 2 to {MAX_COMPARED} different runs, got {len(ids)}",
                           hint="tick two or more runs in the list, then press Compare")
    folders = [resolve_run(runs_dir, run_id) for run_id in ids]
    states = [RunState.load(folder).data for folder in folders]
    now = time.time()
    return {"runs": [summarize(f, s, now).model_dump() for f, s in zip(folders, states)],
            "metrics": metric_differences([s.get("metrics") or {} for s in states]),
            "config": config_differences([flatten(read_config(f)) for f in folders])}
