"""Training: device and precision choice, tensor augmentation, the fit loop, checkpoints.

The names below load on first use (PEP 562), so importing a torch-free
submodule (:mod:`mlestar.training.plan`, :mod:`mlestar.training.spec`,
:mod:`mlestar.training.recipes`) does not import torch: the runner and the
dashboard read plans without paying for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlestar.training.checkpoint import load_model_file, save_model_file
    from mlestar.training.loop import EpochCallback, FitResult, evaluate_logits, fit, split_to_tensors
    from mlestar.training.precision import choose_device, choose_precision
    from mlestar.training.spec import TrainSpec

_HOMES = {"load_model_file": "checkpoint", "save_model_file": "checkpoint", "EpochCallback": "loop",
          "FitResult": "loop", "evaluate_logits": "loop", "fit": "loop", "split_to_tensors": "loop",
          "choose_device": "precision", "choose_precision": "precision", "TrainSpec": "spec"}

__all__ = ["EpochCallback", "FitResult", "TrainSpec", "choose_device", "choose_precision", "evaluate_logits",
           "fit", "load_model_file", "save_model_file", "split_to_tensors"]


def __getattr__(name: str) -> Any:
    """Load an exported name from its submodule on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
