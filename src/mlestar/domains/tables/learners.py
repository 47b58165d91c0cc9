"""Registry of table learners, in the timm style: ``@register_learner`` plus :func:`create_learner`.

Each learner is a scikit-learn-compatible estimator, built for a task with
its parameters. Gradient boosting learners stop early on the validation split
(:func:`fit_learner`) and report their learning curve; the linear baseline
needs scaled inputs, which the planner reads from :attr:`LearnerSpec.needs_scaling`.

Registered: ``lightgbm`` (the default), ``xgboost``, ``catboost`` (when the
optional package is installed), ``hist_gradient_boosting`` and ``linear``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from mlestar.domains.tables.progress import Count, RoundTicker, lightgbm_callback, xgboost_callback
from mlestar.errors import ConfigError

MakeFn = Callable[[str, dict[str, Any], int, int], Any]  # (task, params, seed, n_jobs) -> estimator


@dataclass(frozen=True)
class LearnerSpec:
    """A learner: how to build it and what the planner and search need to know.

    Attributes:
        name: registry key.
        make: ``(task, params, seed, n_jobs) -> estimator``.
        package: module that must be importable (checked by :func:`available`).
        needs_scaling: numeric inputs are standardised for it (linear models).
        boosting: trained in rounds with early stopping on validation.
        defaults: parameters used when the plan names none.
        space: Optuna search space ``{param: (kind, low, high, log)}`` for stage 6.
        native_categorical: takes ordinal-encoded categories as categories (no one-hot needed).
    """

    name: str
    make: MakeFn
    package: str
    needs_scaling: bool = False
    boosting: bool = True
    defaults: dict[str, Any] = field(default_factory=dict)
    space: dict[str, tuple[str, float, float, bool]] = field(default_factory=dict)
    native_categorical: bool = False


_LEARNERS: dict[str, LearnerSpec] = {}


def register_learner(spec: LearnerSpec) -> LearnerSpec:
    """Add ``spec`` to the registry under ``spec.name``."""
    _LEARNERS[spec.name] = spec
    return spec


def list_learners(installed_only: bool = False) -> list[str]:
    """Registered learner names (only those whose package imports, when ``installed_only``)."""
    return [name for name, spec in _LEARNERS.items() if not installed_only or available(name)]


def available(name: str) -> bool:
    """True when the learner's package is installed."""
    return importlib.util.find_spec(learner_spec(name).package) is not None


