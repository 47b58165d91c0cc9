"""Stage 5 for tables: a fitted :class:`~mlestar.domains.tables.model.TableModel` judged on the test split.

:func:`evaluate_table_model` computes every number and figure stage 5 reports
and writes them under one folder: the task's scores (binary scores at the
threshold chosen on *validation*, never on test), the confusion matrix,
per-class report and calibration for classes, error by decile of the target
for regression, error by value of the most important categorical columns,
SHAP explanations, and what the model costs to keep and to call. The model
is saved there again (``model.joblib``) carrying its chosen threshold, so
deployment serves what was evaluated.

The pieces (:func:`expected_calibration_error`, :func:`choose_threshold`,
:func:`bucket_errors`, :func:`error_by_category`, :func:`explain`,
:func:`efficiency`) are public for tests and for stage 6/7 reuse.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlestar.config.catalog import METRICS
from mlestar.domains.tables.dataset import TableDataset
from mlestar.domains.tables.model import TableModel, decide
from mlestar.domains.tables.progress import Progress, StepCounter, silent
from mlestar.domains.tables.scoring import score_all, to_json
from mlestar.utils.io import atomic_write_json

ECE_BINS = 15  # the usual choice in the calibration literature (Guo et al. 2017)
SHAP_ROWS = 500  # test rows explained: enough for stable mean |SHAP|, a second or less for trees
TOP_CATEGORICAL = 3  # categorical columns broken down by value
TOP_VALUES = 20  # values per categorical column (the most frequent)
IMPORTANCE_ROWS = 1000  # validation rows shuffled per column: enough to rank columns, ~1 s on 25 columns
TOP_DEPENDENCE = 3  # features given a dependence plot
LATENCY_REPEATS = (50, 200)  # at least, at most single-row predictions timed
LATENCY_BUDGET_S = 0.25  # stop adding repetitions past this (after the minimum)
THROUGHPUT_ROWS = 10_000
MISSING_LABEL = "(missing)"
STEPS_LABEL = "evaluation: test scores, SHAP, importance, plots, latency and throughput"
STEPS = 5
MODEL_FILE = "model.joblib"
FILES = ("evaluation.json", "error_by_category.json", "shap_importance.json", MODEL_FILE, "curves.png",
         "errors.png", "error_by_category.png", "shap_summary.png", "shap_dependence.png")
"""Files :func:`evaluate_table_model` writes, whatever the task (the stage adds its reports)."""

EVALUATION_METRICS = tuple(m for m, s in METRICS.items() if s.stage == "evaluation" and "tables" in s.domains)
_SCORE_METRIC = {"accuracy": "test_accuracy", "balanced_accuracy": "test_balanced_accuracy", "f1": "test_f1",
                 "macro_f1": "macro_f1", "roc_auc": "test_roc_auc", "pr_auc": "test_pr_auc",
                 "log_loss": "test_log_loss", "rmse": "test_rmse", "mae": "test_mae", "r2": "test_r2",
                 "mape": "test_mape"}


# --- calibration and threshold ---------------------------------------------------------------------


def expected_calibration_error(proba: np.ndarray, y_true: np.ndarray,
                               n_bins: int = ECE_BINS) -> tuple[float, dict[str, Any]]:
    """Top-class ECE over ``n_bins`` equal-width confidence bins: ``sum_b n_b/N |accuracy_b - confidence_b|``.

    A row falls in the bin ``(lo, hi]`` holding its largest probability (0 goes in the first bin).

    Returns:
        ``(ece, bins)`` with ``edges``, ``counts``, ``accuracy`` and ``confidence`` per bin (``None`` when empty).
    """
    proba = np.asarray(proba, dtype=np.float64)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    ece = float(np.abs(acc_sum - conf_sum).sum() / max(len(confidence), 1))
    mean = lambda sums: [float(s / c) if c else None for s, c in zip(sums, counts)]  # noqa: E731
    return ece, {"edges": np.linspace(0.0, 1.0, n_bins + 1).tolist(), "counts": counts.tolist(),
                 "accuracy": mean(acc_sum), "confidence": mean(conf_sum), "ece": ece}


def choose_threshold(y_val: np.ndarray, positive_proba: np.ndarray) -> tuple[float, float]:
    """The positive-class threshold maximising F1 on the validation rows given: ``(threshold, F1 there)``.

    Candidates are the distinct scores (``precision_recall_curve``), so the 0.5 rule is among them in effect
    and the chosen F1 is never below F1 at 0.5. Validation without both classes keeps 0.5 (F1 then NaN).
    """
    from sklearn.metrics import precision_recall_curve

    y_val = np.asarray(y_val, dtype=np.int64)
    if len(np.unique(y_val)) < 2:
        return 0.5, float("nan")
    precision, recall, thresholds = precision_recall_curve(y_val, positive_proba)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
    best = int(np.argmax(f1))  # the last (precision 1, recall 0) point has no threshold
    return float(thresholds[best]), float(f1[best])


def f1_at(y_true: np.ndarray, positive_proba: np.ndarray, threshold: float) -> float:
    """F1 of the positive class when rows at or above ``threshold`` are called positive."""
    from sklearn.metrics import f1_score

    return float(f1_score(np.asarray(y_true, dtype=np.int64), (positive_proba >= threshold).astype(np.int64),
                          zero_division=0))


# A threshold tuned on validation replaces 0.5 only when it raises validation F1 by at least this much:
# on a few hundred rows the F1-optimal cut often sits on a handful of rows and does worse on test.
MIN_THRESHOLD_GAIN = 0.01


def pick_threshold(y_val: np.ndarray, val_positive: np.ndarray) -> tuple[float, str]:
    """``(threshold, reason)``: the F1-optimal validation threshold when it clearly beats 0.5, else 0.5."""
    chosen, val_f1 = choose_threshold(y_val, val_positive)
    if math.isnan(val_f1):
        return 0.5, "validation has one class only: kept 0.5"
    at_half = f1_at(y_val, val_positive, 0.5)
    # One row crossing the cut moves F1 by about 1/positives: a gain of a couple of rows is noise.
    needed = max(MIN_THRESHOLD_GAIN, 2.0 / max(int(np.sum(y_val == 1)), 1))
    if val_f1 - at_half < needed:
        return 0.5, (f"kept 0.5: the F1-optimal validation threshold {chosen:.3f} gains only {val_f1 - at_half:+.4f} "
                     f"F1 (needs {needed:.4f}: at least {MIN_THRESHOLD_GAIN}, and 2 rows' worth)")
    return chosen, (f"{chosen:.3f} maximises positive-class F1 on validation ({val_f1:.4f} against {at_half:.4f} "
                    "at 0.5; precision_recall_curve)")


def threshold_choice(model: TableModel, dataset: TableDataset, y_test: np.ndarray,
                     test_proba: np.ndarray) -> dict[str, Any]:
    """Choose the binary threshold on validation; test scores at 0.5 and at the choice, for the record."""
    y_val = dataset.val[dataset.target].to_numpy()
    val_positive = model.predict_proba(dataset.val)[:, 1]
    best, val_f1 = choose_threshold(y_val, val_positive)
    chosen, reason = pick_threshold(y_val, val_positive)
    return {"chosen": chosen, "val_f1_at_chosen": f1_at(y_val, val_positive, chosen),
            "f1_optimal": best, "val_f1_at_f1_optimal": _finite(val_f1),
            "val_f1_at_0.5": f1_at(y_val, val_positive, 0.5), "val_rows": int(len(y_val)),
            "test_at_0.5": to_json(score_all("binary", y_test, test_proba, 0.5)),
            "test_at_chosen": to_json(score_all("binary", y_test, test_proba, chosen)), "reason": reason}


# --- error analysis ----------------------------------------------------------------------------------


def row_errors(task: str, y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-row error: 1.0 for a wrong class (the binary threshold applied), else |true - predicted|."""
    if task == "regression":
        return np.abs(np.asarray(y_true, dtype=np.float64) - scores)
    return (decide(scores, threshold) != np.asarray(y_true, dtype=np.int64)).astype(np.float64)


