"""Scores of table predictions, by task, computed with scikit-learn.

Names are the catalog's without their split prefix (``roc_auc`` for
``test_roc_auc`` and ``val_roc_auc``), so one function serves validation,
cross-validation folds and the test report.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CLASSIFICATION_SCORES = ("accuracy", "balanced_accuracy", "f1", "macro_f1", "roc_auc", "pr_auc", "log_loss")
REGRESSION_SCORES = ("rmse", "mae", "r2", "mape")
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape"})


def score_all(task: str, y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Every score of ``task``: ``scores`` are probabilities ``(rows, classes)`` or predicted values."""
    if task == "regression":
        return regression_scores(y_true, scores)
    return classification_scores(y_true, scores, threshold)


def regression_scores(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R² and MAPE (as a fraction; rows whose target is 0 are left out of it)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    nonzero = y_true != 0
    mape = float(np.mean(np.abs((y_true[nonzero] - predicted[nonzero]) / y_true[nonzero]))) if nonzero.any() \
        else float("nan")
    return {"rmse": float(np.sqrt(mean_squared_error(y_true, predicted))),
            "mae": float(mean_absolute_error(y_true, predicted)), "r2": float(r2_score(y_true, predicted)),
            "mape": mape}


def classification_scores(y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, balanced accuracy, F1 (positive class for binary, macro otherwise), macro F1,
    ROC AUC and PR AUC (one-vs-rest macro for several classes) and log loss."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss

    from mlestar.domains.tables.model import decide

    y_true = np.asarray(y_true, dtype=np.int64)
    predicted = decide(proba, threshold)
    labels = list(range(proba.shape[1]))
    binary = proba.shape[1] == 2
    return {"accuracy": float(accuracy_score(y_true, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, predicted)),
            "f1": float(f1_score(y_true, predicted, average="binary" if binary else "macro", zero_division=0)),
            "macro_f1": float(f1_score(y_true, predicted, average="macro", labels=labels, zero_division=0)),
            **_ranking_scores(y_true, proba),
            "log_loss": float(log_loss(y_true, np.clip(proba, 1e-15, 1.0), labels=labels))}


def _ranking_scores(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.preprocessing import label_binarize

    present = np.unique(y_true)
    if len(present) < 2:  # one class in this split: ranking scores are undefined
        return {"roc_auc": float("nan"), "pr_auc": float("nan")}
    if proba.shape[1] == 2:
        return {"roc_auc": float(roc_auc_score(y_true, proba[:, 1])),
                "pr_auc": float(average_precision_score(y_true, proba[:, 1]))}
    onehot = label_binarize(y_true, classes=list(range(proba.shape[1])))
    keep = onehot.sum(axis=0) > 0
    return {"roc_auc": float(roc_auc_score(onehot[:, keep], proba[:, keep], average="macro")),
            "pr_auc": float(average_precision_score(onehot[:, keep], proba[:, keep], average="macro"))}


def primary_score_name(primary_metric: str | None, task: str) -> str:
    """The score behind a primary metric (``test_roc_auc`` -> ``roc_auc``); the task's default when the
    metric is not a score (a latency, a size)."""
    name = (primary_metric or "").removeprefix("test_")
    valid = REGRESSION_SCORES if task == "regression" else CLASSIFICATION_SCORES
    if name in valid:
        return name
    return {"binary": "roc_auc", "multiclass": "accuracy", "regression": "rmse"}[task]


def better(name: str, a: float, b: float) -> bool:
    """True when score ``a`` beats ``b`` under ``name``'s direction."""
    return a < b if name in LOWER_IS_BETTER else a > b


def gain(name: str, new: float, old: float) -> float:
    """How much ``new`` improves on ``old`` (positive is better, whatever the direction)."""
    return old - new if name in LOWER_IS_BETTER else new - old


def to_json(scores: dict[str, Any]) -> dict[str, float | None]:
    """NaN as None, for JSON files and metrics."""
    return {k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)) for k, v in scores.items()}
