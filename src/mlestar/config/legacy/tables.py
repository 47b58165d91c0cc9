"""The MLE-Star tabular sample project's config, translated to a ``data.source: table`` config.

That project (an ensemble of scikit-learn, XGBoost and LightGBM models on a
CSV) writes ``project.type: tabular``, a ``data`` section naming the file and
the target column, ``models`` (the learners), ``feature_engineering``,
``quality_gates.stage_4_implementation.min_cv_score``,
``evaluation.targets.{classification,regression}`` and
``error_handling.data_issues``. What maps is moved; everything else is named
in a warning with the reason, as for the image samples. The file runs once
``data.path`` points at a CSV (or Parquet, TSV, JSON lines) file.
"""

from __future__ import annotations

from typing import Any

from mlestar.config.legacy.common import (Translation, as_list, as_mapping, item_name, norm, number, to, walk,
                                          warn_with)
from mlestar.config.schema import BUILTIN_TABLES
from mlestar.errors import ConfigError

TABULAR_KINDS = {"tabular", "tabulardata", "structureddata", "structured", "regression", "tabularclassification",
                 "tabularregression"}

_LEARNERS = {"lightgbm": "lightgbm", "lgbm": "lightgbm", "lgbmclassifier": "lightgbm", "lgbmregressor": "lightgbm",
             "xgboost": "xgboost", "xgb": "xgboost", "xgbclassifier": "xgboost", "xgbregressor": "xgboost",
             "catboost": "catboost", "histgradientboosting": "hist_gradient_boosting",
             "gradientboosting": "hist_gradient_boosting", "logisticregression": "linear", "linearregression": "linear",
             "ridge": "linear", "linear": "linear"}
_ENSEMBLE_NAMES = {"ensemble", "voting", "votingclassifier", "votingregressor", "stacking", "stackingclassifier",
                   "stackingregressor"}

# quality gate key -> (metric, comparison)
_GATES: dict[str, tuple[str, str]] = {
    "min_cv_score": ("cv_score", ">="), "max_cv_std": ("cv_std", "<="),
    "min_val_accuracy": ("val_accuracy", ">="), "min_val_auc": ("val_roc_auc", ">="),
    "max_val_rmse": ("val_rmse", "<="), "min_val_r2": ("val_r2", ">="),
    "min_accuracy": ("test_accuracy", ">="), "min_test_accuracy": ("test_accuracy", ">="),
    "min_f1_score": ("test_f1", ">="), "min_auc": ("test_roc_auc", ">="), "min_roc_auc": ("test_roc_auc", ">="),
    "min_r2": ("test_r2", ">="), "min_r2_score": ("test_r2", ">="), "max_rmse": ("test_rmse", "<="),
    "max_mae": ("test_mae", "<="), "max_mape": ("test_mape", "<="),
    "max_missing_fraction": ("missing_fraction", "<="), "max_leakage_suspects": ("leakage_suspects", "<="),
    "max_training_time": ("training_time", "<="), "max_inference_time": ("latency_p95", "<="),
    "max_latency": ("latency_p95", "<="),
}
# evaluation target name -> metric
_TARGETS = {"accuracy": "test_accuracy", "f1": "test_f1", "f1_score": "test_f1", "roc_auc": "test_roc_auc",
            "auc": "test_roc_auc", "precision_recall_auc": "test_pr_auc", "pr_auc": "test_pr_auc",
            "log_loss": "test_log_loss", "balanced_accuracy": "test_balanced_accuracy", "rmse": "test_rmse",
            "mae": "test_mae", "r2": "test_r2", "r2_score": "test_r2", "mape": "test_mape"}
_TASK_OF_BLOCK = {"classification": ("binary", "multiclass"), "regression": ("regression",)}

_PLANNED = ("stage 3 plans preprocessing column by column from stage 1's findings (median imputation, one-hot "
            "or ordinal encoding by cardinality, scaling only for linear learners), each step with its reason "
            "in plan.md; ignored")
_DATA_ISSUES = {
    "missingvalues": "stage 1 reports missing shares per column; the plan imputes (median, or a 'missing' "
                     "category)",
    "duplicates": "stage 1 counts duplicate rows and columns; duplicate columns are dropped by the plan, "
                  "duplicate rows are reported, not removed",
    "outliers": "stage 1 counts outliers per column (IQR); tree learners need no clipping",
    "classimbalance": "stage 1 measures the imbalance; the plan balances class weights above a 3:1 ratio",
    "imbalance": "stage 1 measures the imbalance; the plan balances class weights above a 3:1 ratio",
}


