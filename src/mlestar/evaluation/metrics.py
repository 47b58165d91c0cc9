"""Classification metrics and calibration from predicted class probabilities.

Everything scikit-learn computes comes from scikit-learn; only the expected
calibration error (multiclass, which sklearn does not offer) is computed here.
All returned numbers are plain Python ``int``/``float`` so the dicts go
straight into :func:`mlestar.utils.io.atomic_write_json`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

_MOST_CONFUSED = 5  # pairs listed in a report; more is noise for a reader
_ECE_BINS = 15  # the common choice in the calibration literature (Guo et al. 2017)


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Score predicted probabilities against true labels.

    Args:
        y_true: ``(N,)`` integer labels in ``0..C-1``.
        probs: ``(N, C)`` class probabilities (softmax output); the
            prediction is the arg-max of each row.
        class_names: ``C`` names, label index -> name.

    Returns:
        ``accuracy``, ``balanced_accuracy`` (mean recall over classes present
        in ``y_true``), ``top{k}_accuracy`` with ``k = min(5, C - 1)`` when
        ``C > 2``, ``macro_precision``, ``macro_recall``, ``macro_f1``,
        ``weighted_f1`` (macro averages run over all ``C`` classes, an absent
        class scoring 0), ``per_class`` (list of ``{class, precision, recall,
        f1, support}``), ``confusion_matrix`` (counts, rows = true, columns =
        predicted), ``most_confused`` (up to 5 ``{true, predicted, count}``
        off-diagonal pairs, largest first), ``ece`` and ``n``.

    Raises:
        ValueError: shapes disagree, or there are no samples.
    """
    y_true, probs = _check_inputs(y_true, probs, len(class_names))
    y_pred = probs.argmax(axis=1)
    labels = np.arange(len(class_names))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    result: dict[str, Any] = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": _balanced_accuracy(y_true, y_pred),
    }
    result.update(_top_k(y_true, probs, labels))
    result.update(_averaged_scores(y_true, y_pred, labels))
    result["per_class"] = _per_class(y_true, y_pred, labels, class_names)
    result["confusion_matrix"] = cm.astype(int).tolist()
    result["most_confused"] = most_confused_pairs(cm, class_names)
    result["ece"] = expected_calibration_error(probs, y_true, n_bins=_ECE_BINS)[0]
    return result


def _check_inputs(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes and return ``(labels as int64, probs as float64)``."""
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != num_classes:
        raise ValueError(f"probs must be (N, {num_classes}), got {probs.shape}")
    if len(y_true) != len(probs):
        raise ValueError(f"{len(y_true)} labels but {len(probs)} probability rows")
    if len(y_true) == 0:
        raise ValueError("no samples to score")
    if y_true.min() < 0 or y_true.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {y_true.min()}..{y_true.max()}")
    return y_true, probs


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """sklearn's balanced accuracy, quiet about predicted classes absent from ``y_true``.

    Small test splits often miss a class; sklearn then warns and averages over
    the classes that are present, which is the answer we want.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y_true, y_pred))


def _top_k(y_true: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``{"top{k}_accuracy": ...}`` for ``k = min(5, C - 1)``; empty for two classes or fewer.

    With ``C`` classes top-``C`` is always 1, so ``k`` stops at ``C - 1``.
    """
    if len(labels) <= 2:
        return {}
    k = min(5, len(labels) - 1)
    return {f"top{k}_accuracy": float(top_k_accuracy_score(y_true, probs, k=k, labels=labels))}


def _averaged_scores(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Macro precision/recall/F1 and support-weighted F1 over ``labels``."""
    macro = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    weighted = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
    return {
        "macro_precision": float(macro[0]),
        "macro_recall": float(macro[1]),
        "macro_f1": float(macro[2]),
        "weighted_f1": float(weighted[2]),
    }


def _per_class(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray,
               class_names: list[str]) -> list[dict[str, Any]]:
    """One ``{class, precision, recall, f1, support}`` row per class, in label order."""
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0)
    return [
        {"class": str(name), "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    ]


def most_confused_pairs(cm: np.ndarray, class_names: list[str], top: int = _MOST_CONFUSED) -> list[dict[str, Any]]:
    """The ``top`` largest off-diagonal cells of a count confusion matrix.

    Returns ``{true, predicted, count}`` dicts, largest count first; ties
    go to the lower (true, predicted) index so the order is deterministic.
    Cells with a zero count are never listed.
    """
    off = np.array(cm, dtype=np.int64)
    np.fill_diagonal(off, 0)
    rows, cols = np.nonzero(off)
    counts = off[rows, cols]
    order = np.lexsort((cols, rows, -counts))[:top]  # last key is primary: count descending
    return [
        {"true": str(class_names[rows[i]]), "predicted": str(class_names[cols[i]]), "count": int(counts[i])}
        for i in order
    ]


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray,
                               n_bins: int = _ECE_BINS) -> tuple[float, dict[str, Any]]:
    """Top-label expected calibration error over equal-width confidence bins.

    Confidence is the largest probability of each row; a sample falls in the
    bin ``(lo, hi]`` holding its confidence (a confidence of exactly 0 goes
    in the first bin). ECE is ``sum_b n_b / N * |accuracy_b - confidence_b|``.

    Returns:
        ``(ece, bin_data)``. ``bin_data`` holds ``edges`` (``n_bins + 1``
        floats), ``counts``, ``accuracy`` and ``confidence`` per bin (``None``
        for an empty bin) and ``ece``: everything
        :func:`mlestar.evaluation.plots.plot_reliability_diagram` draws.

    Raises:
        ValueError: ``n_bins < 1``, shapes disagree, or there are no samples.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    y_true, probs = _check_inputs(y_true, probs, np.asarray(probs).shape[-1])
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    # ceil(conf * n) - 1 puts conf in (lo, hi]; the clip catches conf == 0 and
    # confidences a hair above 1 from float error in a softmax.
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    ece = float(np.abs(acc_sum - conf_sum).sum() / len(y_true))  # n_b/N * |acc_b - conf_b| summed
    return ece, {
        "edges": np.linspace(0.0, 1.0, n_bins + 1).tolist(),
        "counts": counts.astype(int).tolist(),
        "accuracy": _bin_means(acc_sum, counts),
        "confidence": _bin_means(conf_sum, counts),
        "ece": ece,
    }


def _bin_means(sums: np.ndarray, counts: np.ndarray) -> list[float | None]:
    """Per-bin mean, ``None`` for an empty bin (JSON has no NaN)."""
    return [float(s / c) if c else None for s, c in zip(sums, counts)]
