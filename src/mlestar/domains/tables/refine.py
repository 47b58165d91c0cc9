"""Stage 6 for tables: an Optuna search over the learner's parameters, an ensemble, ablations, before/after.

- The search starts from the plan (its parameters are the first trial) and
  samples the learner's registered space with TPE. LightGBM trials are pruned
  on their own validation curve (``optuna_integration.LightGBMPruningCallback``).
- The ensemble soft-votes the best distinct trials (scikit-learn's
  ``VotingClassifier``/``VotingRegressor`` over whole pipelines, each with the
  rounds its trial kept), as the MLE-Star sample project's ensemble did.
- A candidate replaces the baseline only when its mean validation gain over
  several seeds exceeds the larger seed-to-seed standard deviation of the two.
- Ablations drop one group of columns (by kind) at a time and refit.

Nothing here reads the test split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlestar.domains.tables.dataset import TableDataset
from mlestar.domains.tables.fit import fit_plan
from mlestar.domains.tables.learners import create_learner, learner_spec
from mlestar.domains.tables.model import TableModel, forward_target
from mlestar.domains.tables.plan import TablePlan, build_preprocessor
from mlestar.domains.tables.progress import Count
from mlestar.domains.tables.scoring import LOWER_IS_BETTER, gain, score_all

ENSEMBLE_SIZE = 3
REPORT_EVERY = 25  # rounds between a trial's reports to the pruner
BOOTSTRAP_RESAMPLES = 100  # resamples of the validation rows behind the noise of a gain
# The LightGBM metric a trial is pruned on, for each score it is searched for: the same quantity in the
# same direction (Optuna refuses a pruning metric that runs against the study). Scores without one
# (accuracy, F1, R², MAPE) search unpruned.
PRUNE_METRIC = {"roc_auc": "auc", "pr_auc": "average_precision", "rmse": "rmse", "mae": "l1"}


def prune_metric(score: str, task: str) -> str | None:
    """LightGBM's name for ``score`` (``log_loss`` -> ``binary_logloss``/``multi_logloss``), or None."""
    if score == "log_loss":
        return "binary_logloss" if task == "binary" else "multi_logloss"
    if score == "roc_auc" and task == "multiclass":
        return None  # LightGBM's auc is binary only
    return PRUNE_METRIC.get(score)


@dataclass
class SearchResult:
    """The finished study, summarised."""

    trials: list[dict[str, Any]]
    best_params: dict[str, Any]
    best_value: float
    completed: int
    pruned: int
    seconds: float


@dataclass
class Candidate:
    """A model that could replace the baseline, and its validation scores over seeds."""

    name: str
    scores: list[float]
    model: TableModel | None = None
    plan: TablePlan | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores))


def sample_params(trial: Any, space: dict[str, tuple[str, float, float, bool]], task: str) -> dict[str, Any]:
    """One point of the learner's space (``linear`` uses ``C`` for classes and ``alpha`` for values)."""
    params: dict[str, Any] = {}
    for name, (kind, low, high, log) in space.items():
        if name in ("C", "alpha") and (name == "C") == (task == "regression"):
            continue
        suggest = trial.suggest_int if kind == "int" else trial.suggest_float
        params[name] = suggest(name, int(low) if kind == "int" else low, int(high) if kind == "int" else high,
                               log=log)
    return params


def run_search(plan: TablePlan, dataset: TableDataset, *, score: str, n_trials: int, timeout: float | None,
               storage: str | None, study_name: str, pruner: str, n_jobs: int, warmup_rounds: int = 20,
               on_trial: Callable[[int, int], None] | None = None) -> SearchResult:
    """Search the learner's parameters around ``plan``, maximising (or minimising) validation ``score``.

    ``warmup_rounds``: no trial is pruned before this round. Early rounds favour high learning
    rates, which lead early and lose late; stage 6 passes half the baseline's kept rounds.
    ``on_trial(done, n_trials)`` starts at the trials a resumed study already holds, follows each
    trial, and ends at ``n_trials`` even when ``timeout`` stops the search sooner.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "minimize" if score in LOWER_IS_BETTER else "maximize"
    study = optuna.create_study(direction=direction, storage=storage, study_name=study_name, load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=plan.seed),
                                pruner=_pruner(pruner, warmup_rounds))
    if not study.trials:
        study.enqueue_trial(plan_point(plan))
    started = time.perf_counter()
    done = len([t for t in study.trials if t.state.is_finished()])
    report = on_trial or (lambda finished, total: None)
    report(min(done, n_trials), n_trials)
    objective = _objective(plan, dataset, score, n_jobs)
    study.optimize(objective, n_trials=max(0, n_trials - done), timeout=timeout,
                   callbacks=[lambda s, t: report(min(len(s.trials), n_trials), n_trials)])
    report(n_trials, n_trials)
    return _summarise(study, time.perf_counter() - started)


def plan_point(plan: TablePlan) -> dict[str, Any]:
    """The plan as a point of its learner's space (the search's first trial), clipped into the ranges:
    a parameter the plan leaves at the learner's own default takes that default (LightGBM's
    min_child_samples 20; reg_lambda 0 becomes the range's floor)."""
    spec = learner_spec(plan.learner)
    implicit = {"min_child_samples": 20, "reg_lambda": 0.0, "min_child_weight": 1.0, "l2_leaf_reg": 3.0,
                "max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 0.0}
    values = {**implicit, **spec.defaults, **plan.params}
    point = {}
    for name, (kind, low, high, _) in spec.space.items():
        if name in values:
            value = min(max(float(values[name]), low), high)
            point[name] = int(round(value)) if kind == "int" else value
    return point


def warmup_rounds(model: TableModel) -> int:
    """Half the rounds the baseline kept (at least 20): the round before which no trial is pruned."""
    learner = getattr(model.pipeline, "named_steps", {}).get("model")
    kept = getattr(learner, "best_iteration_", None) or getattr(learner, "best_iteration", None)
    return max(20, int(kept or 0) // 2)


def _pruner(name: str, warmup_rounds: int) -> Any:
    import optuna

    median = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup_rounds)
    return {"median": median, "auto": median,  # auto: the images' rung choice reads epochs; tables keep the median
            "halving": optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup_rounds, reduction_factor=3),
            "hyperband": optuna.pruners.HyperbandPruner(min_resource=warmup_rounds),
            "none": optuna.pruners.NopPruner()}[name]


