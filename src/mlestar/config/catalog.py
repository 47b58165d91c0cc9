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


def stage_option(value: str | None) -> str | None:
    """:func:`normalize_stage` for a user's ``--from``/``--only`` (or ``from_stage=``): ``None`` stays ``None``.

    Raises:
        ConfigError: the name is unknown (with the suggestion).
    """
    from mlestar.errors import ConfigError

    if value is None:
        return None
    try:
        return normalize_stage(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


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
        domains: the domains whose stages produce it (``images``, ``tables``).
        tasks: the tasks it applies to (``binary``, ``multiclass``, ``regression``); empty: all.
            A stage reports ``None`` for a metric of its domain that the run's task lacks.
    """

    stage: str
    unit: str
    higher_is_better: bool
    description: str
    domains: tuple[str, ...] = ("images",)
    tasks: tuple[str, ...] = ()

    def applies(self, domain: str, task: str | None = None) -> bool:
        """True when a run of ``domain`` (and ``task``, when known) can produce this metric."""
        return domain in self.domains and (task is None or not self.tasks or task in self.tasks)


BOTH = ("images", "tables")
TABLES = ("tables",)
CLASSIFICATION = ("binary", "multiclass")
REGRESSION = ("regression",)


def _spec(stage: str, unit: str, higher: bool, description: str, domains: tuple[str, ...] = ("images",),
          tasks: tuple[str, ...] = ()) -> MetricSpec:
    return MetricSpec(stage, unit, higher, description, domains, tasks)


S1, S2, S3, S4, S5, S6, S7 = STAGE_ORDER
METRICS: dict[str, MetricSpec] = {
    # 1. situation analysis
    "num_train_images": _spec(S1, "count", True, "training images usable after checks"),
    "num_classes": _spec(S1, "count", True, "classes found", BOTH, CLASSIFICATION),
    "imbalance_ratio": _spec(S1, "number", False, "largest class count / smallest", BOTH, CLASSIFICATION),
    "unreadable_fraction": _spec(S1, "fraction", False, "files that could not be decoded"),
    "leakage_fraction": _spec(S1, "fraction", False, "test images also in train (exact)"),
    "near_duplicate_fraction": _spec(S1, "fraction", False,
                                     "test images with a near-duplicate in train (perceptual hash)"),
    "blocking_findings": _spec(S1, "count", False, "data problems graded blocking", BOTH),
    "num_train_rows": _spec(S1, "count", True, "training rows (train and validation splits)", TABLES),
    "num_features": _spec(S1, "count", True, "columns other than the target, ids and dropped ones", TABLES),
    "missing_fraction": _spec(S1, "fraction", False, "share of missing cells among the feature columns", TABLES),
    "duplicate_fraction": _spec(S1, "fraction", False, "share of training rows that repeat an earlier row",
                                TABLES),
    "target_skew": _spec(S1, "number", False, "skewness of the target", TABLES, REGRESSION),
    "adversarial_auc": _spec(S1, "number", False, "ROC AUC of a model telling test rows from training rows "
                                                  "(0.5: no drift)", TABLES),
    "leakage_suspects": _spec(S1, "count", False, "columns that alone predict the target almost perfectly, "
                                                  "or id-like columns that carry target information", TABLES),
    # 2. task definition
    "estimated_epoch_time": _spec(S2, "seconds", False, "probe-measured time of one epoch"),
    "estimated_fit_time": _spec(S2, "seconds", False, "probe-measured time of one default fit on all training "
                                                      "rows", TABLES),
    # 3. action planning
    "planned_training_time": _spec(S3, "seconds", False, "estimated training time of the plan", BOTH),
    "planned_params": _spec(S3, "count", False, "parameters of the planned model"),
    "planned_features": _spec(S3, "count", False, "columns the planned pipeline feeds the learner", TABLES),
    # 4. implementation
    "val_accuracy": _spec(S4, "fraction", True, "best-epoch validation accuracy", BOTH, CLASSIFICATION),
    "train_accuracy": _spec(S4, "fraction", True, "training accuracy at the best epoch"),
    "val_loss": _spec(S4, "number", False, "validation loss at the best epoch"),
    "training_time": _spec(S4, "seconds", False, "wall time spent training", BOTH),
    "epochs_completed": _spec(S4, "count", True, "epochs trained"),
    "val_roc_auc": _spec(S4, "fraction", True, "validation ROC AUC (one-vs-rest macro for several classes)",
                         TABLES, CLASSIFICATION),
    "val_log_loss": _spec(S4, "number", False, "validation log loss", TABLES, CLASSIFICATION),
    "val_rmse": _spec(S4, "number", False, "validation root mean squared error", TABLES, REGRESSION),
    "val_r2": _spec(S4, "number", True, "validation coefficient of determination", TABLES, REGRESSION),
    "cv_score": _spec(S4, "number", True, "mean out-of-fold primary score over the cross-validation folds "
                                          "(the validation score without k-fold)", TABLES),
    "cv_std": _spec(S4, "number", False, "standard deviation of the fold scores (0 without k-fold)", TABLES),
    "best_iteration": _spec(S4, "count", True, "boosting rounds kept by early stopping", TABLES),
    # 5. results evaluation
    "test_accuracy": _spec(S5, "fraction", True, "accuracy on the held-out test split", BOTH, CLASSIFICATION),
    "macro_f1": _spec(S5, "fraction", True, "macro-averaged F1 on test", BOTH, CLASSIFICATION),
    "macro_precision": _spec(S5, "fraction", True, "macro-averaged precision on test"),
    "macro_recall": _spec(S5, "fraction", True, "macro-averaged recall on test"),
    "test_balanced_accuracy": _spec(S5, "fraction", True, "mean per-class recall on test", TABLES,
                                    CLASSIFICATION),
    "test_f1": _spec(S5, "fraction", True, "F1 on test: of the positive class at the chosen threshold "
                                           "(binary), macro-averaged (multiclass)", TABLES, CLASSIFICATION),
    "test_roc_auc": _spec(S5, "fraction", True, "ROC AUC on test (one-vs-rest macro for several classes)",
                          TABLES, CLASSIFICATION),
    "test_pr_auc": _spec(S5, "fraction", True, "average precision on test (macro for several classes)",
                         TABLES, CLASSIFICATION),
    "test_log_loss": _spec(S5, "number", False, "log loss on test", TABLES, CLASSIFICATION),
    "test_rmse": _spec(S5, "number", False, "root mean squared error on test", TABLES, REGRESSION),
    "test_mae": _spec(S5, "number", False, "mean absolute error on test", TABLES, REGRESSION),
    "test_r2": _spec(S5, "number", True, "coefficient of determination on test", TABLES, REGRESSION),
    "test_mape": _spec(S5, "fraction", False, "mean absolute percentage error on test", TABLES, REGRESSION),
    "ece": _spec(S5, "fraction", False, "expected calibration error on test (15 bins); images: of the "
                                        "temperature-scaled probabilities the bundle serves", BOTH, CLASSIFICATION),
    "model_size": _spec(S5, "bytes", False, "fp32 state dict size on disk (tables: the pickled pipeline)", BOTH),
    "num_params": _spec(S5, "count", False, "trainable parameters"),
    "latency_p50": _spec(S5, "seconds", False, "median batch-1 latency", BOTH),
    "latency_p95": _spec(S5, "seconds", False, "95th percentile batch-1 latency", BOTH),
    "throughput": _spec(S5, "number", True, "images (tables: rows) per second at a large batch", BOTH),
    "peak_memory": _spec(S5, "bytes", False, "peak resident memory during evaluation", BOTH),
    # 6. refinement
    "refined_val_accuracy": _spec(S6, "fraction", True, "validation accuracy of the adopted model"),
    "refined_val_score": _spec(S6, "number", True, "validation primary score of the adopted model", TABLES),
    "refinement_improvement": _spec(S6, "number", True,
                                    "mean validation gain of the adopted model over the baseline "
                                    "across seeds (0 when the baseline is kept)", BOTH),
    "refinement_regression": _spec(S6, "number", False,
                                   "how far the best refined configuration fell below the baseline "
                                   "(mean over seeds; 0 when it did not): gate it <= 0 for no regression", BOTH),
    "refinement_noise": _spec(S6, "number", False, "larger seed-to-seed standard deviation of the two sides",
                              BOTH),
    "trials_completed": _spec(S6, "count", True, "Optuna trials that finished", BOTH),
    "trials_pruned": _spec(S6, "count", False, "Optuna trials stopped early by the pruner", BOTH),
    # 7. deployment
    "onnx_max_abs_diff": _spec(S7, "number", False, "max |ONNX - trained model| over probe inputs", BOTH),
    "torchscript_max_abs_diff": _spec(S7, "number", False, "max |TorchScript - PyTorch|"),
    "parity_top1_agreement": _spec(S7, "fraction", True,
                                   "lowest share of probe inputs whose export top-1 matches the trained model",
                                   BOTH, CLASSIFICATION),
    "deploy_latency_p95": _spec(S7, "seconds", False, "served runtime's batch-1 p95 latency", BOTH),
    "deploy_throughput": _spec(S7, "number", True, "served runtime's images (tables: rows) per second, best of "
                                                   "batch 32 and 64", BOTH),
    "bundle_size": _spec(S7, "bytes", False, "size of the inference bundle folder", BOTH),
    "quantized_accuracy_drop": _spec(S7, "fraction", False,
                                     "validation accuracy lost by the int8 model (none: not quantized)"),
}

# The metric a project is judged by when the config does not name one.
DEFAULT_PRIMARY: dict[str, str] = {"images": "test_accuracy", "binary": "test_roc_auc",
                                   "multiclass": "test_accuracy", "regression": "test_rmse"}


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