def bucket_errors(y_true: np.ndarray, predicted: np.ndarray, buckets: int = 10) -> list[dict[str, Any]]:
    """Count, MAE and RMSE per bucket of the true value (deciles by default; tied edges merged)."""
    import pandas as pd

    y_true = np.asarray(y_true, dtype=np.float64)
    codes, edges = pd.qcut(y_true, q=min(buckets, max(len(np.unique(y_true)), 1)), labels=False, retbins=True,
                           duplicates="drop")
    codes = np.nan_to_num(np.asarray(codes, dtype=np.float64), nan=0).astype(np.int64)
    residual = np.asarray(predicted, dtype=np.float64) - y_true
    rows = []
    for b in range(len(edges) - 1):
        part = residual[codes == b]
        rows.append({"bucket": b, "low": float(edges[b]), "high": float(edges[b + 1]), "count": int(len(part)),
                     "mae": float(np.mean(np.abs(part))) if len(part) else None,
                     "rmse": float(np.sqrt(np.mean(part ** 2))) if len(part) else None})
    return rows


def categorical_inputs(model: TableModel) -> list[str]:
    """The model's input columns encoded as categories (one-hot or ordinal)."""
    return [s.column for s in model.plan.columns if s.action in ("onehot", "ordinal")]


def error_by_category(frame: Any, errors: np.ndarray, columns: list[str],
                      top: int = TOP_VALUES) -> dict[str, list[dict[str, Any]]]:
    """Per column, its ``top`` most frequent values with row count and mean error, largest count first.

    Missing values form their own category, ``(missing)``.
    """
    import pandas as pd

    out: dict[str, list[dict[str, Any]]] = {}
    for column in columns:
        values = frame[column].astype(object).where(frame[column].notna(), MISSING_LABEL).astype(str).to_numpy()
        table = pd.DataFrame({"value": values, "error": errors}).groupby("value")["error"].agg(["count", "mean"])
        table = table.sort_values(["count", "mean"], ascending=[False, False]).head(top)
        out[column] = [{"value": str(v), "count": int(r["count"]), "error": float(r["mean"])}
                       for v, r in table.iterrows()]
    return out


