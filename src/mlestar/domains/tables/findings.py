"""Stage 1 for tables, the verdicts: graded findings, recommendations for planning, and the metrics.

Each function reads the ``analysis`` dict that :func:`mlestar.domains.tables.analysis.analyze_table`
builds (column profiles, duplicates, target, correlation, adversarial, leakage)
and adds no computation of its own, so the thresholds here are the whole policy.
"""

from __future__ import annotations

from typing import Any

GRADES = ("blocking", "warning", "info")  # most severe first: the order findings are returned in
MAX_ITEMS = 20  # items listed per finding; ``count`` always covers them all
HIGH_CARDINALITY = 50  # categorical columns with more distinct values need encoding care
IMBALANCE_BALANCED = 3.0  # largest/smallest class above this: recommend balanced class weights
SKEW_LOG1P = 1.0  # a non-negative regression target skewed beyond this is modelled as log1p
DRIFT_WARN_AUC = 0.7
DRIFT_STRONG_AUC = 0.9
DUPLICATE_ROWS_WARN = 0.01
TEST_IN_TRAIN_WARN = 0.01
MISSING_WARN = 0.5
OUTLIER_NOTE = 0.01  # numeric columns with more IQR outliers than this share of rows are listed
RARE_CLASS_ROWS = 10


def finding(grade: str, check: str, message: str, items: list[Any] | tuple[Any, ...] = (),
            count: int | None = None) -> dict[str, Any]:
    """One finding; ``items`` are capped at :data:`MAX_ITEMS`, ``count`` (default: all items) is not."""
    if grade not in GRADES:
        raise ValueError(f"grade must be one of {GRADES}, got {grade!r}")
    listed = list(items)
    return {"grade": grade, "check": check, "message": message,
            "count": int(len(listed) if count is None else count),
            "items": [i if isinstance(i, int) else str(i) for i in listed[:MAX_ITEMS]]}