def is_tabular(raw: dict[str, Any]) -> bool:
    """True when the legacy file's ``project.type`` (or ``category``) names a tabular project."""
    project = raw.get("project")
    return isinstance(project, dict) and any(norm(project.get(k, "")) in TABULAR_KINDS for k in ("type", "category"))


def translate_tabular_section(tr: Translation, key: str, value: Any) -> bool:
    """Translate one top-level section of a tabular sample; False when it is not a tabular one."""
    handler = _HANDLERS.get(key)
    if handler is None:
        return False
    handler(tr, value, key)
    return True


def _project(tr: Translation, value: Any, path: str) -> None:
    walk(tr, value, path, {"name": to("project.name", str), "description": to("project.description", str),
                           "runs_dir": to("project.runs_dir", str)},
         warn_with({"type": "tabular: runs as data.source table"}, "descriptive only; kept out of the config"))


def _data(tr: Translation, value: Any, path: str) -> None:
    """File, target, task, column roles and split shares -> ``data.*``."""
    tr.put("data.source", "table", path)
    walk(tr, value, path, _DATA_HANDLERS, _data_fallback)


def _data_fallback(tr: Translation, key: str, item: Any, path: str) -> None:
    if key in ("id_columns", "drop_columns", "time_column", "group_column", "max_rows"):
        tr.put(f"data.{key}", item, path)
    else:
        tr.warn(path, "mlestar reads the column types from the file (data.columns overrides them); ignored")


def _dataset(tr: Translation, value: Any, path: str) -> None:
    name = norm(value)
    builtin = {norm(b): b for b in BUILTIN_TABLES}
    if name in builtin:
        tr.put("data.dataset", builtin[name], path)
    else:
        tr.warn(path, f"{value!r} names the data set; mlestar reads the file at data.path")


def _columns_of(kind: str) -> Any:
    def handler(tr: Translation, value: Any, path: str) -> None:
        for column in as_list(value):
            tr.put(f"data.columns.{column}", kind, path)
    return handler


def _split(target: str) -> Any:
    def handler(tr: Translation, value: Any, path: str) -> None:
        share = number(value)
        if share is None:
            tr.warn(path, f"a share between 0 and 1, not {value!r}; ignored")
        else:
            tr.put(target, share, path)
    return handler


def _task(tr: Translation, value: Any, path: str) -> None:
    task = {"binaryclassification": "binary", "binary": "binary", "multiclassclassification": "multiclass",
            "multiclass": "multiclass", "regression": "regression", "classification": "auto"}.get(norm(value))
    if task is None:
        tr.warn(path, f"{value!r} is not a table task (binary, multiclass, regression); inferred from the target")
    else:
        tr.put("data.task", task, path)


_PATH_KEYS = ("path", "data_path", "raw_data_path", "train_path", "file", "csv", "source_path")
_DATA_HANDLERS = {**{k: to("data.path", str) for k in _PATH_KEYS},
                  **{k: to("data.target", str) for k in ("target", "target_column", "label", "label_column")},
                  "dataset": _dataset, "name": _dataset, "task": _task, "problem_type": _task,
                  "categorical_features": _columns_of("categorical"), "numerical_features": _columns_of("numeric"),
                  "numeric_features": _columns_of("numeric"), "datetime_features": _columns_of("datetime"),
                  "test_split": _split("data.test_fraction"), "test_size": _split("data.test_fraction"),
                  "validation_split": _split("data.val_fraction"), "val_split": _split("data.val_fraction")}


def _models(tr: Translation, value: Any, path: str) -> None:
    """``models: [random_forest, xgboost, lightgbm]``: the first mlestar learner; an ensemble stays on."""
    names = [item_name(i) for i in (value if isinstance(value, list) else list(as_mapping(tr, value, path) or {}))]
    learners = [(n, _LEARNERS.get(norm(n))) for n in names]
    chosen = next((learner for _, learner in learners if learner), None)
    if chosen:
        tr.put("tables.learner", chosen, path)
    for name, learner in learners:
        if norm(name) in _ENSEMBLE_NAMES:
            tr.put("tables.ensemble", True, f"{path}.{name}")
        elif learner is None:
            tr.warn(f"{path}.{name}", "not a learner mlestar has (lightgbm, xgboost, catboost, "
                                      "hist_gradient_boosting, linear); ignored")
        elif learner != chosen:
            tr.warn(f"{path}.{name}", f"mlestar fits one learner ({chosen}); stage 6 soft-votes its best "
                                      "distinct trials instead of mixing learners")


