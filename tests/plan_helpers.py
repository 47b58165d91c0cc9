"""Training plans for tests: a plan.json as stage 3 wrote it before the plan was typed, and plans built from it."""

from __future__ import annotations

import copy
from typing import Any

from mlestar.training.plan import PlanDocument, TrainingPlan

# plan.json of the tiny digits run (small_cnn, plain recipe), exactly as the untyped stage 3 wrote it.
LEGACY_PLAN_JSON: dict[str, Any] = {
    "adjustments": [],
    "constraint_fits": [],
    "estimate": {"params": 19562, "training_seconds": 0.12562414999948146},
    "probes": {},
    "reasons": {
        "augmentation": "stage 1: 8px images: random shifts of up to 1px; flips would change the label",
        "batch_size": "set in the config",
        "class_weighting": "stage 1: imbalance ratio 1.00 <= 1.5",
        "compile": "eager: torch.compile did not pay for airbench nets on an H200 or on CPUs (measured)",
        "device": "where stage 2 measured",
        "epochs": "set in the config",
        "flip_safe": "stage 1: 8px images: random shifts of up to 1px; flips would change the label",
        "image_size": "stage 1",
        "in_channels": "stage 1",
        "label_smoothing": "set in the config",
        "learning_rate": "set in the config",
        "model": "8px images are too small for the airbench nets' pooling",
        "momentum": "set in the config",
        "num_classes": "stage 1",
        "num_threads": "set in the config",
        "optimizer": "set in the config",
        "precision": "CPU without AMX: bf16 would be emulated and slower than fp32",
        "processes": "one process (no DDP)",
        "recipe": "the recipe this model family is tuned with",
        "schedule": "set in the config",
        "seed": "set in the config",
        "translate_pad": "stage 1: 8px images: random shifts of up to 1px; flips would change the label",
        "weight_decay": "set in the config",
        "width": "model default",
    },
    "training": {
        "augmentation": "translate", "batch_size": 32, "class_weighting": "none", "compile": False,
        "device": "cpu", "epochs": 2, "flip_safe": False, "image_size": 8, "in_channels": 1,
        "label_smoothing": 0.0, "learning_rate": 0.05, "model": "small_cnn", "momentum": 0.9,
        "num_classes": 10, "num_threads": 1, "optimizer": "sgd", "precision": "fp32", "processes": 1,
        "recipe": "plain", "schedule": "onecycle", "seed": 0, "translate_pad": 1, "weight_decay": 0.0005,
        "width": 32,
    },
}


def legacy_plan_json(**training: Any) -> dict[str, Any]:
    """A deep copy of :data:`LEGACY_PLAN_JSON` with ``training`` values changed (no validation)."""
    raw = copy.deepcopy(LEGACY_PLAN_JSON)
    raw["training"].update(training)
    return raw


def sample_plan(**values: Any) -> TrainingPlan:
    """The tiny run's plan with ``values`` changed (validated)."""
    return PlanDocument.from_json(LEGACY_PLAN_JSON).training.replace(**values)


def sample_document(**values: Any) -> PlanDocument:
    """The tiny run's whole plan.json with training ``values`` changed (validated)."""
    return PlanDocument.from_json(legacy_plan_json(**values))