def findings(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything stage 1 should tell the user, most severe first (same-grade order kept)."""
    out = [*_leakage_findings(analysis["leakage"]), *_drift_findings(analysis["adversarial"]),
           *_column_findings(analysis["columns"], analysis["rows"]), *_duplicate_findings(analysis["duplicates"]),
           *_target_findings(analysis["target"])]
    return sorted(out, key=lambda f: GRADES.index(f["grade"]))


def _scored(suspects: list[dict[str, Any]]) -> str:
    return ", ".join(f"{s['column']} ({_metric_name(s['metric'])} {s['score']:.3f}"
                     + (f", Spearman {s['spearman']:.2f}" if s.get("spearman") is not None else "") + ")"
                     for s in suspects[:MAX_ITEMS])


def _metric_name(metric: str) -> str:
    return {"roc_auc": "ROC AUC", "r2": "R²"}.get(metric, metric)


def _leakage_findings(leak: dict[str, Any]) -> list[dict[str, Any]]:
    """Features that alone predict the target: blocking; excluded ones: info; informative ids: warning."""
    used = [s for s in leak["leaks"] if s["role"] == "feature"]
    unused = [s for s in leak["leaks"] if s["role"] != "feature"]
    out = []
    if used:
        out.append(finding("blocking", "leakage", f"{len(used)} feature column(s) alone predict the target almost "
                           f"perfectly (likely target leakage): {_scored(used)}; drop them (data.drop_columns) "
                           "or fix the data", [s["column"] for s in used]))
    if unused:
        out.append(finding("info", "leakage_excluded", f"column(s) kept out of the features alone predict the "
                           f"target almost perfectly: {_scored(unused)}", [s["column"] for s in unused]))
    ids = leak["informative_ids"]
    if ids:
        out.append(finding("warning", "id_information", f"id-like column(s) carry information about the target "
                           f"(row order or key assignment follows the target): {_scored(ids)}; they are kept out "
                           "of the features, but the split may not be random", [s["column"] for s in ids]))
    return out


def _drift_findings(adversarial: dict[str, Any]) -> list[dict[str, Any]]:
    auc = adversarial["auc"]
    if auc is None:
        return [finding("info", "drift", "adversarial validation skipped: too few test or training rows, "
                                         "or no feature columns")]
    columns = adversarial["top_columns"]
    if auc >= DRIFT_STRONG_AUC:
        return [finding("warning", "drift", f"STRONG train/test drift: a classifier tells test rows from training "
                        f"rows with ROC AUC {auc:.3f} (>= {DRIFT_STRONG_AUC}); the test score will not match "
                        f"validation; driven by {', '.join(columns)}", columns)]
    if auc >= DRIFT_WARN_AUC:
        return [finding("warning", "drift", f"train/test drift: a classifier tells test rows from training rows "
                        f"with ROC AUC {auc:.3f} (>= {DRIFT_WARN_AUC}); driven by {', '.join(columns)}", columns)]
    return [finding("info", "drift", f"no notable train/test drift (adversarial ROC AUC {auc:.3f})", count=0)]


def _column_findings(columns: dict[str, dict[str, Any]], rows: int) -> list[dict[str, Any]]:
    out = []
    constant = [n for n, c in columns.items() if c["constant"]]
    near = [n for n, c in columns.items() if c["near_constant"]]
    if constant or near:
        out.append(finding("warning", "constant", f"{len(constant)} constant and {len(near)} near-constant "
                           f"(one value in >= 99% of rows) column(s): they carry (almost) no signal",
                           constant + near))
    mostly_missing = [n for n, c in columns.items() if c["missing"] >= MISSING_WARN and not c["constant"]]
    if mostly_missing:
        out.append(finding("warning", "missing", f"{len(mostly_missing)} column(s) miss at least "
                           f"{MISSING_WARN:.0%} of their values", mostly_missing))
    some = [n for n, c in columns.items() if 0 < c["missing"] < MISSING_WARN]
    if some:
        out.append(finding("info", "missing_values", f"{len(some)} column(s) have missing values "
                           "(the pipeline imputes them)", some))
    out += _cardinality_and_outliers(columns, rows)
    return out


def _cardinality_and_outliers(columns: dict[str, dict[str, Any]], rows: int) -> list[dict[str, Any]]:
    out = []
    high = [n for n, c in columns.items() if c["kind"] == "categorical" and c["distinct"] > HIGH_CARDINALITY]
    if high:
        out.append(finding("info", "high_cardinality", f"{len(high)} categorical column(s) with more than "
                           f"{HIGH_CARDINALITY} distinct values (target or frequency encoding, not one-hot)", high))
    outliers = [n for n, c in columns.items() if c.get("outliers", 0) > OUTLIER_NOTE * max(rows, 1)]
    if outliers:
        out.append(finding("info", "outliers", f"{len(outliers)} numeric column(s) with more than {OUTLIER_NOTE:.0%} "
                           f"of values beyond 1.5 IQR of the quartiles (trees do not mind; linear models may)",
                           outliers))
    return out


def _duplicate_findings(dupes: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    rows = dupes["rows"]
    if rows["count"]:
        grade = "warning" if rows["share"] >= DUPLICATE_ROWS_WARN else "info"
        out.append(finding(grade, "duplicate_rows", f"{rows['count']} training row(s) ({rows['share']:.2%}) repeat "
                           "an earlier row exactly (row numbers: train, then validation)", rows["rows"],
                           rows["count"]))
    if dupes["columns"]:
        out.append(finding("warning", "duplicate_columns", "column(s) identical to an earlier one: " + ", ".join(
            f"{dup} = {kept}" for dup, kept in dupes["columns"][:MAX_ITEMS]), [d for d, _ in dupes["columns"]]))
    shared = dupes["test_in_train"]
    if shared["count"]:
        grade = "warning" if shared["share"] >= TEST_IN_TRAIN_WARN else "info"
        out.append(finding(grade, "test_in_train", f"{shared['count']} test row(s) ({shared['share']:.2%}) are "
                           "identical to a training row (the test score over-states new data)", shared["rows"],
                           shared["count"]))
    return out


def _target_findings(target: dict[str, Any]) -> list[dict[str, Any]]:
    if "skew" in target:
        if abs(target["skew"]) > SKEW_LOG1P:
            return [finding("info", "target_skew", f"the target is skewed (skewness {target['skew']:.2f})", count=1)]
        return []
    out = []
    ratio = target["imbalance_ratio"]
    if ratio > IMBALANCE_BALANCED:
        out.append(finding("info", "imbalance", f"classes are imbalanced: largest/smallest = {ratio:.1f} "
                                                "(balanced class weights recommended)", count=1))
    rare = [n for n, c in zip(target["class_names"], target["training_counts"]) if c < RARE_CLASS_ROWS]
    if rare:
        out.append(finding("warning", "rare_classes", f"{len(rare)} class(es) have fewer than {RARE_CLASS_ROWS} "
                           "training rows: their scores will be noisy", rare))
    return out


# --- recommendations ---------------------------------------------------------------

def recommend(analysis: dict[str, Any]) -> dict[str, Any]:
    """``recommendations.json`` for stage 3 (planning); every choice carries its reason."""
    columns = analysis["columns"]
    return {
        "drop_columns": _drop_columns(analysis),
        "class_weighting": _class_weighting(analysis["target"]),
        "target_transform": _target_transform(analysis["target"]),
        "high_cardinality": [{"column": n, "distinct": c["distinct"]} for n, c in columns.items()
                             if c["kind"] == "categorical" and c["distinct"] > HIGH_CARDINALITY],
        "drift_columns": list(analysis["adversarial"]["top_columns"])
        if (analysis["adversarial"]["auc"] or 0.0) >= DRIFT_WARN_AUC else [],
        "constant_columns": [n for n, c in columns.items() if c["constant"] or c["near_constant"]],
    }


def _drop_columns(analysis: dict[str, Any]) -> list[dict[str, str]]:
    """Constant, duplicate, leaking and id-like columns, one entry per column (reasons joined)."""
    reasons: dict[str, list[str]] = {}
    for name, column in analysis["columns"].items():
        if column["constant"] or column["near_constant"]:
            share = column["top_share"]
            reasons.setdefault(name, []).append("constant" if column["constant"] else f"near-constant ({share:.1%} "
                                                                                    "one value)")
    for dup, kept in analysis["duplicates"]["columns"]:
        reasons.setdefault(dup, []).append(f"duplicate of {kept}")
    for suspect in analysis["leakage"]["leaks"]:
        reasons.setdefault(suspect["column"], []).append(
            f"leakage suspect ({_metric_name(suspect['metric'])} {suspect['score']:.3f} alone)")
    for name, column in analysis["columns"].items():
        if column["kind"] == "id" or column["role"] == "id":
            reasons.setdefault(name, []).append("id-like (a label per row)")
    return [{"column": n, "reason": "; ".join(r)} for n, r in reasons.items()]


def _class_weighting(target: dict[str, Any]) -> dict[str, str]:
    if "imbalance_ratio" not in target:
        return {"choice": "none", "reason": "regression: no classes to weight"}
    ratio = target["imbalance_ratio"]
    if ratio > IMBALANCE_BALANCED:
        return {"choice": "balanced", "reason": f"imbalance ratio {ratio:.2f} > {IMBALANCE_BALANCED}"}
    return {"choice": "none", "reason": f"imbalance ratio {ratio:.2f} <= {IMBALANCE_BALANCED}"}


def _target_transform(target: dict[str, Any]) -> dict[str, str]:
    if "skew" not in target:
        return {"choice": "none", "reason": "classification: the target is a class"}
    skew = target["skew"]
    if target["non_negative"] and skew > SKEW_LOG1P:
        return {"choice": "log1p", "reason": f"non-negative target with skewness {skew:.2f} > {SKEW_LOG1P}"}
    why = "the target has negative values" if not target["non_negative"] else f"skewness {skew:.2f} <= {SKEW_LOG1P}"
    return {"choice": "none", "reason": why}


# --- metrics ------------------------------------------------------------------

def stage_metrics(analysis: dict[str, Any], classification: bool, num_features: int) -> dict[str, float | None]:
    """The catalog's stage-1 table metrics; those the task lacks are None."""
    target = analysis["target"]
    leak = analysis["leakage"]
    return {
        "num_train_rows": float(analysis["rows"]), "num_features": float(num_features),
        "missing_fraction": analysis["missing_fraction"],
        "duplicate_fraction": analysis["duplicates"]["rows"]["share"],
        "target_skew": None if classification else target["skew"],
        "adversarial_auc": analysis["adversarial"]["auc"],
        "leakage_suspects": float(len(leak["leaks"]) + len(leak["informative_ids"])),
        "blocking_findings": float(sum(f["grade"] == "blocking" for f in analysis["findings"])),
        "num_classes": float(len(target["class_names"])) if classification else None,
        "imbalance_ratio": target["imbalance_ratio"] if classification else None,
    }