def _objective(plan: TablePlan, dataset: TableDataset, score: str, n_jobs: int) -> Callable[[Any], float]:
    spec = learner_spec(plan.learner)

    def objective(trial: Any) -> float:
        params = {**plan.params, **sample_params(trial, spec.space, plan.task)}
        callbacks = None
        metric = prune_metric(score, plan.task)
        if plan.learner == "lightgbm" and metric:
            from optuna_integration import LightGBMPruningCallback

            params["metric"] = metric  # recorded each round on validation, so the pruner can read it
            # Every report is a storage write (an SQLite commit): one each REPORT_EVERY rounds, not each
            # round, or a diamonds trial of 800 rounds spends 5x its fitting time writing reports.
            callbacks = [LightGBMPruningCallback(trial, metric, valid_name="valid", report_interval=REPORT_EVERY)]
        outcome = fit_plan(plan.with_changes(params=params), dataset.train, dataset.val, dataset.class_names,
                           n_jobs=n_jobs, callbacks=callbacks)
        trial.set_user_attr("best_iteration", outcome.report.best_iteration)
        trial.set_user_attr("val_scores", {k: v for k, v in outcome.val_scores.items() if np.isfinite(v)})
        return outcome.val_scores[score]

    return objective


def _summarise(study: Any, seconds: float) -> SearchResult:
    import optuna

    states = optuna.trial.TrialState
    # A pruned trial's value is its last intermediate report (another scale): only complete ones have scores.
    rows = [{"number": t.number, "state": t.state.name,
             "value": t.value if t.state == states.COMPLETE else None, "params": t.params,
             "best_iteration": t.user_attrs.get("best_iteration")} for t in study.trials]
    complete = [t for t in study.trials if t.state == states.COMPLETE]
    best = study.best_trial if complete else None
    return SearchResult(rows, dict(best.params) if best else {}, float(best.value) if best else float("nan"),
                        len(complete), sum(t.state == states.PRUNED for t in study.trials), seconds)


def distinct_best(search: SearchResult, score: str, k: int = ENSEMBLE_SIZE) -> list[dict[str, Any]]:
    """The ``k`` best complete trials with different parameters, best first."""
    done = [t for t in search.trials if t["state"] == "COMPLETE" and t["value"] is not None]
    done.sort(key=lambda t: t["value"], reverse=score not in LOWER_IS_BETTER)
    seen, out = set(), []
    for trial in done:
        key = tuple(sorted((n, round(float(v), 6)) for n, v in trial["params"].items()))
        if key not in seen:
            seen.add(key)
            out.append(trial)
    return out[:k]


def seeded_scores(plan: TablePlan, dataset: TableDataset, score: str, seeds: list[int], n_jobs: int,
                  on_seed: Count | None = None) -> tuple[list[float], TableModel]:
    """Validation ``score`` of ``plan`` fitted once per seed; returns the scores and the first seed's model.

    ``on_seed(done, len(seeds))`` follows the fits, from 0.
    """
    report = on_seed or (lambda done, total: None)
    report(0, len(seeds))
    values, first = [], None
    for seed in seeds:
        outcome = fit_plan(plan, dataset.train, dataset.val, dataset.class_names, n_jobs=n_jobs, seed=seed)
        values.append(outcome.val_scores[score])
        first = first or outcome.model
        report(len(values), len(seeds))
    assert first is not None
    return values, first


