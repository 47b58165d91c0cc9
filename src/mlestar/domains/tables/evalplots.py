"""Figures of the table evaluation (stage 5), one PNG each, with the same names for every task.

``curves.png``: ROC and precision-recall curves (one-vs-rest per class for
several classes), or predicted against actual and residuals for regression.
``errors.png``: confusion matrix and reliability diagram, or error by decile
of the target. ``error_by_category.png``, ``shap_summary.png`` and
``shap_dependence.png`` for every task. Figures are drawn with scikit-learn's
displays and shap's plots where they exist, rendered in memory and written
atomically; text from the data has ``$`` escaped so it never becomes mathtext.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from mlestar.domains.tables.plots import save_plot  # noqa: E402

if TYPE_CHECKING:
    from mlestar.domains.tables.evaluate import Explanation

_DPI = 100
MAX_CURVES = 10  # classes drawn one-vs-rest; more lines are unreadable


def plain(text: Any, limit: int = 30) -> str:
    """``text`` shortened and with ``$`` escaped, so matplotlib draws it literally."""
    text = str(text)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def message(text: str, path: Path) -> Path:
    """A small figure holding one line of text (a plot that has nothing to show says why)."""
    fig, ax = plt.subplots(figsize=(6.0, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, plain(text, 200), ha="center", va="center", wrap=True)
    return save_plot(fig, path, dpi=_DPI)


def write_task_plots(out_dir: Path, task: str, class_names: tuple[str, ...], y_true: np.ndarray,
                     scores: np.ndarray, record: dict[str, Any]) -> None:
    """``curves.png`` and ``errors.png`` for the task."""
    if task == "regression":
        plot_regression_curves(y_true, scores, out_dir / "curves.png")
        plot_target_buckets(record["target_buckets"], out_dir / "errors.png")
        return
    plot_classification_curves(y_true, scores, class_names, out_dir / "curves.png")
    plot_confusion_and_reliability(record["confusion_matrix"], record["calibration"], out_dir / "errors.png")


def plot_classification_curves(y_true: np.ndarray, proba: np.ndarray, class_names: tuple[str, ...],
                               path: Path) -> Path:
    """ROC (left) and precision-recall (right): the positive class for binary tasks, one-vs-rest per class
    (the first :data:`MAX_CURVES`) otherwise."""
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    fig, (roc, pr) = plt.subplots(1, 2, figsize=(11.0, 4.5))
    classes = [1] if proba.shape[1] == 2 else list(range(min(proba.shape[1], MAX_CURVES)))
    for c in classes:
        truth = np.asarray(y_true) == c
        if truth.all() or not truth.any():
            continue  # a class absent from test (or alone in it) has no curve
        name = plain(class_names[c], 20)
        RocCurveDisplay.from_predictions(truth, proba[:, c], ax=roc, name=name)
        PrecisionRecallDisplay.from_predictions(truth, proba[:, c], ax=pr, name=name)
    roc.plot([0, 1], [0, 1], "--", color="gray")
    roc.set_title("ROC" + (" (one-vs-rest)" if len(classes) > 1 else ""))
    pr.set_title("precision-recall" + (" (one-vs-rest)" if len(classes) > 1 else ""))
    return save_plot(fig, path, dpi=_DPI)


def plot_regression_curves(y_true: np.ndarray, predicted: np.ndarray, path: Path) -> Path:
    """Predicted against actual (left) and residual against predicted (right)."""
    from sklearn.metrics import PredictionErrorDisplay

    fig, (left, right) = plt.subplots(1, 2, figsize=(11.0, 4.5))
    for ax, kind in ((left, "actual_vs_predicted"), (right, "residual_vs_predicted")):
        PredictionErrorDisplay.from_predictions(y_true, predicted, kind=kind, ax=ax, subsample=2000,
                                                random_state=0)
    left.set_title("predicted against actual")
    right.set_title("residuals (actual - predicted)")
    return save_plot(fig, path, dpi=_DPI)


def plot_confusion_and_reliability(confusion: dict[str, Any], calibration: dict[str, Any], path: Path) -> Path:
    """Confusion matrix (left; counts) and reliability diagram of the top-class confidence (right)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = [plain(n, 15) for n in confusion["labels"]]
    side = min(4.5 + 0.35 * len(labels), 16.0)
    fig, (cm_ax, rel) = plt.subplots(1, 2, figsize=(side + 5.0, side * 0.8),
                                     gridspec_kw={"width_ratios": [side, 5.0]})
    ConfusionMatrixDisplay(np.asarray(confusion["matrix"]), display_labels=labels).plot(
        ax=cm_ax, colorbar=False, include_values=len(labels) <= 20, xticks_rotation="vertical")
    cm_ax.set_title("confusion matrix (test)")
    edges = np.asarray(calibration["edges"])
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    accuracy = np.array([np.nan if a is None else a for a in calibration["accuracy"]])
    filled = ~np.isnan(accuracy)
    rel.bar(centers[filled], accuracy[filled], widths[filled], edgecolor="black", label="accuracy")
    rel.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    rel.set(xlim=(0, 1), ylim=(0, 1), xlabel="top-class confidence", ylabel="accuracy",
            title=f"reliability (ECE {calibration['ece']:.3f})")
    rel.legend(loc="upper left")
    return save_plot(fig, path, dpi=_DPI)


