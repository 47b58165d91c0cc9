"""Stage 3 for tables: a :class:`TablePlan` from stage 1's findings and the time budget.

Each column gets an action with its reason: numbers are imputed by the
median (and scaled only for linear learners), categories one-hot encoded up
to :data:`~mlestar.domains.tables.plan.ONEHOT_MAX` values and ordinal
encoded beyond (tree learners split on codes well), and columns stage 1
recommends dropping (constant, duplicated, leaked, id-like) are dropped. The
learner is LightGBM unless the config names another, or the measured time of
one fit does not fit the budget, which falls back to the linear baseline.
"""

from __future__ import annotations

from typing import Any

from mlestar.domains.tables.learners import learner_spec
from mlestar.domains.tables.plan import ONEHOT_MAX, ColumnStep, TablePlan

DEFAULT_LEARNER = "lightgbm"


def plan_columns(columns: dict[str, dict[str, Any]], features: list[str], drops: dict[str, str],
                 scale: bool, native_categorical: bool) -> list[ColumnStep]:
    """One step per feature column (``columns``: name -> ``{"kind", "distinct", "missing"}``)."""
    return [column_step(name, columns[name], drops.get(name), scale, native_categorical) for name in features]


def column_step(name: str, info: dict[str, Any], drop_reason: str | None, scale: bool,
                native_categorical: bool) -> ColumnStep:
    """The action for one column, and why."""
    kind = info["kind"]
    if drop_reason:
        return ColumnStep(column=name, kind=kind, action="drop", reason=drop_reason)
    missing = f"; {info['missing']} missing value(s) imputed" if info.get("missing") else ""
    if kind in ("numeric", "boolean", "datetime"):
        how = "median-imputed" + (", standardised for the linear learner" if scale else ", unscaled (trees "
                                  "do not need it)")
        return ColumnStep(column=name, kind=kind, action="numeric", impute="median", scale=scale,
                          reason=f"{kind}: {how}" + (" (dates as days since 1970)" if kind == "datetime" else ""))
    distinct = int(info.get("distinct", 0))
    if distinct <= ONEHOT_MAX or not native_categorical:
        return ColumnStep(column=name, kind=kind, action="onehot", impute="constant",
                          reason=f"categorical with {distinct} values: one-hot (unseen values all zero){missing}")
    return ColumnStep(column=name, kind=kind, action="ordinal", impute="constant",
                      reason=f"categorical with {distinct} values (> {ONEHOT_MAX}): ordinal codes, which tree "
                             f"learners split on without {distinct} sparse columns{missing}")


def make_plan(record: dict[str, Any], recs: dict[str, Any], *, learner: str | None, seed: int,
              cv_folds: int, budget_s: float | None, fit_time_s: float | None,
              adjustments: dict[str, Any] | None = None) -> TablePlan:
    """The plan for the dataset ``record`` (stage 1's ``dataset.json``) and ``recs`` (its recommendations).

    ``fit_time_s``: stage 2's measured time of one default fit; with ``budget_s`` it decides whether
    LightGBM fits the budget (with ``cv_folds`` extra fits) or the linear baseline is used instead.
    ``adjustments``: plan fields a remedy changed after a failed gate (applied last, reasons kept).
    """
    reasons: dict[str, str] = {}
    name = choose_learner(learner, budget_s, fit_time_s, cv_folds, reasons)
    spec = learner_spec(name)
    drops = {d["column"]: d["reason"] for d in recs.get("drop_columns", [])}
    steps = plan_columns(record["columns"], list(record["features"]), drops, spec.needs_scaling,
                         spec.native_categorical)
    plan = TablePlan(task=record["task"], target=record["target"], learner=name, seed=seed, cv_folds=cv_folds,
                     columns=steps, class_weight=_class_weight(record, recs, reasons),
                     target_transform=_target_transform(record, recs, name, reasons), reasons=reasons)
    reasons["early_stopping"] = (f"{spec.name} stops after {plan.early_stopping_rounds} rounds without validation "
                                 "improvement" if spec.boosting else f"{spec.name} has no rounds to stop")
    return plan.with_changes(**(adjustments or {})) if adjustments else plan