def ensemble_model(plan: TablePlan, members: list[dict[str, Any]], dataset: TableDataset, *, seed: int,
                   n_jobs: int) -> TableModel:
    """A soft-voting ensemble of whole pipelines, each member with its trial's parameters and kept rounds."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor
    from sklearn.pipeline import Pipeline

    pipes = []
    for i, trial in enumerate(members):
        params = {**plan.params, **trial["params"]}
        if trial.get("best_iteration"):
            params[_rounds_key(plan.learner)] = int(trial["best_iteration"])
        if plan.class_weight == "balanced" and plan.task != "regression" and plan.learner == "lightgbm":
            params["class_weight"] = "balanced"
        learner = create_learner(plan.learner, plan.task, params, seed=seed + i, n_jobs=n_jobs)
        pipes.append((f"m{i}", Pipeline([("preprocess", build_preprocessor(plan)), ("model", learner)])))
    # flatten_transform=False: the only form skl2onnx converts (it changes transform(), never predict_proba)
    voting = VotingRegressor(pipes) if plan.task == "regression" else VotingClassifier(pipes, voting="soft",
                                                                                        flatten_transform=False)
    model = TableModel(pipeline=None, plan=plan, class_names=dataset.class_names)
    y = forward_target(dataset.train[plan.target].to_numpy(), plan.target_transform)
    model.pipeline = voting.fit(model.prepare(dataset.train), y)
    model.extra["ensemble"] = [p for p in (t["params"] for t in members)]
    return model


def _rounds_key(learner: str) -> str:
    return {"catboost": "iterations", "hist_gradient_boosting": "max_iter"}.get(learner, "n_estimators")


def val_score(model: TableModel, dataset: TableDataset, score: str) -> float:
    """``score`` of ``model`` on the validation split."""
    return score_all(model.task, dataset.val[model.plan.target].to_numpy(), model.scores(dataset.val),
                     model.threshold)[score]


def adopt(baseline: Candidate, challenger: Candidate, score: str, dataset: TableDataset | None = None,
          *, seed: int = 0) -> tuple[bool, float, float]:
    """``(adopted, mean gain, noise)``: the challenger wins when its mean gain exceeds the noise.

    The noise is the larger of the seed-to-seed standard deviations and, given the dataset, the
    standard deviation of the gain over bootstrap resamples of the validation rows: a gain the
    choice of validation rows could produce is not a gain.
    """
    improvement = gain(score, challenger.mean, baseline.mean)
    noise = max(baseline.std, challenger.std)
    if dataset is not None and baseline.model is not None and challenger.model is not None:
        noise = max(noise, bootstrap_gain_std(baseline.model, challenger.model, dataset, score, seed=seed))
    return improvement > noise, improvement, noise


def bootstrap_gain_std(before: TableModel, after: TableModel, dataset: TableDataset, score: str, *,
                       seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> float:
    """Standard deviation of ``after``'s gain over ``before`` across bootstrap resamples of validation."""
    y = dataset.val[before.plan.target].to_numpy()
    a, b = before.scores(dataset.val), after.scores(dataset.val)
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        old = score_all(before.task, y[rows], a[rows], before.threshold)[score]
        new = score_all(after.task, y[rows], b[rows], after.threshold)[score]
        gains.append(gain(score, new, old))
    finite = np.asarray(gains)[np.isfinite(gains)]
    return float(np.std(finite)) if len(finite) > 1 else 0.0


def feature_groups(plan: TablePlan) -> dict[str, list[str]]:
    """Input columns grouped by kind (groups of one kind only when there are at least two kinds)."""
    groups: dict[str, list[str]] = {}
    for step in plan.columns:
        if step.action != "drop":
            groups.setdefault(step.kind, []).append(step.column)
    return groups if len(groups) > 1 else {}


def ablations(plan: TablePlan, dataset: TableDataset, score: str, reference: float, *, n_jobs: int,
              extra_groups: dict[str, list[str]] | None = None,
              on_group: Count | None = None) -> list[dict[str, Any]]:
    """Validation ``score`` with each group of columns dropped, and its change against ``reference``.

    ``on_group(done, groups)`` follows the groups, from 0 to the end (a group that would leave no
    input is counted without a fit).
    """
    groups = {**feature_groups(plan), **(extra_groups or {})}
    report = on_group or (lambda done, total: None)
    report(0, len(groups))
    rows = []
    for done, (name, columns) in enumerate(groups.items(), 1):
        reduced = plan.with_changes(columns=[s.model_copy(update={"action": "drop", "reason": f"ablation: {name}"})
                                             if s.column in columns else s for s in plan.columns])
        if reduced.inputs:
            value = fit_plan(reduced, dataset.train, dataset.val, dataset.class_names,
                             n_jobs=n_jobs).val_scores[score]
            rows.append({"group": name, "columns": columns, "score": value, "change": gain(score, value, reference)})
        report(done, len(groups))
    return sorted(rows, key=lambda r: r["change"])


def save_trials_csv(trials: list[dict[str, Any]], path: Path) -> None:
    """One row per trial: number, state, value, best iteration, then each parameter."""
    import csv
    import io

    from mlestar.utils.io import atomic_write_text

    names = sorted({p for t in trials for p in t["params"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["number", "state", "value", "best_iteration", *names])
    for t in trials:
        writer.writerow([t["number"], t["state"], t["value"], t["best_iteration"],
                         *(t["params"].get(n, "") for n in names)])
    atomic_write_text(path, buffer.getvalue())