def learner_spec(name: str) -> LearnerSpec:
    """The registered spec, or a :class:`ConfigError` naming the registered ones."""
    if name not in _LEARNERS:
        import difflib

        close = difflib.get_close_matches(name, list(_LEARNERS), n=1)
        raise ConfigError(f"unknown learner {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                          hint=f"registered learners: {', '.join(_LEARNERS)}")
    return _LEARNERS[name]


def create_learner(name: str, task: str, params: dict[str, Any] | None = None, *, seed: int = 0,
                   n_jobs: int = 1) -> Any:
    """An unfitted estimator for ``task`` (``binary``, ``multiclass``, ``regression``).

    Raises:
        ConfigError: the learner is unknown, or its optional package is not installed.
    """
    spec = learner_spec(name)
    if not available(name):
        raise ConfigError(f"learner {name!r} needs the {spec.package!r} package, which is not installed",
                          hint=f"pip install {spec.package}, or choose one of: "
                               f"{', '.join(list_learners(installed_only=True))}")
    return spec.make(task, {**spec.defaults, **(params or {})}, seed, n_jobs)


def _lightgbm(task: str, params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    import lightgbm as lgb

    cls = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    return cls(random_state=seed, n_jobs=n_jobs, verbose=-1, **params)


def _xgboost(task: str, params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    import xgboost as xgb

    cls = xgb.XGBRegressor if task == "regression" else xgb.XGBClassifier
    return cls(random_state=seed, n_jobs=n_jobs, tree_method="hist", **params)


def _catboost(task: str, params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    import catboost

    cls = catboost.CatBoostRegressor if task == "regression" else catboost.CatBoostClassifier
    return cls(random_seed=seed, thread_count=n_jobs, verbose=False, allow_writing_files=False, **params)


def _hist_gb(task: str, params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    return cls(random_state=seed, **params)


def _linear(task: str, params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge

    if task == "regression":
        return Ridge(alpha=params.get("alpha", 1.0))
    return LogisticRegression(C=params.get("C", 1.0), max_iter=int(params.get("max_iter", 2000)),
                              class_weight=params.get("class_weight"), random_state=seed)


_BOOSTING_SPACE: dict[str, tuple[str, float, float, bool]] = {
    "learning_rate": ("float", 0.01, 0.3, True),
    "num_leaves": ("int", 8, 256, True),
    "min_child_samples": ("int", 5, 100, True),
    "subsample": ("float", 0.5, 1.0, False),
    "colsample_bytree": ("float", 0.4, 1.0, False),
    "reg_lambda": ("float", 1e-3, 10.0, True),
}

register_learner(LearnerSpec(
    "lightgbm", _lightgbm, "lightgbm", native_categorical=True,
    defaults={"n_estimators": 2000, "learning_rate": 0.05, "num_leaves": 31, "subsample": 0.8,
              "subsample_freq": 1, "colsample_bytree": 0.8},
    space=_BOOSTING_SPACE))
register_learner(LearnerSpec(
    "xgboost", _xgboost, "xgboost",
    defaults={"n_estimators": 2000, "learning_rate": 0.05, "max_depth": 6, "subsample": 0.8,
              "colsample_bytree": 0.8},
    space={"learning_rate": ("float", 0.01, 0.3, True), "max_depth": ("int", 3, 10, False),
           "min_child_weight": ("float", 0.5, 20.0, True), "subsample": ("float", 0.5, 1.0, False),
           "colsample_bytree": ("float", 0.4, 1.0, False), "reg_lambda": ("float", 1e-3, 10.0, True)}))
register_learner(LearnerSpec(
    "catboost", _catboost, "catboost",
    defaults={"iterations": 2000, "learning_rate": 0.05, "depth": 6},
    space={"learning_rate": ("float", 0.01, 0.3, True), "depth": ("int", 4, 10, False),
           "l2_leaf_reg": ("float", 1.0, 10.0, True)}))
register_learner(LearnerSpec(
    "hist_gradient_boosting", _hist_gb, "sklearn",
    defaults={"max_iter": 500, "learning_rate": 0.05, "early_stopping": True, "validation_fraction": 0.1,
              "n_iter_no_change": 30},
    space={"learning_rate": ("float", 0.01, 0.3, True), "max_leaf_nodes": ("int", 8, 128, True),
           "min_samples_leaf": ("int", 5, 100, True), "l2_regularization": ("float", 1e-4, 10.0, True)}))
register_learner(LearnerSpec(
    "linear", _linear, "sklearn", needs_scaling=True, boosting=False,
    space={"C": ("float", 1e-3, 100.0, True), "alpha": ("float", 1e-3, 100.0, True)}))


@dataclass
class FitReport:
    """What fitting a learner produced besides the estimator.

    Attributes:
        best_iteration: rounds kept by early stopping (None for non-boosting learners).
        curve: metric name -> ``{"train": [...], "valid": [...]}`` per round (empty when not recorded).
    """

    best_iteration: int | None
    curve: dict[str, dict[str, list[float]]]


def fit_learner(name: str, estimator: Any, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                y_val: np.ndarray, *, early_stopping_rounds: int = 50,
                sample_weight: np.ndarray | None = None, callbacks: list[Any] | None = None,
                on_round: Count | None = None) -> FitReport:
    """Fit ``estimator`` on transformed inputs, stopping early on validation where the learner can.

    ``callbacks``: extra LightGBM callbacks (stage 6's Optuna pruning); other learners take none.
    ``on_round(done, total)``: boosting rounds of LightGBM and XGBoost, at most a few reports a
    second, out of the planned rounds; it ends at ``done == total`` however the fit ends (early
    stopping, an error). Other learners have no per-round hook and report nothing.
    """
    fitters = {"lightgbm": _fit_lightgbm, "xgboost": _fit_xgboost, "catboost": _fit_catboost}
    fit = fitters.get(name)
    if fit is None:
        estimator.fit(x_train, y_train, sample_weight=sample_weight)
        rounds = getattr(estimator, "n_iter_", None)  # an array for LogisticRegression (one per class)
        return FitReport(None if rounds is None else int(np.max(rounds)), {})
    ticker = RoundTicker(on_round, estimator.get_params()["n_estimators"]) \
        if on_round is not None and name in ("lightgbm", "xgboost") else None
    try:
        if name == "lightgbm":
            extra = [*(callbacks or []), *([lightgbm_callback(ticker)] if ticker else [])]
            return _fit_lightgbm(estimator, x_train, y_train, x_val, y_val, early_stopping_rounds, sample_weight,
                                 extra)
        if name == "xgboost" and ticker:
            estimator.set_params(callbacks=[xgboost_callback(ticker)])
        return fit(estimator, x_train, y_train, x_val, y_val, early_stopping_rounds, sample_weight)
    finally:
        if ticker:
            ticker.finish()
            if name == "xgboost":
                estimator.set_params(callbacks=None)  # the callback holds the ticker; a saved model must not


def _fit_lightgbm(est: Any, xt: Any, yt: Any, xv: Any, yv: Any, rounds: int, weight: Any,
                  callbacks: list[Any] | None = None) -> FitReport:
    import lightgbm as lgb

    curve: dict[str, Any] = {}
    est.fit(xt, yt, sample_weight=weight, eval_X=(xt, xv), eval_y=(yt, yv), eval_names=["train", "valid"],
            callbacks=[lgb.early_stopping(rounds, verbose=False), lgb.record_evaluation(curve), *(callbacks or [])])
    metrics = {m: {"train": list(curve["train"][m]), "valid": list(curve["valid"][m])} for m in curve["valid"]}
    return FitReport(int(est.best_iteration_ or est.n_estimators), metrics)


def _fit_xgboost(est: Any, xt: Any, yt: Any, xv: Any, yv: Any, rounds: int, weight: Any) -> FitReport:
    est.set_params(early_stopping_rounds=rounds)
    est.fit(xt, yt, sample_weight=weight, eval_set=[(xt, yt), (xv, yv)], verbose=False)
    raw = est.evals_result()
    metrics = {m: {"train": list(raw["validation_0"][m]), "valid": list(raw["validation_1"][m])}
               for m in raw["validation_1"]}
    return FitReport(int(est.best_iteration) + 1, metrics)


def _fit_catboost(est: Any, xt: Any, yt: Any, xv: Any, yv: Any, rounds: int, weight: Any) -> FitReport:
    est.fit(xt, yt, sample_weight=weight, eval_set=(xv, yv), early_stopping_rounds=rounds)
    raw = est.get_evals_result()
    metrics = {m: {"train": list(raw.get("learn", {}).get(m, [])), "valid": list(values)}
               for m, values in raw.get("validation", {}).items()}
    return FitReport(int(est.get_best_iteration()) + 1, metrics)