def choose_learner(configured: str | None, budget_s: float | None, fit_time_s: float | None, cv_folds: int,
                   reasons: dict[str, str]) -> str:
    """The configured learner, else LightGBM when its measured fits fit the budget, else linear."""
    if configured:
        learner_spec(configured)
        reasons["learner"] = f"{configured}: named in training.learner"
        return configured
    fits = 1 + max(cv_folds, 0)
    if budget_s is not None and fit_time_s is not None and fit_time_s * fits > budget_s:
        reasons["learner"] = (f"linear: {fits} LightGBM fit(s) of {fit_time_s:.1f}s each (measured in stage 2) "
                              f"exceed the {budget_s:.0f}s training budget")
        return "linear"
    measured = f"; {fits} fit(s) of about {fit_time_s:.1f}s each" if fit_time_s is not None else ""
    reasons["learner"] = f"{DEFAULT_LEARNER}: the default for tables, strong on mixed column types{measured}"
    return DEFAULT_LEARNER


def _class_weight(record: dict[str, Any], recs: dict[str, Any], reasons: dict[str, str]) -> str:
    rec = recs.get("class_weighting", {"choice": "none", "reason": "no recommendation"})
    if record["task"] == "regression":
        return "none"
    reasons["class_weight"] = f"{rec['choice']}: {rec['reason']}"
    return "balanced" if rec["choice"] == "balanced" else "none"


def _target_transform(record: dict[str, Any], recs: dict[str, Any], learner: str, reasons: dict[str, str]) -> str:
    rec = recs.get("target_transform", {"choice": "none", "reason": "no recommendation"})
    if record["task"] != "regression":
        return "none"
    reasons["target_transform"] = f"{rec['choice']}: {rec['reason']}"
    return "log1p" if rec["choice"] == "log1p" else "none"


# Remedies after a failed gate, as changes to the learner's parameters. Image remedies with no
# table meaning (augmentation, batch size, precision) change nothing and say so.
_PARAM_REMEDIES: dict[str, tuple[str, float, float | None, float | None]] = {
    "raise_learning_rate": ("learning_rate", 2.0, None, 0.5),
    "lower_learning_rate": ("learning_rate", 0.5, 1e-3, None),
    "simplify_model": ("num_leaves", 0.5, 4, None),
    "grow_model": ("num_leaves", 2.0, None, 1024),
    "increase_epochs": ("n_estimators", 2.0, None, 20000),
    "reduce_epochs": ("n_estimators", 0.5, 10, None),
}


def remedy_params(plan: TablePlan, remedy: str, defaults: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """``(new params, what changed)`` for ``remedy`` applied to ``plan`` (``defaults``: the learner's)."""
    params = {**defaults, **plan.params}
    if remedy == "add_regularization":
        lam = max(float(params.get("reg_lambda", 0.0)) * 10, 1.0)
        kids = int(params.get("min_child_samples", 20)) * 2
        return {**plan.params, "reg_lambda": lam, "min_child_samples": kids}, \
            f"reg_lambda -> {lam:g}, min_child_samples -> {kids}"
    if remedy not in _PARAM_REMEDIES or _PARAM_REMEDIES[remedy][0] not in params:
        return dict(plan.params), f"{remedy} has no meaning for the {plan.learner} learner: nothing changed"
    key, factor, low, high = _PARAM_REMEDIES[remedy]
    value = float(params[key]) * factor
    value = max(low, value) if low is not None else value
    value = min(high, value) if high is not None else value
    value = int(round(value)) if isinstance(params[key], int) else value
    return {**plan.params, key: value}, f"{key} {params[key]} -> {value}"


def apply_remedies(plan: TablePlan, adjustments: list[dict[str, Any]], defaults: dict[str, Any]
                   ) -> tuple[TablePlan, list[str]]:
    """Apply the remedies of failed gates in order; returns the plan and one line per remedy."""
    lines = []
    for adj in adjustments:
        params, what = remedy_params(plan, adj["remedy"], defaults)
        reason = f"remedy {adj['remedy']} after gate {adj['gate']!r} ({adj['diagnosis']}): {what}"
        plan = plan.with_changes(params=params, reasons={**plan.reasons, f"remedy_{len(lines) + 1}": reason})
        lines.append(reason)
    return plan, lines
