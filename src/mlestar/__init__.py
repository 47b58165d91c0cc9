"""mlestar: take an image-classification or table problem from raw data to a served model.

Seven MLE-Star stages (situation analysis, task definition, action planning,
implementation, results evaluation, refinement, deployment preparation) run
under one runner that owns ordering, quality gates, loop-backs, caching,
lineage, the audit trail and resume.

The Python API (docs/api.md)::

    import mlestar
    run = mlestar.run("mle_star_config.yaml")
    run.status, run.metrics["test_accuracy"], run.artifact("deployment/bundle")

``import mlestar`` imports nothing heavy: each API name is imported from
:mod:`mlestar.interop.api` when first used (PEP 562 ``__getattr__``). The import
is by name on purpose (no ``TYPE_CHECKING`` imports either): a stage's code
fingerprint follows the static imports of every package ``__init__`` it passes,
and no stage depends on the API; nor may this lowest layer import upward.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_LAZY = {
    "run": ("mlestar.interop.api", "run"),
    "Run": ("mlestar.interop.api", "Run"),
    "RunOptions": ("mlestar.interop.api", "RunOptions"),
    "StageView": ("mlestar.interop.api", "StageView"),
    "load_config": ("mlestar.interop.api", "load_config"),
    "list_runs": ("mlestar.interop.api", "list_runs_in"),
    "export_mlflow": ("mlestar.interop.mlflow_export", "export_run"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mlestar' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