def plot_target_buckets(buckets: list[dict[str, Any]], path: Path) -> Path:
    """MAE and RMSE per decile of the true target, with each bucket's range and count."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(buckets) + 2), 4.5))
    x = np.arange(len(buckets))
    mae = [b["mae"] or 0.0 for b in buckets]
    rmse = [b["rmse"] or 0.0 for b in buckets]
    ax.bar(x - 0.2, mae, 0.4, label="MAE")
    ax.bar(x + 0.2, rmse, 0.4, label="RMSE")
    ax.set_xticks(x, [f"{b['low']:.3g}–{b['high']:.3g}\n(n={b['count']})" for b in buckets], fontsize=7,
                  rotation=45)
    ax.set(xlabel="bucket of the true target (deciles)", ylabel="error", title="error by target bucket (test)")
    ax.legend()
    return save_plot(fig, path, dpi=_DPI)


def plot_error_by_category(breakdown: dict[str, list[dict[str, Any]]], task: str, path: Path) -> Path:
    """One horizontal bar chart per column: error of each value (count in the label)."""
    if not breakdown:
        return message("no categorical input columns: no error by category", path)
    label = "MAE" if task == "regression" else "error rate"
    fig, axes = plt.subplots(1, len(breakdown), figsize=(5.0 * len(breakdown), 5.0), squeeze=False, sharex=True)
    for ax, (column, rows) in zip(axes[0], breakdown.items()):
        names = [f"{plain(r['value'], 20)} (n={r['count']})" for r in rows][::-1]
        ax.barh(np.arange(len(rows)), [r["error"] for r in rows][::-1], color="tab:red")
        ax.set_yticks(np.arange(len(rows)), names, fontsize=7)
        ax.set(xlabel=label, title=plain(column))
    fig.suptitle(f"test {label} by category value (top {max(len(r) for r in breakdown.values())} by count)")
    return save_plot(fig, path, dpi=_DPI)


@contextlib.contextmanager
def _global_rng_kept() -> Iterator[None]:
    """shap's plots warn about NumPy's seeded global generator, and some draw from it (the beeswarm, the
    dependence plot's jitter; the multiclass bar plot only warns): restore it afterwards, so drawing a plot
    never changes what later seeded code draws."""
    import warnings

    state = np.random.get_state()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*global RNG.*")
        try:
            yield
        finally:
            np.random.set_state(state)


def plot_shap(explanation: Explanation, top: list[str], class_names: list[str], out_dir: Path) -> None:
    """``shap_summary.png`` (beeswarm; for several classes, mean |SHAP| bars by class) and
    ``shap_dependence.png`` (the ``top`` features side by side)."""
    import shap

    names = [plain(n) for n in explanation.names]
    fig = plt.figure()
    with _global_rng_kept():
        if explanation.values.ndim == 3:
            per_class = [explanation.values[:, :, k] for k in range(explanation.values.shape[2])]
            shap.summary_plot(per_class, explanation.data, feature_names=names, plot_type="bar", show=False,
                              class_names=[plain(c, 20) for c in class_names], max_display=20)
        else:
            shap.summary_plot(explanation.values, explanation.data, feature_names=names, show=False,
                              max_display=20)
    save_plot(plt.gcf() if plt.get_fignums() else fig, out_dir / "shap_summary.png", dpi=_DPI)
    plt.close("all")
    plot_dependence(explanation, top, class_names, out_dir / "shap_dependence.png")


def plot_dependence(explanation: Explanation, top: list[str], class_names: list[str], path: Path) -> Path:
    """SHAP dependence plots of ``top`` features (for several classes: the class each moves most)."""
    import shap

    fig, axes = plt.subplots(1, len(top), figsize=(5.5 * len(top), 4.0), squeeze=False)
    fig.subplots_adjust(wspace=0.4)  # room for shap's two-line y labels
    for ax, feature in zip(axes[0], top):
        index = explanation.names.index(feature)
        cls = explanation.class_of(index)
        matrix = explanation.values if cls is None else explanation.values[:, :, cls]
        with _global_rng_kept():  # the dependence plot's jitter draws from the global generator
            shap.dependence_plot(index, matrix, explanation.data, interaction_index=None, ax=ax, show=False,
                                 feature_names=[plain(n) for n in explanation.names])
        if cls is not None:
            ax.set_title(f"SHAP for class {plain(class_names[cls], 20)}")
    return save_plot(fig, path, dpi=_DPI)


def plot_importance_fallback(importance: dict[str, float], note: str, out_dir: Path) -> None:
    """When SHAP cannot explain the learner: permutation importance bars in ``shap_summary.png`` and a
    note in ``shap_dependence.png``."""
    items = list(importance.items())[:20][::-1]
    fig, ax = plt.subplots(figsize=(7.0, max(3.0, 0.3 * len(items) + 1)))
    ax.barh(np.arange(len(items)), [v for _, v in items])
    ax.set_yticks(np.arange(len(items)), [plain(k) for k, _ in items], fontsize=8)
    ax.set(xlabel="drop in score when shuffled (validation)", title=plain(note, 200))
    ax.title.set_fontsize(8)
    save_plot(fig, out_dir / "shap_summary.png", dpi=_DPI)
    message(note, out_dir / "shap_dependence.png")
