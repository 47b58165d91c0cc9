"""Fitting a :class:`~mlestar.domains.tables.plan.TablePlan` on a table: early stopping on the
validation split, optional k-fold cross-validation with out-of-fold predictions, and feature importance.

The preprocessing is fitted on the training rows only, then the learner on
the transformed rows, stopping early on the transformed validation rows; the
two fitted parts become one ``Pipeline``. Cross-validation folds are
checkpointed one file each, so a resumed stage skips the folds it finished.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlestar.domains.tables.dataset import TableDataset
from mlestar.domains.tables.learners import FitReport, create_learner, fit_learner
from mlestar.domains.tables.model import TableModel, forward_target
from mlestar.domains.tables.plan import TablePlan, build_preprocessor
from mlestar.domains.tables.progress import Count, Progress, silent
from mlestar.domains.tables.scoring import primary_score_name, score_all
from mlestar.utils.io import atomic_write_json


FOLDS_LABEL = "cross-validation folds"


@dataclass
class FitOutcome:
    """A fitted model and what fitting it measured."""

    model: TableModel
    report: FitReport
    seconds: float
    val_scores: dict[str, float]


def fit_plan(plan: TablePlan, train: Any, val: Any, class_names: tuple[str, ...], *, n_jobs: int = 1,
             seed: int | None = None, callbacks: list[Any] | None = None,
             on_round: Count | None = None) -> FitOutcome:
    """Fit ``plan`` on the ``train`` frame, stopping early on ``val``; score it on ``val``.

    ``on_round(done, total)`` follows the boosting rounds (see :func:`fit_learner`).
    """
    started = time.perf_counter()
    model = TableModel(pipeline=None, plan=plan, class_names=class_names)
    x_train, x_val = model.prepare(train), model.prepare(val)
    y_train = forward_target(train[plan.target].to_numpy(), plan.target_transform)
    y_val = forward_target(val[plan.target].to_numpy(), plan.target_transform)
    preprocess = build_preprocessor(plan).fit(x_train)
    estimator = create_learner(plan.learner, plan.task, _learner_params(plan), seed=plan.seed if seed is None
                               else seed, n_jobs=n_jobs)
    report = fit_learner(plan.learner, estimator, preprocess.transform(x_train), y_train,
                         preprocess.transform(x_val), y_val, early_stopping_rounds=plan.early_stopping_rounds,
                         sample_weight=_weights(plan, y_train), callbacks=callbacks, on_round=on_round)
    model.pipeline = _assemble(preprocess, estimator)
    seconds = time.perf_counter() - started
    return FitOutcome(model, report, seconds, score_all(plan.task, val[plan.target].to_numpy(), model.scores(val)))


def _learner_params(plan: TablePlan) -> dict[str, Any]:
    params = dict(plan.params)
    if plan.learner == "linear" and plan.class_weight == "balanced" and plan.task != "regression":
        params["class_weight"] = "balanced"
    return params


def _weights(plan: TablePlan, y: np.ndarray) -> np.ndarray | None:
    """Inverse class frequency per row when the plan balances classes (mean weight 1)."""
    if plan.class_weight != "balanced" or plan.task == "regression" or plan.learner == "linear":
        return None
    from sklearn.utils.class_weight import compute_sample_weight

    return compute_sample_weight("balanced", y)


def _assemble(preprocess: Any, estimator: Any) -> Any:
    from sklearn.pipeline import Pipeline

    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def cross_validate(plan: TablePlan, dataset: TableDataset, folder: Path, *, n_jobs: int = 1,
                   primary: str | None = None, progress: Progress = silent) -> dict[str, Any]:
    """k-fold scores and out-of-fold predictions on the training split (``plan.cv_folds`` folds).

    ``progress`` gets ``("cross-validation folds", done, k)`` from 0 to k, and each fold's fit
    its boosting rounds as ``("boosting rounds: fold i/k", done, total)``.

    Each fold's result is written to ``folder/fold_<i>.json`` as it finishes; folds already there
    (a resumed run) are read instead of refitted. Folds follow the split's rules: by time when the
    data has a time column, whole groups when it has a group column, stratified for classes.

    Returns:
        ``{"score": name, "folds": [score per fold], "mean", "std", "oof": [...]}``.
    """
    name = primary_score_name(primary, plan.task)
    folder.mkdir(parents=True, exist_ok=True)
    train = dataset.train
    scores, oof = [], np.full((len(train),) + (() if plan.task == "regression" else (len(dataset.class_names),)),
                              np.nan)
    k = plan.cv_folds
    progress(FOLDS_LABEL, 0, k)
    for i, (fit_idx, held_idx) in enumerate(fold_indices(dataset, k, plan.seed)):
        rounds = functools.partial(progress, f"boosting rounds: fold {i + 1}/{k}")
        record = _fold(plan, dataset, folder / f"fold_{i}.json", fit_idx, held_idx, n_jobs, rounds)
        oof[held_idx] = np.asarray(record["predictions"])
        scores.append(record["scores"][name])
        progress(FOLDS_LABEL, i + 1, k)
    return {"score": name, "folds": scores, "mean": float(np.mean(scores)), "std": float(np.std(scores)),
            "oof": oof.tolist()}


def _fold(plan: TablePlan, dataset: TableDataset, path: Path, fit_idx: np.ndarray, held_idx: np.ndarray,
          n_jobs: int, on_round: Count | None = None) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    train = dataset.train
    held = train.iloc[held_idx]
    outcome = fit_plan(plan, train.iloc[fit_idx], held, dataset.class_names, n_jobs=n_jobs, on_round=on_round)
    record = {"scores": outcome.val_scores, "rows": len(held_idx),
              "best_iteration": outcome.report.best_iteration,
              "predictions": outcome.model.scores(held).tolist()}
    atomic_write_json(path, record)
    return record


def fold_indices(dataset: TableDataset, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (fit, held-out) index pairs over the training split, following the data's split rules."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, TimeSeriesSplit

    train = dataset.train
    roles = dataset.roles
    if roles.get("time_column"):
        order = np.argsort(train[roles["time_column"]].to_numpy(), kind="stable")
        return [(order[a], order[b]) for a, b in TimeSeriesSplit(n_splits=k).split(order)]
    if roles.get("group_column"):
        groups = train[roles["group_column"]].astype(str).to_numpy()
        return list(GroupKFold(n_splits=k).split(train, groups=groups))
    y = train[dataset.target].to_numpy()
    if dataset.is_classification and np.bincount(y.astype(np.int64)).min() >= k:
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(train, y))
    return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(train))


def permutation_importance(model: TableModel, frame: Any, *, seed: int = 0, max_rows: int = 5000,
                           repeats: int = 3) -> dict[str, float]:
    """Drop in the primary score when each input column is shuffled, on up to ``max_rows`` rows.

    Learner-agnostic (sklearn's ``permutation_importance`` over the whole pipeline), and per input
    column, not per encoded feature. Sorted, largest first.
    """
    from sklearn.inspection import permutation_importance as sk_importance

    sample = frame.sample(n=min(max_rows, len(frame)), random_state=seed) if len(frame) > max_rows else frame
    x = model.prepare(sample)
    y = forward_target(sample[model.plan.target].to_numpy(), model.plan.target_transform)
    scoring = "neg_root_mean_squared_error" if model.task == "regression" else (
        "roc_auc" if model.task == "binary" else "accuracy")
    result = sk_importance(model.pipeline, x, y, scoring=scoring, n_repeats=repeats, random_state=seed, n_jobs=1)
    pairs = zip(x.columns, result.importances_mean)
    return dict(sorted(((str(c), float(v)) for c, v in pairs), key=lambda kv: -kv[1]))