def _gates(tr: Translation, value: Any, path: str) -> None:
    for stage, checks in (as_mapping(tr, value, path) or {}).items():
        for key, threshold in (as_mapping(tr, checks, f"{path}.{stage}") or {}).items():
            mapping = _GATES.get(str(key))
            if mapping is None or isinstance(threshold, (bool, dict, list)):
                tr.warn(f"{path}.{stage}.{key}", "no such gate for tables; ignored")
                continue
            tr.add_gate({"name": str(key), "metric": mapping[0], "op": mapping[1], "threshold": threshold},
                        f"{path}.{stage}.{key}")


def _evaluation(tr: Translation, value: Any, path: str) -> None:
    walk(tr, value, path, {"targets": _targets, "primary_metric": _primary},
         warn_with({}, "stage 5 always reports every score of the task, curves, calibration and SHAP; ignored"))


def _primary(tr: Translation, value: Any, path: str) -> None:
    metric = _TARGETS.get(str(value).lower())
    if metric:
        tr.put("task.primary_metric", metric, path)
    else:
        tr.warn(path, f"{value!r} is not a table metric; the task's default is used")


def _targets(tr: Translation, value: Any, path: str) -> None:
    """``targets: {classification: {...}, regression: {...}}``: the block of the data's task is kept."""
    task = tr.get("data.task")
    for block, items in (as_mapping(tr, value, path) or {}).items():
        tasks = _TASK_OF_BLOCK.get(str(block))
        if tasks is None:
            _one_target(tr, str(block), items, f"{path}.{block}")
        elif task in (None, "auto") and tr.pending.get("target_block"):
            tr.warn(f"{path}.{block}", "the task is not declared (data.task); only the first targets block is "
                                       "kept")
        elif task not in (None, "auto") and task not in tasks:
            tr.warn(f"{path}.{block}", f"the task is {task}; these targets do not apply")
        else:
            tr.pending["target_block"] = (block, f"{path}.{block}")
            for name, target in (as_mapping(tr, items, f"{path}.{block}") or {}).items():
                _one_target(tr, str(name), target, f"{path}.{block}.{name}")


def _one_target(tr: Translation, name: str, target: Any, path: str) -> None:
    metric = _TARGETS.get(name.lower())
    if metric is None or isinstance(target, (dict, list, bool)):
        tr.warn(path, "not a target mlestar reports for tables; ignored")
    else:
        tr.put(f"task.targets.{metric}", target, path)


def _feature_engineering(tr: Translation, value: Any, path: str) -> None:
    for key in (as_mapping(tr, value, path) or {}):
        tr.warn(f"{path}.{key}", _PLANNED)


def _error_handling(tr: Translation, value: Any, path: str) -> None:
    for kind, actions in (as_mapping(tr, value, path) or {}).items():
        if str(kind) != "data_issues":
            tr.warn(f"{path}.{kind}", "failed gates loop back with remedies the runner chooses (remedies); ignored")
            continue
        for action in as_list(actions):
            name = item_name(action)
            why = next((w for k, w in _DATA_ISSUES.items() if k in norm(name)), None)
            tr.warn(f"{path}.{kind}.{name}", why or "stage 1 grades data problems and blocks on leakage; ignored")


def _tuning(tr: Translation, value: Any, path: str) -> None:
    walk(tr, value, path, {"n_trials": to("refinement.n_trials"), "timeout": to("refinement.timeout"),
                           "cv_folds": to("tables.cv_folds"), "cv": to("tables.cv_folds")},
         warn_with({}, "stage 6 searches the learner's registered space with Optuna; ignored"))


_HANDLERS = {"project": _project, "data": _data, "dataset": _data, "models": _models, "model": _models,
             "quality_gates": _gates, "evaluation": _evaluation, "feature_engineering": _feature_engineering,
             "error_handling": _error_handling, "hyperparameter_tuning": _tuning, "training": _tuning}


def finish_tables(tr: Translation) -> None:
    """A tabular sample runs once it names its file and target.

    Raises:
        ConfigError: no file (or builtin table), or no target column.
    """
    if tr.get("data.source") is None:
        tr.put("data.source", "table", "project.type")
    if tr.get("data.path") is None and tr.get("data.dataset") is None:
        raise ConfigError(f"{tr.source}: a tabular project needs its table: data.path is missing",
                          hint="add data.path: <your .csv, .tsv, .parquet or .jsonl file> and data.target_column: "
                               "<the column to predict>")
    if tr.get("data.path") is not None and tr.get("data.target") is None:
        raise ConfigError(f"{tr.source}: data.target_column is missing: name the column to predict",
                          hint="add data.target_column: <column> to the data section")
