"""The names the config may refer to: stages, metrics and remedies.

This is the one table that both the config schema (to validate gates) and
the stages (to declare what they produce) read, so a gate can never name a
metric that no stage produces. The stage contract test checks that every
registered stage produces exactly the metrics listed here for it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

# Canonical stage names in workflow order. The number gives the folder
# prefix (``04_implementation``) and the order the runner follows.
STAGE_ORDER: tuple[str, ...] = (
    "situation_analysis",
    "task_definition",
    "action_planning",
    "implementation",
    "evaluation",
    "refinement",
    "deployment",
)

# Names used by the MLE-Star walkthrough and its sample projects.
_STAGE_ALIASES: dict[str, str] = {
    "results_evaluation": "evaluation",
    "deployment_prep": "deployment",
    "deployment_preparation": "deployment",
    "situation": "situation_analysis",
    "planning": "action_planning",
    "training": "implementation",
}


def stage_number(name: str) -> int:
    """Return the 1-based position of a canonical stage name."""
    return STAGE_ORDER.index(name) + 1


def stage_folder(name: str) -> str:
    """Return the run sub-folder of a stage, e.g. ``'04_implementation'``."""
    return f"{stage_number(name):02d}_{name}"


def normalize_stage(raw: str) -> str:
    """Map ``'4'``, ``'stage_4_implementation'``, ``'7_deployment_prep'`` to a canonical name.

    Raises:
        ValueError: with a close-match suggestion when the name is unknown.
    """
    key = str(raw).strip().lower().replace("-", "_").replace(" ", "_")
    if key.startswith("stage_"):
        key = key[len("stage_"):]
    head, _, tail = key.partition("_")
    if head.isdigit():
        index = int(head)
        if 1 <= index <= len(STAGE_ORDER) and (not tail or normalize_stage(tail) == STAGE_ORDER[index - 1]):
            return STAGE_ORDER[index - 1]
        key = tail or key
    if key in STAGE_ORDER:
        return key
    if key in _STAGE_ALIASES:
        return _STAGE_ALIASES[key]
    raise ValueError(f"unknown stage {raw!r}{suggest(key, [*STAGE_ORDER, *_STAGE_ALIASES])}")


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``''``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class MetricSpec:
    """A metric a stage produces.

    Attributes:
        stage: canonical name of the stage that produces it.
        unit: how thresholds on it are parsed: fraction, seconds, bytes, number, count.
        higher_is_better: direction used for targets and comparisons.
        description: one line for reports and ``mlestar validate``.
    """

    stage: str
    unit: str
    higher_is_better: bool
    description: str


METRICS: dict[str, MetricSpec] = {
    # 1. situation analysis
    "num_train_images": MetricSpec("situation_analysis", "count", True, "training images usable after checks"),
    "num_classes": MetricSpec("situation_analysis", "count", True, "classes found"),
    "imbalance_ratio": MetricSpec("situation_analysis", "number", False, "largest class count / smallest"),
    "unreadable_fraction": MetricSpec("situation_analysis", "fraction", False, "files that could not be decoded"),
    "leakage_fraction": MetricSpec("situation_analysis", "fraction", False, "test images also in train (exact)"),
    "near_duplicate_fraction": MetricSpec("situation_analysis", "fraction", False,
                                          "test images with a near-duplicate in train (perceptual hash)"),
    "blocking_findings": MetricSpec("situation_analysis", "count", False, "data problems graded blocking"),
    # 2. task definition
    "estimated_epoch_time": MetricSpec("task_definition", "seconds", False, "probe-measured time of one epoch"),
    # 3. action planning
    "planned_training_time": MetricSpec("action_planning", "seconds", False, "estimated training time of the plan"),
    "planned_params": MetricSpec("action_planning", "count", False, "parameters of the planned model"),
    # 4. implementation
    "val_accuracy": MetricSpec("implementation", "fraction", True, "best-epoch validation accuracy"),
    "train_accuracy": MetricSpec("implementation", "fraction", True, "training accuracy at the best epoch"),
    "val_loss": MetricSpec("implementation", "number", False, "validation loss at the best epoch"),
    "training_time": MetricSpec("implementation", "seconds", False, "wall time spent training"),
    "epochs_completed": MetricSpec("implementation", "count", True, "epochs trained"),
    # 5. results evaluation
    "test_accuracy": MetricSpec("evaluation", "fraction", True, "accuracy on the held-out test split"),
    "macro_f1": MetricSpec("evaluation", "fraction", True, "macro-averaged F1 on test"),
    "macro_precision": MetricSpec("evaluation", "fraction", True, "macro-averaged precision on test"),
    "macro_recall": MetricSpec("evaluation", "fraction", True, "macro-averaged recall on test"),
    "model_size": MetricSpec("evaluation", "bytes", False, "fp32 state dict size on disk"),
    "num_params": MetricSpec("evaluation", "count", False, "trainable parameters"),
    "latency_p50": MetricSpec("evaluation", "seconds", False, "median batch-1 latency"),
    "latency_p95": MetricSpec("evaluation", "seconds", False, "95th percentile batch-1 latency"),
    "throughput": MetricSpec("evaluation", "number", True, "images per second at a large batch"),
    "peak_memory": MetricSpec("evaluation", "bytes", False, "peak resident memory during evaluation"),
    # 6. refinement
    "refined_val_accuracy": MetricSpec("refinement", "fraction", True, "validation accuracy of the adopted model"),
    "refinement_improvement": MetricSpec("refinement", "number", True,
                                         "mean val-accuracy gain of the adopted model over the baseline "
                                         "across seeds (0 when the baseline is kept)"),
    "refinement_regression": MetricSpec("refinement", "number", False,
                                        "how far the best refined configuration fell below the baseline "
                                        "(mean over seeds; 0 when it did not): gate it <= 0 for no regression"),
    "refinement_noise": MetricSpec("refinement", "number", False,
                                   "larger seed-to-seed standard deviation of the two sides"),
    "trials_completed": MetricSpec("refinement", "count", True, "Optuna trials that finished"),
    "trials_pruned": MetricSpec("refinement", "count", False, "Optuna trials stopped early by the pruner"),
    # 7. deployment
    "onnx_max_abs_diff": MetricSpec("deployment", "number", False, "max |ONNX - PyTorch| over probe images"),
    "torchscript_max_abs_diff": MetricSpec("deployment", "number", False, "max |TorchScript - PyTorch|"),
    "parity_top1_agreement": MetricSpec("deployment", "fraction", True,
                                        "lowest share of probe images whose export top-1 matches PyTorch"),
    "deploy_latency_p95": MetricSpec("deployment", "seconds", False, "served runtime's batch-1 p95 latency"),
    "deploy_throughput": MetricSpec("deployment", "number", True,
                                    "served runtime's images per second, best of batch 32 and 64"),
    "bundle_size": MetricSpec("deployment", "bytes", False, "size of the inference bundle folder"),
    "quantized_accuracy_drop": MetricSpec("deployment", "fraction", False,
                                          "validation accuracy lost by the int8 model (none: not quantized)"),
}

# Metrics people write in sample configs and walkthroughs, mapped to ours.
METRIC_ALIASES: dict[str, str] = {
    "accuracy": "test_accuracy",
    "f1": "macro_f1",
    "f1_score": "macro_f1",
    "precision": "macro_precision",
    "recall": "macro_recall",
    "inference_time": "latency_p95",
    "latency": "latency_p95",
    "training_time": "training_time",
    "model_size": "model_size",
}


def normalize_metric(raw: str) -> str:
    """Return the canonical metric name or raise ``ValueError`` with a suggestion."""
    key = str(raw).strip().lower()
    if key in METRICS:
        return key
    if key in METRIC_ALIASES:
        return METRIC_ALIASES[key]
    raise ValueError(f"no stage produces a metric named {raw!r}{suggest(key, list(METRICS))}")


# Remedies the runner may apply after a failed gate (see workflow.remedies).
REMEDIES: tuple[str, ...] = (
    "increase_epochs",
    "raise_learning_rate",
    "lower_learning_rate",
    "add_regularization",
    "add_augmentation",
    "simplify_model",
    "grow_model",
    "reduce_epochs",
    "reduce_batch_size",
    "mixed_precision",
)