# --- explanations ------------------------------------------------------------------------------------


@dataclass
class Explanation:
    """SHAP values of a sample of rows, in the learner's feature space.

    Attributes:
        explainer: ``tree`` or ``linear``.
        values: ``(rows, features)``, or ``(rows, features, classes)`` for several classes.
        data: the transformed rows explained, ``(rows, features)``.
        names: feature names (``get_feature_names_out``).
    """

    explainer: str
    values: np.ndarray
    data: np.ndarray
    names: list[str]

    def mean_abs(self) -> dict[str, float]:
        """Mean |SHAP| per feature (over rows, and over classes when there are several), largest first."""
        axes = (0, 2) if self.values.ndim == 3 else (0,)
        means = np.abs(self.values).mean(axis=axes)
        return dict(sorted(((n, float(v)) for n, v in zip(self.names, means)), key=lambda kv: -kv[1]))

    def class_of(self, index: int) -> int | None:
        """With several classes, the class whose output feature ``index`` moves most; else ``None``."""
        if self.values.ndim == 2:
            return None
        return int(np.argmax(np.abs(self.values[:, index, :]).mean(axis=0)))


def explain(model: TableModel, frame: Any, *, seed: int = 0, max_rows: int = SHAP_ROWS) -> Explanation | None:
    """SHAP values of up to ``max_rows`` rows of ``frame``: ``TreeExplainer`` on tree learners,
    ``LinearExplainer`` on the linear one; ``None`` for a learner neither explains."""
    import shap

    sample = frame.sample(n=max_rows, random_state=seed) if len(frame) > max_rows else frame
    preprocess, learner = model.pipeline.named_steps["preprocess"], model.pipeline.named_steps["model"]
    data = np.asarray(preprocess.transform(model.prepare(sample)), dtype=np.float64)
    names = [str(n) for n in preprocess.get_feature_names_out()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap warns about output-format changes across versions
        if model.plan.learner == "linear":
            kind, values = "linear", shap.LinearExplainer(learner, data).shap_values(data)
        else:
            try:
                kind, values = "tree", shap.TreeExplainer(learner).shap_values(data)
            except Exception:  # noqa: BLE001  shap raises assorted types (InvalidModelError, TypeError...) for
                return None  # models it cannot walk; the caller falls back to permutation importance
    return Explanation(kind, _shap_array(values, model.task), data, names)


def _shap_array(values: Any, task: str) -> np.ndarray:
    """One array whatever the shap version returns: a list per class becomes a class axis; for binary
    tasks only the positive class is kept (the two are mirror images)."""
    array = np.stack(values, axis=-1) if isinstance(values, list) else np.asarray(values, dtype=np.float64)
    if array.ndim == 3 and task == "binary":
        array = array[:, :, -1]
    return array


# --- efficiency --------------------------------------------------------------------------------------


def peak_memory_bytes() -> int:
    """Peak resident memory of this process so far (``getrusage``; psutil's peak working set on Windows)."""
    try:
        import resource
    except ImportError:  # Windows has no resource module
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # KiB on Linux, bytes on macOS


def single_row_latency(model: TableModel, frame: Any) -> dict[str, Any]:
    """p50/p95 seconds of ``model.predict`` on one row, after 5 warm-up calls; 50 to 200 timed calls,
    stopping after the minimum once :data:`LATENCY_BUDGET_S` is spent. Rows cycle over the first 50."""
    rows = [frame.iloc[[i]] for i in range(min(50, len(frame)))]
    for row in rows[:5]:
        model.predict(row)
    timings: list[float] = []
    started = time.perf_counter()
    while len(timings) < LATENCY_REPEATS[0] or (
            len(timings) < LATENCY_REPEATS[1] and time.perf_counter() - started < LATENCY_BUDGET_S):
        row = rows[len(timings) % len(rows)]
        tick = time.perf_counter()
        model.predict(row)
        timings.append(time.perf_counter() - tick)
    return {"latency_p50": float(np.percentile(timings, 50)), "latency_p95": float(np.percentile(timings, 95)),
            "latency_repeats": len(timings)}


def batch_throughput(model: TableModel, frame: Any, rows: int = THROUGHPUT_ROWS) -> dict[str, Any]:
    """Rows per second of ``model.predict`` on one batch of ``rows`` rows (the frame's rows repeated when
    it has fewer), best of 3."""
    batch = frame.iloc[np.resize(np.arange(len(frame)), rows)]
    best = math.inf
    for _ in range(3):
        tick = time.perf_counter()
        model.predict(batch)
        best = min(best, time.perf_counter() - tick)
    return {"throughput": rows / max(best, 1e-9), "throughput_rows": rows}


def efficiency(model: TableModel, frame: Any, model_path: Path) -> dict[str, Any]:
    """Size on disk, single-row latency, batch throughput and this process's peak memory (measured last)."""
    report: dict[str, Any] = {"model_size": int(model_path.stat().st_size)}
    report.update(single_row_latency(model, frame))
    report.update(batch_throughput(model, frame))
    report["peak_memory"] = peak_memory_bytes()
    return report


# --- the whole evaluation ----------------------------------------------------------------------------


def evaluate_table_model(model: TableModel, dataset: TableDataset, out_dir: Path, *,
                         seed: int = 0, progress: Progress = silent) -> dict[str, Any]:
    """Evaluate ``model`` on ``dataset``'s test split; write :data:`FILES` under ``out_dir``.

    The binary threshold is chosen on validation and stored on the saved model. Returns the record
    written to ``evaluation.json``; its ``metrics`` has exactly :data:`EVALUATION_METRICS` as keys
    (``None`` for those the task lacks, and for scores undefined on this test split).
    ``progress`` follows the steps as ``(STEPS_LABEL, done, STEPS)``.
    """
    from mlestar.domains.tables import evalplots
    from mlestar.domains.tables.fit import permutation_importance

    out_dir.mkdir(parents=True, exist_ok=True)
    steps = StepCounter(progress, STEPS_LABEL, STEPS)
    test = dataset.test
    y_test = test[dataset.target].to_numpy()
    scores = model.scores(test)
    record: dict[str, Any] = {"task": model.task, "n_test": int(len(test)), "class_names": list(model.class_names),
                              "learner": model.plan.learner, "threshold": None, "notes": []}
    if model.task == "binary":
        record["threshold"] = threshold_choice(model, dataset, y_test, scores)
        model = replace(model, threshold=record["threshold"]["chosen"])
    model.save(out_dir / MODEL_FILE)
    record["scores"] = to_json(score_all(model.task, y_test, scores, model.threshold))
    record.update(_task_details(model, y_test, scores))
    steps.advance()
    explanation = explain(model, test, seed=seed) if len(test) else None
    steps.advance()
    # Permutation importance costs a prediction per column and repeat: computed only when it decides
    # something (which categorical columns to break down) or stands in for SHAP.
    needed = explanation is None or len(categorical_inputs(model)) > TOP_CATEGORICAL
    record["permutation_importance"] = permutation_importance(
        model, dataset.val, seed=seed, max_rows=IMPORTANCE_ROWS, repeats=2) if needed else None
    steps.advance()
    record["error_by_category"] = _category_errors(model, test, y_test, scores, record)
    record["shap"] = _explanations(model, explanation, record, out_dir)
    evalplots.write_task_plots(out_dir, model.task, model.class_names, y_test, scores, record)
    evalplots.plot_error_by_category(record["error_by_category"], model.task, out_dir / "error_by_category.png")
    steps.advance()
    record["efficiency"] = efficiency(model, test, out_dir / MODEL_FILE)
    record["metrics"] = metrics_of(record)
    atomic_write_json(out_dir / "error_by_category.json", record["error_by_category"])
    atomic_write_json(out_dir / "shap_importance.json", {k: record["shap"][k] for k in
                                                         ("explainer", "rows", "mean_abs", "note")})
    atomic_write_json(out_dir / "evaluation.json", clean(record))
    steps.finish()
    return clean(record)


def _task_details(model: TableModel, y_test: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Confusion matrix, per-class report and calibration (classes), or errors by target decile."""
    if model.task == "regression":
        return {"target_buckets": bucket_errors(y_test, scores), "confusion_matrix": None,
                "classification_report": None, "calibration": None}
    from sklearn.metrics import classification_report, confusion_matrix

    labels = list(range(len(model.class_names)))
    predicted = decide(scores, model.threshold)
    ece, bins = expected_calibration_error(scores, y_test)
    return {"target_buckets": None, "calibration": bins,
            "confusion_matrix": {"labels": list(model.class_names),
                                 "matrix": confusion_matrix(y_test, predicted, labels=labels).tolist()},
            "classification_report": classification_report(y_test, predicted, labels=labels,
                                                           target_names=list(model.class_names),
                                                           output_dict=True, zero_division=0)}


def _category_errors(model: TableModel, test: Any, y_test: np.ndarray, scores: np.ndarray,
                     record: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Error by value of the (up to) three categorical inputs ranked highest by validation importance."""
    importance = record["permutation_importance"] or {}
    ranked = sorted(categorical_inputs(model), key=lambda c: -importance.get(c, 0.0))[:TOP_CATEGORICAL]
    if not ranked:
        record["notes"].append("no categorical input columns: no error by category")
    return error_by_category(test, row_errors(model.task, y_test, scores, model.threshold), ranked)


def _explanations(model: TableModel, explanation: Explanation | None, record: dict[str, Any],
                  out_dir: Path) -> dict[str, Any]:
    """SHAP summary and dependence plots; the permutation importance in their place when SHAP cannot
    explain the learner."""
    from mlestar.domains.tables import evalplots

    if explanation is None:
        note = (f"SHAP cannot explain the {model.plan.learner} learner: permutation importance on validation "
                "is shown instead")
        record["notes"].append(note)
        evalplots.plot_importance_fallback(record["permutation_importance"], note, out_dir)
        return {"explainer": "none", "rows": 0, "mean_abs": {}, "top": [], "note": note}
    mean_abs = explanation.mean_abs()
    top = list(mean_abs)[:TOP_DEPENDENCE]
    evalplots.plot_shap(explanation, top, list(model.class_names), out_dir)
    scale = " (in the learner's log1p target scale)" if model.plan.target_transform == "log1p" else ""
    margin = " (log-odds)" if model.task != "regression" and explanation.explainer == "tree" else ""
    return {"explainer": explanation.explainer, "rows": int(len(explanation.data)), "mean_abs": mean_abs,
            "top": top, "note": f"SHAP values of the transformed features{scale}{margin}"}


def metrics_of(record: dict[str, Any]) -> dict[str, float | None]:
    """The catalog's stage-5 table metrics from an evaluation record; ``None`` where the task lacks one."""
    values: dict[str, float | None] = dict.fromkeys(EVALUATION_METRICS)
    for name, value in record["scores"].items():
        values[_SCORE_METRIC[name]] = value
    if record["calibration"] is not None:
        values["ece"] = record["calibration"]["ece"]
    for name in ("model_size", "latency_p50", "latency_p95", "throughput", "peak_memory"):
        values[name] = float(record["efficiency"][name])
    return values


def clean(obj: Any) -> Any:
    """``obj`` with NaN and infinities as ``None`` and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return _finite(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
